"""Delivery scheduling: which outbox rows are claimed when, so that one bad registry stalls only itself.

The old loop claimed a batch and waited for all of it, so one registry that accepts TCP and never answers
held every other TLD's rows behind its timeouts.  Here each recipient is a **bulkhead**: at most
``per_recipient`` of its rows are in flight, in *lanes*.  A lane delivers one row, then at once claims the
next row of the same recipient, so a fast registry is never held back by a slow one; the loop only opens
lanes for recipients with due rows and free slots (on a wake-up, when a lane ends, or every ``poll_s``).
Claiming is therefore continuous, never batch by batch: a slot that frees claims its next row at once.
A wake-up is set by the accepting process itself (delivery in process) or, for ``gateway worker``
processes, by a byte on the wake pipe (``gateway.delivery.wake``); ``poll_s`` only bounds how long rows
queued elsewhere (another host, a retry's backoff ending) wait to be seen.
``max_in_flight`` caps all lanes together; when it is reached and another recipient waits, lanes hand
their slot back after each row, recipients without a lane first.

Each recipient has a **circuit breaker** (``adapters.breaker``): after ``breaker_threshold`` consecutive
transport failures nothing of that recipient is claimed (its rows stay pending, their attempts unspent)
until a cool-down has passed; then one row is claimed as a probe, and its outcome closes or re-opens it.

**Leases and fencing**: rows are claimed for ``lease_s``, and a heartbeat every ``lease_s / 3`` renews the
claims of every row still in flight, so a live delivery keeps its rows however long its deadlines let it
run, while a dead process's rows lapse within ``lease_s`` and the periodic ``recover`` (every
``recover_every_s``, any instance) hands them to whoever claims next.  The worker records outcomes only
under the claim's token, so a worker that lost its claim writes nothing.

**Bounded shutdown**: on stop nothing new is claimed, lanes get ``shutdown_grace_s`` to finish their row,
then they are cancelled and their rows released (pending, due at once) for this or another instance.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Gauge

from adapters.breaker import BreakerState, CircuitBreaker, Permit
from gateway.clock import Clock, iso, utcnow
from gateway.logs import DeliveryMetrics, WorkerBeat, delivery_metrics
from gateway.store.base import OutboxItem, Store

__all__ = ["Deliverer", "DeliveryReportLike", "Scheduler", "SchedulerGauges"]

log = structlog.get_logger("gateway.delivery")

#: how long cancelled lanes get to unwind (close their connections) before their claims are released anyway
_UNWIND_S = 1.5
#: a store call made while stopping (releasing claims) may take this long at most
_RELEASE_S = 2.0


class DeliveryReportLike(Protocol):
    """What the scheduler needs to know of one delivery (``gateway.delivery.worker.DeliveryReport``)."""

    @property
    def outcome(self) -> str: ...  # "delivered" | "retry" | "parked" | "failed" | "lost_claim"

    @property
    def transport_failure(self) -> bool: ...  # the connection failed: fed to the endpoint's breaker


class Deliverer(Protocol):
    """Delivers one claimed row and records its outcome (never raising for delivery errors)."""

    def deliver(self, item: OutboxItem) -> Awaitable[DeliveryReportLike]: ...

    def recover(self) -> Awaitable[int]: ...


@dataclass(frozen=True)
class SchedulerGauges:
    """Per recipient: the breaker's state (0 closed, 1 half-open, 2 open) and the rows in flight.
    Labels are recipient ids only."""

    breaker: Gauge
    in_flight: Gauge


_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, SchedulerGauges] = weakref.WeakKeyDictionary()


def scheduler_gauges(registry: CollectorRegistry) -> SchedulerGauges:
    """The gauges in ``registry``, made once per registry (several schedulers of a process share them)."""
    gauges = _GAUGES.get(registry)
    if gauges is None:
        gauges = _GAUGES[registry] = SchedulerGauges(
            breaker=Gauge("gateway_delivery_breaker_state", "Circuit breaker per recipient endpoint "
                          "(0 closed, 1 half-open, 2 open)", ["recipient"], registry=registry),
            in_flight=Gauge("gateway_delivery_in_flight", "Outbox rows being delivered, per recipient",
                            ["recipient"], registry=registry),
        )
    return gauges


@dataclass(eq=False, repr=False)  # compared by identity, as a running loop
class Scheduler:
    """Claims and delivers outbox rows per recipient; ``run(stop, poll_s)`` for the app's lifetime."""

    store: Store
    deliverer: Deliverer
    _: KW_ONLY
    per_recipient: int = 2
    max_in_flight: int = 16
    lease_s: float = 30.0
    recover_every_s: float = 5.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    shutdown_grace_s: float = 3.0
    clock: Clock = utcnow
    metrics: DeliveryMetrics = field(default_factory=delivery_metrics)
    #: set to look for due rows now rather than at the next poll (a registration was accepted, a slot freed)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.per_recipient < 1 or self.max_in_flight < 1:
            raise ValueError("per_recipient and max_in_flight must be at least 1")
        if self.lease_s <= 0 or self.recover_every_s <= 0:
            raise ValueError("lease_s and recover_every_s must be positive")
        self._lanes: dict[str, set[asyncio.Task[None]]] = {}
        self._held: dict[str, OutboxItem] = {}  # token -> row in flight under it
        self._breakers: dict[str, CircuitBreaker] = {}
        self._stopping = False
        self._starved = False
        self._gauges = scheduler_gauges(self.metrics.registry)

    # ---- introspection (tests, metrics) ---------------------------------------------------------------

    def breaker(self, recipient: str) -> CircuitBreaker:
        b = self._breakers.get(recipient)
        if b is None:
            b = self._breakers[recipient] = CircuitBreaker(self.breaker_threshold, self.breaker_cooldown_s)
        return b

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def lanes(self, recipient: str) -> int:
        return len(self._lanes.get(recipient, ()))

    # ---- the loop -------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        """Schedule until ``stop`` is set, then stop within about ``shutdown_grace_s`` (see the module)."""
        # liveness for /readyz: a beat per round; a loop that ends other than by ``stop`` is marked crashed
        beat = self.metrics.workers[id(self)] = WorkerBeat(lease_s=max(self.lease_s, 3 * poll_s))
        try:
            await self._loop(stop, poll_s, beat)
        except asyncio.CancelledError:
            self.metrics.workers.pop(id(self), None)
            raise
        except BaseException:
            beat.crashed = True
            raise
        finally:
            await self._shutdown()
        self.metrics.workers.pop(id(self), None)

    async def _loop(self, stop: asyncio.Event, poll_s: float, beat: WorkerBeat) -> None:
        loop = asyncio.get_running_loop()
        next_recover = loop.time()
        heartbeat_s = self.lease_s / 3
        next_heartbeat = loop.time() + heartbeat_s
        while not stop.is_set():
            beat.at = time.monotonic()
            try:
                if loop.time() >= next_recover:  # rows of a dead instance (or of this one before a crash)
                    await self.deliverer.recover()
                    next_recover = loop.time() + self.recover_every_s
                if loop.time() >= next_heartbeat:
                    await self._heartbeat()
                    next_heartbeat = loop.time() + heartbeat_s
                self.wakeup.clear()  # before looking: a wake-up during the look means another look
                await self._fill()
            except Exception as exc:  # the loop must survive a store hiccup; log the type, never a message
                log.error("scheduler.loop_error", error_type=type(exc).__name__)
            now = loop.time()
            timeout = max(0.0, min(poll_s, next_recover - now, next_heartbeat - now))
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wakeup.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _heartbeat(self) -> None:
        tokens = list(self._held)
        if tokens:
            await self.store.renew_claims(tokens, self._lease_until())

    def _lease_until(self) -> str:
        return iso(self.clock() + timedelta(seconds=self.lease_s))

    async def _fill(self) -> None:
        """Open lanes for recipients with due rows and free slots, those with fewest lanes first."""
        self._starved = False
        if self._stopping:
            return
        due = await self.store.due_recipients(iso(self.clock()))
        for recipient in sorted(due, key=lambda r: (self.lanes(r), r)):
            free = min(self.per_recipient - self.lanes(recipient), self.max_in_flight - self._lane_count())
            if free <= 0:
                if self._lane_count() >= self.max_in_flight and self.lanes(recipient) == 0:
                    self._starved = True  # lanes give their slot back after their current row
                continue
            permits = self._admit(recipient, free)
            if not permits:
                continue
            items = await self.store.claim_due(
                iso(self.clock()), len(permits), recipient=recipient, lease_until=self._lease_until()
            )
            for permit in permits[len(items):]:
                self.breaker(recipient).abandon(permit)
            for item, permit in zip(items, permits, strict=False):
                self._start_lane(recipient, item, permit)

    def _admit(self, recipient: str, n: int) -> list[Permit]:
        breaker, permits = self.breaker(recipient), []
        for _ in range(n):
            permit = breaker.admit()
            if permit is None:
                break
            permits.append(permit)
            if permit is Permit.PROBE:
                break
        self._gauges.breaker.labels(recipient).set(breaker.state.gauge)
        return permits

    def _lane_count(self) -> int:
        return sum(len(s) for s in self._lanes.values())

    def _start_lane(self, recipient: str, item: OutboxItem, permit: Permit) -> None:
        self._held[item.token] = item
        task = asyncio.create_task(self._lane(recipient, item, permit), name=f"delivery-lane-{recipient}")
        lanes = self._lanes.setdefault(recipient, set())
        lanes.add(task)
        self._gauges.in_flight.labels(recipient).set(len(lanes))

        def done(t: asyncio.Task[None]) -> None:
            lanes.discard(t)
            self._gauges.in_flight.labels(recipient).set(len(lanes))
            if not t.cancelled() and t.exception() is not None:  # _lane catches what it expects
                log.error("scheduler.lane_crashed", recipient=recipient, error_type=type(t.exception()).__name__)
            self.wakeup.set()  # a slot is free: another recipient (or this one) may have rows waiting

        task.add_done_callback(done)

    async def _lane(self, recipient: str, item: OutboxItem, permit: Permit) -> None:
        """Deliver ``item``, then keep claiming this recipient's rows one by one while it may."""
        while True:
            await self._deliver(recipient, item, permit)
            if self._stopping or self._starved:
                return
            next_permit = self.breaker(recipient).admit()
            if next_permit is None:
                return
            try:
                items = await self.store.claim_due(
                    iso(self.clock()), 1, recipient=recipient, lease_until=self._lease_until()
                )
            except Exception as exc:
                log.error("scheduler.claim_error", recipient=recipient, error_type=type(exc).__name__)
                items = []
            if not items:
                self.breaker(recipient).abandon(next_permit)
                return
            item, permit = items[0], next_permit
            self._held[item.token] = item

    async def _deliver(self, recipient: str, item: OutboxItem, permit: Permit) -> None:
        breaker = self.breaker(recipient)
        try:
            report = await self.deliverer.deliver(item)
        except asyncio.CancelledError:
            breaker.abandon(permit)  # the row stays held: shutdown releases it
            raise
        except Exception as exc:
            # Not a delivery error (the deliverer records those) but a bug or a store failure.  The row is
            # no longer renewed: its lease lapses and ``recover`` retries it later, which is the backoff.
            log.error("scheduler.deliver_error", recipient=recipient, error_type=type(exc).__name__)
            breaker.abandon(permit)
            self._held.pop(item.token, None)
            return
        self._held.pop(item.token, None)
        before = breaker.state
        breaker.record(permit, transport_failure=report.transport_failure)
        after = breaker.state
        self._gauges.breaker.labels(recipient).set(after.gauge)
        if after is not before:
            log.warning("scheduler.breaker", recipient=recipient, state=after.value, failures=breaker.failures)
            if after is BreakerState.CLOSED:
                self.wakeup.set()  # the probe got through: open the other slots now

    # ---- stopping -------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Stop claiming; give lanes ``shutdown_grace_s``; cancel the rest; release what they held."""
        self._stopping = True
        tasks = [t for lanes in self._lanes.values() for t in lanes]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=_UNWIND_S)
        tokens = list(self._held)
        self._held.clear()
        released = 0
        if tokens:
            try:
                async with asyncio.timeout(_RELEASE_S):
                    released = await self.store.release_claims(tokens, iso(self.clock()))
            except Exception as exc:  # their leases lapse instead, and ``recover`` (anywhere) takes them
                log.error("scheduler.release_error", error_type=type(exc).__name__)
        log.info("scheduler.stopped", cancelled=len(tokens), released=released)
