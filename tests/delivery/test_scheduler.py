"""The delivery scheduler over a real SQLite store, with a small deliverer whose recipients behave as told:
bulkheads, continuous claiming, the circuit breaker, bounded shutdown, leases with heartbeat and takeover."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.clock import iso, utcnow
from gateway.delivery.scheduler import Scheduler
from gateway.delivery.wake import WakeListener, wake_sender
from gateway.logs import DeliveryMetrics
from gateway.store.base import OutboxItem, Store
from gateway.store.sqlite import SqliteStore
from tests.store.conftest import SqliteRaw, make_accepted, make_entry


@dataclass(frozen=True)
class Report:
    outcome: str
    transport_failure: bool


class Deliverer:
    """Delivers as ``mode[recipient]`` says: "ok" (a short wait, then done), "down" (a transport failure,
    due again at once), "hang" (never answers; only cancellation ends it), "slow" (``slow_s``, then done).
    Records outcomes through the store's fenced ``finish``, as the worker does."""

    def __init__(self, store: Store, **mode: str) -> None:
        self.store = store
        self.mode = mode
        self.calls: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()
        self.lost: int = 0
        self.slow_s = 0.5

    async def deliver(self, item: OutboxItem) -> Report:
        r = item.recipient
        self.calls[r] += 1
        self.active[r] += 1
        self.max_active[r] = max(self.max_active[r], self.active[r])
        try:
            mode = self.mode.get(r, "ok")
            if mode == "hang":
                await asyncio.Event().wait()
            await asyncio.sleep(self.slow_s if mode == "slow" else 0.005)
            now = iso(utcnow())
            entry = make_entry(0, id=uuid.uuid4().hex, registration_id=item.registration_id, recipient=r)
            if mode == "down":
                owned = await self.store.finish(item, entry, state="pending", next_attempt_at=now, now=now)
                return Report("retry" if owned else "lost_claim", True)
            owned = await self.store.finish(item, entry, state="done", next_attempt_at=None, now=now)
            if not owned:
                self.lost += 1
                return Report("lost_claim", False)
            self.delivered[r] += 1
            return Report("delivered", False)
        finally:
            self.active[r] -= 1

    async def recover(self) -> int:
        now = utcnow()
        return await self.store.requeue_in_flight(iso(now), iso(now - dt.timedelta(seconds=120)))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "gateway.db"))
    yield s
    await s.close()


@pytest.fixture
def raw(tmp_path: Path, store: SqliteStore) -> SqliteRaw:
    return SqliteRaw(str(tmp_path / "gateway.db"))


_seq = iter(range(1, 1_000_000))


async def add_rows(store: Store, recipient: str, n: int) -> None:
    """``n`` registrations, one outbox row each for ``recipient``, due now."""
    when = iso(utcnow() - dt.timedelta(seconds=1))
    for _ in range(n):
        await store.accept(make_accepted(next(_seq), recipients=(recipient,)), when)


async def states(raw: SqliteRaw, recipient: str) -> Counter[str]:
    rows = await raw.fetch("SELECT state FROM outbox WHERE recipient=?", recipient)
    return Counter(r["state"] for r in rows)


def scheduler(store: Store, deliverer: Deliverer, **kw: object) -> Scheduler:
    opts: dict[str, object] = dict(per_recipient=2, max_in_flight=16, lease_s=30.0, recover_every_s=5.0,
                                   shutdown_grace_s=0.5, metrics=DeliveryMetrics.create())
    opts.update(kw)
    return Scheduler(store, deliverer, **opts)  # type: ignore[arg-type]


@dataclass
class Running:
    sched: Scheduler
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def halt(self, limit_s: float = 8.0) -> float:
        """Stop the scheduler; the seconds it took."""
        t0 = time.monotonic()
        self.stop.set()
        await asyncio.wait_for(self.task, limit_s)
        return time.monotonic() - t0


async def start(sched: Scheduler, poll_s: float = 0.05) -> Running:
    stop = asyncio.Event()
    return Running(sched, stop, asyncio.create_task(sched.run(stop, poll_s)))


async def until(cond: Callable[[], Awaitable[bool] | bool], limit_s: float = 5.0) -> float:
    """Wait (bounded) until ``cond`` holds; the seconds it took.  Fails the test on the limit."""
    t0 = time.monotonic()
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit_s:
            pytest.fail(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.02)


async def test_a_hung_recipient_holds_only_its_own_bulkhead(store: SqliteStore, raw: SqliteRaw) -> None:
    await add_rows(store, "dk", 6)
    await add_rows(store, "iis", 20)
    d = Deliverer(store, dk="hang")
    run = await start(scheduler(store, d))

    took = await until(lambda: d.delivered["iis"] == 20, limit_s=5.0)
    assert took < 3.0
    assert d.max_active["iis"] <= 2  # the bulkhead's bound
    assert run.sched.lanes("dk") == 2 and d.calls["dk"] == 2  # the hung registry got its two slots, no more
    assert await states(raw, "dk") == {"in_flight": 2, "pending": 4}

    # shutdown is bounded though two deliveries never end, and their rows are given back
    assert await run.halt() < 0.5 + 2.5
    assert await states(raw, "dk") == {"pending": 6}
    assert (await raw.fetch("SELECT COUNT(*) AS n FROM outbox WHERE claim_token IS NOT NULL"))[0]["n"] == 0
    assert run.sched.metrics.workers == {}  # a clean stop leaves no stale liveness beat


async def test_breaker_opens_after_n_transport_failures_then_a_probe_closes_it(
    store: SqliteStore, raw: SqliteRaw
) -> None:
    await add_rows(store, "dk", 10)
    d = Deliverer(store, dk="down")
    sched = scheduler(store, d, per_recipient=1, breaker_threshold=3, breaker_cooldown_s=0.6)
    run = await start(sched)
    gauge = sched.metrics.registry

    await until(lambda: sched.breaker("dk").state.value == "open")
    assert gauge.get_sample_value("gateway_delivery_breaker_state", {"recipient": "dk"}) == 2
    await asyncio.sleep(0.3)
    assert d.calls["dk"] == 3  # open: nothing claimed, no attempt spent
    assert await states(raw, "dk") == {"pending": 10}

    # the cool-down passes with the registry still down: exactly one probe, which re-opens it
    await until(lambda: d.calls["dk"] == 4, limit_s=2.0)
    await asyncio.sleep(0.2)
    assert d.calls["dk"] == 4 and sched.breaker("dk").state.value == "open"

    d.mode["dk"] = "ok"  # the registry is back: the next probe closes the breaker and the rest follows
    await until(lambda: d.delivered["dk"] == 10, limit_s=4.0)
    assert sched.breaker("dk").state.value == "closed"
    assert gauge.get_sample_value("gateway_delivery_breaker_state", {"recipient": "dk"}) == 0
    await run.halt()


async def test_half_open_sends_one_probe_even_with_free_slots(store: SqliteStore) -> None:
    await add_rows(store, "dk", 8)
    d = Deliverer(store, dk="down")
    sched = scheduler(store, d, per_recipient=4, breaker_threshold=2, breaker_cooldown_s=0.3)
    run = await start(sched)
    await until(lambda: sched.breaker("dk").state.value == "open" and sched.in_flight == 0)
    before = d.calls["dk"]  # up to four: rows started before it opened
    d.mode["dk"] = "slow"  # the probe takes a while: no second row may start meanwhile
    d.max_active.clear()
    await until(lambda: d.calls["dk"] == before + 1, limit_s=2.0)
    await asyncio.sleep(0.2)
    assert d.calls["dk"] == before + 1 and d.max_active["dk"] == 1
    await until(lambda: d.delivered["dk"] == 8, limit_s=6.0)
    assert d.max_active["dk"] > 1  # closed again: the bulkhead's four slots are used
    await run.halt()


async def test_a_dead_workers_rows_are_taken_over_within_the_lease(store: SqliteStore) -> None:
    await add_rows(store, "iis", 4)
    # a worker claims them and is killed: its lease (1 s) is never renewed
    dead = await store.claim_due(iso(utcnow()), 10, recipient="iis",
                                 lease_until=iso(utcnow() + dt.timedelta(seconds=1)))
    assert len(dead) == 4
    d = Deliverer(store)
    run = await start(scheduler(store, d, lease_s=1.0, recover_every_s=0.2))
    took = await until(lambda: d.delivered["iis"] == 4, limit_s=5.0)
    assert took < 2.5
    # the dead worker's late outcome is fenced off
    entry = make_entry(0, id=uuid.uuid4().hex, registration_id=dead[0].registration_id, recipient="iis")
    now = iso(utcnow())
    assert not await store.finish(dead[0], entry, state="done", next_attempt_at=None, now=now)
    await run.halt()


async def test_the_heartbeat_keeps_a_long_delivery_its_rows(store: SqliteStore) -> None:
    await add_rows(store, "iis", 2)
    d = Deliverer(store, iis="slow")
    d.slow_s = 3.0  # three leases long
    # a lease of 1 s (renewed every third of it): short enough that a delivery outlives three of them, long
    # enough that a group commit's fsync on a loaded machine does not eat the margin
    a = await start(scheduler(store, d, lease_s=1.0, recover_every_s=0.1))
    await until(lambda: d.calls["iis"] == 2)  # ``a`` holds both rows (reads run in parallel: no race for them)
    # another instance recovering lapsed claims all the while must not take live rows
    other = await start(scheduler(store, Deliverer(store), lease_s=1.0, recover_every_s=0.1))
    await until(lambda: d.delivered["iis"] == 2, limit_s=9.0)
    assert d.lost == 0 and d.calls["iis"] == 2
    await other.halt()
    await a.halt()


async def test_a_busy_recipient_gives_up_slots_to_a_waiting_one(store: SqliteStore) -> None:
    await add_rows(store, "iis", 30)
    d = Deliverer(store, iis="slow")
    d.slow_s = 0.1
    run = await start(scheduler(store, d, per_recipient=2, max_in_flight=2))
    await until(lambda: d.calls["iis"] >= 2)
    await add_rows(store, "eurid", 2)
    run.sched.wakeup.set()
    await until(lambda: d.delivered["eurid"] == 2, limit_s=3.0)
    assert d.delivered["iis"] < 30  # eurid did not wait for all of iis
    assert max(d.max_active.values()) <= 2
    await run.halt()


async def test_a_wakeup_picks_new_rows_up_before_the_next_poll(store: SqliteStore) -> None:
    d = Deliverer(store)
    run = await start(scheduler(store, d), poll_s=30.0)
    await asyncio.sleep(0.1)
    await add_rows(store, "iis", 3)
    run.sched.wakeup.set()
    took = await until(lambda: d.delivered["iis"] == 3, limit_s=3.0)
    assert took < 1.0
    assert await run.halt() < 1.0


async def test_the_wake_pipe_wakes_a_scheduler_before_its_next_look(store: SqliteStore, tmp_path: Path) -> None:
    """``gateway worker`` processes are woken by the API through a named pipe (``gateway.delivery.wake``)."""
    pipe = tmp_path / "delivery.wake"
    wake = wake_sender(pipe)
    wake()  # nobody listens yet: nothing happens, nothing raises
    d = Deliverer(store)
    sched = scheduler(store, d, recover_every_s=30.0)  # looks on its own every 10 s at most (heartbeat)
    listener = WakeListener(pipe, sched.wakeup)
    assert listener.start()
    try:
        run = await start(sched, poll_s=30.0)
        await asyncio.sleep(0.2)
        await add_rows(store, "iis", 3)
        wake()
        took = await until(lambda: d.delivered["iis"] == 3, limit_s=5.0)
        assert took < 1.0
        assert await run.halt() < 1.0
    finally:
        listener.close()


async def test_a_wake_listener_without_any_writer_stays_quiet(tmp_path: Path) -> None:
    """With no API process holding the pipe open, a reader would see end-of-file over and over; the listener
    holds a write end itself, so it waits for a byte."""
    event = asyncio.Event()
    listener = WakeListener(tmp_path / "delivery.wake", event)
    assert listener.start()
    try:
        await asyncio.sleep(0.3)
        assert not event.is_set()
        wake_sender(tmp_path / "delivery.wake")()
        await until(event.is_set, limit_s=2.0)
    finally:
        listener.close()
    (tmp_path / "not-a-pipe").write_text("")
    assert not WakeListener(tmp_path / "not-a-pipe", event).start()  # polling alone, no crash


async def test_a_deliverer_bug_does_not_stop_the_scheduler(store: SqliteStore, raw: SqliteRaw) -> None:
    await add_rows(store, "iis", 2)

    class Buggy(Deliverer):
        async def deliver(self, item: OutboxItem) -> Report:
            if item.recipient == "iis":
                raise RuntimeError("adapter bug")
            return await super().deliver(item)

    d = Buggy(store)
    run = await start(scheduler(store, d))
    await until(lambda: run.sched.lanes("iis") == 0 and run.sched.in_flight == 0)
    await add_rows(store, "eurid", 1)
    run.sched.wakeup.set()
    await until(lambda: d.delivered["eurid"] == 1)
    assert run.sched.metrics.workers and all(b.alive() for b in run.sched.metrics.workers.values())
    await run.halt()
    # the bug's rows were not released for a hot retry loop: their lease lapses first
    assert await states(raw, "iis") == {"in_flight": 2}


def test_gauges_are_made_once_per_registry() -> None:
    reg = CollectorRegistry()
    metrics = DeliveryMetrics(registry=reg, deliveries=None, epp_seconds=None)  # type: ignore[arg-type]

    async def make() -> None:
        store = object()
        Scheduler(store, Deliverer(store), metrics=metrics)  # type: ignore[arg-type]
        Scheduler(store, Deliverer(store), metrics=metrics)  # type: ignore[arg-type]

    asyncio.run(make())
