"""A circuit breaker for one recipient endpoint: stop sending to a registry that cannot be reached.

Without one, a registry that is down or hangs costs every row queued for it an attempt (and a wait for a
deadline) while it is known to be unreachable, and burns the rows' retry budgets for nothing.  The breaker
counts *transport* failures only (refused, reset, timed out, TLS failure, no greeting): a registry that
answers, even with an error code, is reachable, and such answers reset the count.

    closed  --N consecutive transport failures-->  open
    open    --cool-down passed-->                  half-open (one probe admitted)
    half-open: probe reached the registry --> closed;  probe failed --> open (a new cool-down)

The breaker is pure bookkeeping with an injected monotonic clock: it does no I/O and never sleeps, so a
scheduler asks it how many rows it may start (``admit``) and tells it how each one went (``record``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BreakerState", "CircuitBreaker", "Permit"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """The state as a number for a metrics gauge: 0 closed, 1 half-open, 2 open."""
        return {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}[self]


class Permit(enum.Enum):
    """What ``admit`` granted one attempt: an ordinary one, or the half-open probe."""

    NORMAL = "normal"
    PROBE = "probe"


@dataclass
class CircuitBreaker:
    """Consecutive transport failures open it; after ``cooldown_s`` one probe decides whether it closes."""

    threshold: int = 5
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = field(default=0, init=False)
    opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self.clock() - self.opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until an open breaker admits its probe (0 when it admits now or is closed)."""
        if self.opened_at is None or self._probing:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def admit(self) -> Permit | None:
        """May one more attempt start now?  In half-open, the first caller gets the probe, the rest wait."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit.NORMAL
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return Permit.PROBE
        return None

    def record(self, permit: Permit, *, transport_failure: bool) -> None:
        """How an admitted attempt went: did the connection to the endpoint fail?"""
        if permit is Permit.PROBE:
            self._probing = False
            if transport_failure:
                self.opened_at = self.clock()  # a new cool-down
            else:
                self.opened_at, self.failures = None, 0
            return
        if self.opened_at is not None:
            # an attempt that started before the breaker opened: the probe alone decides now
            return
        if not transport_failure:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()

    def abandon(self, permit: Permit) -> None:
        """An admitted attempt ended without a verdict (cancelled at shutdown, claimed nothing)."""
        if permit is Permit.PROBE:
            self._probing = False
