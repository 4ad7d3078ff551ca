"""The circuit breaker's state machine, on a hand-driven clock (``adapters.breaker``)."""

from __future__ import annotations

import pytest

from adapters.breaker import BreakerState, CircuitBreaker, Permit


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def opened(threshold: int = 3, cooldown_s: float = 10.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    b = CircuitBreaker(threshold, cooldown_s, clock)
    for _ in range(threshold):
        permit = b.admit()
        assert permit is Permit.NORMAL
        b.record(permit, transport_failure=True)
    assert b.state is BreakerState.OPEN
    return b, clock


def test_opens_after_n_consecutive_transport_failures_only() -> None:
    b = CircuitBreaker(3, 10.0, FakeClock())
    for failure in (True, True, False, True, True):  # an answer from the registry resets the count
        b.record(Permit.NORMAL, transport_failure=failure)
    assert b.state is BreakerState.CLOSED and b.failures == 2
    b.record(Permit.NORMAL, transport_failure=True)
    assert b.state is BreakerState.OPEN
    assert b.admit() is None  # nothing is attempted while open


def test_half_open_admits_exactly_one_probe_and_its_success_closes() -> None:
    b, clock = opened()
    clock.t += 9.9
    assert b.admit() is None and b.retry_in() == pytest.approx(0.1)
    clock.t += 0.1
    assert b.state is BreakerState.HALF_OPEN
    probe = b.admit()
    assert probe is Permit.PROBE
    assert b.admit() is None  # one probe at a time
    b.record(probe, transport_failure=False)
    assert b.state is BreakerState.CLOSED and b.failures == 0
    assert b.admit() is Permit.NORMAL


def test_a_failed_probe_reopens_for_a_new_cool_down() -> None:
    b, clock = opened()
    clock.t += 10
    probe = b.admit()
    assert probe is Permit.PROBE
    clock.t += 4  # the probe ran into its deadline
    b.record(probe, transport_failure=True)
    assert b.state is BreakerState.OPEN and b.retry_in() == pytest.approx(10.0)
    clock.t += 10
    assert b.admit() is Permit.PROBE


def test_late_results_of_attempts_started_before_opening_do_not_close_it() -> None:
    b, _ = opened()
    b.record(Permit.NORMAL, transport_failure=False)
    assert b.state is BreakerState.OPEN


def test_an_abandoned_probe_frees_the_probe_slot() -> None:
    b, clock = opened()
    clock.t += 10
    probe = b.admit()
    assert probe is Permit.PROBE and b.admit() is None
    b.abandon(probe)
    assert b.admit() is Permit.PROBE


def test_gauge_values_and_arguments() -> None:
    assert [s.gauge for s in (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN)] == [0, 1, 2]
    with pytest.raises(ValueError):
        CircuitBreaker(0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, -1.0)
