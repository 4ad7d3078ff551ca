"""A bounded pool of logged-in EPP sessions per registry, run the way registrars run them.

* at most ``max_sessions`` connections are open at once (registries enforce a per-registrar
  session limit and answer the next login with 2502); if a login is refused with 2502 anyway
  (another process of ours holds sessions), the pool lowers its own limit to what it holds, and
  raises it again by one per ``limit_recovery_s`` (the other holder may have gone);
* idle sessions are kept alive with ``<hello>`` every ``idle_keepalive_s`` so the registry's idle
  timeout does not cut them; one whose keep-alive fails is dropped and replaced on demand;
* a session that failed mid-command (timeout, dropped connection, garbled frame) is never reused:
  it is closed, and the next ``acquire`` reconnects;
* all sessions share one token bucket, so ``rate_limit_per_s`` caps the registrar's command rate
  across the whole pool (logins and hellos count: registries count them too);
* ``close()`` logs every session out cleanly and waits (bounded) for borrowed ones.

Use::

    async with EppSessionPool(endpoint, max_sessions=2, idle_keepalive_s=60, rate_limit_per_s=5) as pool:
        async with pool.acquire() as client:
            await client.send(DomainInfoQuery("exempel.se"), "trid-1")

The pool depends on the client, never the reverse; registrations and updates run on pooled
sessions with retries in ``adapters.epp.pooled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from adapters._closing import AsyncClosing
from adapters.epp.client import CommandObserver, EppClient
from adapters.epp.framing import DEFAULT_MAX_FRAME
from adapters.epp.outcomes import SESSION_LIMIT
from adapters.epp.ratelimit import TokenBucket
from adapters.epp.transport import TlsTransport, Transport
from adapters.epp.types import Endpoint
from gateway.errors import DeliveryError, TransientDeliveryError

__all__ = ["EppSessionPool", "PoolStats"]

log = logging.getLogger(__name__)

_MIN_TICK_S = 0.01


@dataclass
class PoolStats:
    """Counters for metrics and tests."""

    logins: int = 0
    login_failures: int = 0
    session_limit_hits: int = 0
    keepalives: int = 0
    keepalive_failures: int = 0
    discarded: int = 0
    logouts: int = 0


@dataclass(eq=False)
class _Pooled:
    client: EppClient
    last_used: float


class EppSessionPool(AsyncClosing):
    """Bounded, kept-alive, rate-limited EPP sessions for one registry endpoint.

    ``transport`` makes the connection of each new session (default: TLS to ``endpoint`` with
    ``max_frame``); tests pass one that returns a ``RecordingTransport``.  ``on_command`` is given to
    every session (``EppClient``): it sees each command's name, result code and seconds, for metrics.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        max_sessions: int = 2,
        idle_keepalive_s: float | None = 300.0,
        rate_limit_per_s: float | None = None,
        *,
        burst: int = 1,
        trid_prefix: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        logout_timeout_s: float = 2.0,
        limit_recovery_s: float = 300.0,
        transport: Callable[[], Transport] | None = None,
        on_command: CommandObserver | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if idle_keepalive_s is not None and idle_keepalive_s <= 0:
            raise ValueError("idle_keepalive_s must be positive (or None to disable keep-alive)")
        self.endpoint = endpoint
        self.max_sessions = max_sessions
        self.idle_keepalive_s = idle_keepalive_s
        self.rate_limiter = TokenBucket(rate_limit_per_s, burst) if rate_limit_per_s else None
        self.trid_prefix = trid_prefix or f"rgp-{secrets.token_hex(4)}"
        self.stats = PoolStats()
        self._transport = transport or (lambda: TlsTransport(endpoint, max_frame=max_frame))
        self._on_command = on_command
        self._logout_timeout_s = logout_timeout_s
        self._limit = max_sessions
        self._limit_recovery_s = limit_recovery_s
        self._limit_lowered_at = 0.0
        self._open = 0  # connections open or being opened: in use + idle + connecting
        self._idle: deque[_Pooled] = deque()
        self._clients: set[EppClient] = set()
        self._cond = asyncio.Condition()
        self._closed = False
        self._keepalive: asyncio.Task[None] | None = None
        self._sessions = 0

    # ---- introspection ---------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The session limit in force: ``max_sessions``, or lower after the registry answered 2502."""
        return self._limit

    @property
    def open_sessions(self) -> int:
        return self._open

    @property
    def idle_sessions(self) -> int:
        return len(self._idle)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> EppSessionPool:
        self._start_keepalive()
        return self

    async def aclose(self) -> None:
        """``close()`` with the default grace; what ``async with`` does on exit."""
        await self.close()

    def _start_keepalive(self) -> None:
        if self.idle_keepalive_s is None or self._keepalive is not None or self._closed:
            return
        self._keepalive = asyncio.get_running_loop().create_task(
            self._keepalive_loop(), name=f"epp-keepalive-{self.endpoint.host}"
        )

    async def close(self, *, grace_s: float = 5.0) -> None:
        """Stop keep-alives, log out idle sessions, wait up to ``grace_s`` for borrowed ones."""
        if self._closed:
            return
        self._closed = True
        task, self._keepalive = self._keepalive, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._cond:
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        await asyncio.gather(*(self._retire(p) for p in idle))
        try:
            async with asyncio.timeout(grace_s), self._cond:
                await self._cond.wait_for(lambda: self._open == 0)
        except TimeoutError:
            log.warning("EPP pool for %s closed with %d sessions still borrowed", self.endpoint.host, self._open)
        for client in list(self._clients):
            await client.close()
        self._clients.clear()

    # ---- borrowing -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[EppClient]:
        """Borrow a logged-in session; it goes back to the pool (or is dropped if broken) on exit."""
        pooled = await self._checkout()
        try:
            yield pooled.client
        finally:
            await self._checkin(pooled)

    def _recover_limit(self) -> None:
        if self._limit < self.max_sessions and time.monotonic() - self._limit_lowered_at >= self._limit_recovery_s:
            self._limit += 1
            self._limit_lowered_at = time.monotonic()
            log.info("EPP pool for %s tries %d sessions again", self.endpoint.host, self._limit)

    async def _checkout(self) -> _Pooled:
        self._start_keepalive()
        self._recover_limit()
        stale: list[_Pooled] = []
        try:
            async with self._cond:
                while True:
                    if self._closed:
                        raise TransientDeliveryError("EPP session pool is closed")
                    while self._idle:
                        pooled = self._idle.pop()  # most recently used first: least likely to be stale
                        if pooled.client.usable:
                            return pooled
                        stale.append(pooled)
                        self._open -= 1
                    if self._open < self._limit:
                        self._open += 1
                        break
                    await self._cond.wait()
        finally:
            for pooled in stale:
                self.stats.discarded += 1
                await self._drop(pooled.client)
        return await self._connect()

    async def _connect(self) -> _Pooled:
        self._sessions += 1
        client = EppClient(
            self._transport(), trid_prefix=f"{self.trid_prefix}-s{self._sessions}", rate_limiter=self.rate_limiter,
            on_command=self._on_command,
        )
        self._clients.add(client)
        try:
            await client.connect()
        except BaseException as exc:
            self.stats.login_failures += 1
            await self._drop(client)
            async with self._cond:
                self._open -= 1
                if isinstance(exc, DeliveryError) and exc.result_code == SESSION_LIMIT:
                    self.stats.session_limit_hits += 1
                    self._limit = max(1, min(self._limit, self._open))
                    self._limit_lowered_at = time.monotonic()
                    log.warning(
                        "EPP registry %s refused a session (2502); pool limit lowered to %d",
                        self.endpoint.host,
                        self._limit,
                    )
                self._cond.notify()
            raise
        self.stats.logins += 1
        return _Pooled(client, time.monotonic())

    async def _checkin(self, pooled: _Pooled) -> None:
        if self._closed or not pooled.client.usable:
            if not pooled.client.usable:
                self.stats.discarded += 1
            await self._retire(pooled)
            return
        pooled.last_used = time.monotonic()
        async with self._cond:
            self._idle.append(pooled)
            self._cond.notify()

    async def _drop(self, client: EppClient) -> None:
        self._clients.discard(client)
        await client.close()

    async def _retire(self, pooled: _Pooled) -> None:
        """Log out (if still possible) and close; frees the slot."""
        client = pooled.client
        try:
            if client.usable:
                try:
                    async with asyncio.timeout(self._logout_timeout_s):
                        await client.logout()
                    self.stats.logouts += 1
                except (DeliveryError, TimeoutError):
                    log.warning("EPP logout failed for a pooled session of %s", self.endpoint.host)
        finally:
            await self._drop(client)
            async with self._cond:
                self._open -= 1
                self._cond.notify_all()

    # ---- keep-alive ------------------------------------------------------------------------------

    async def _keepalive_loop(self) -> None:
        assert self.idle_keepalive_s is not None
        interval = self.idle_keepalive_s
        while not self._closed:
            now = time.monotonic()
            next_due = min((p.last_used + interval for p in self._idle), default=now + interval)
            await asyncio.sleep(max(_MIN_TICK_S, next_due - now))
            async with self._cond:
                now = time.monotonic()
                due = [p for p in self._idle if now - p.last_used >= interval]
                for p in due:
                    self._idle.remove(p)
            for pooled in due:
                await self._keep_alive(pooled)

    async def _keep_alive(self, pooled: _Pooled) -> None:
        try:
            await pooled.client.hello()
        except DeliveryError:
            self.stats.keepalive_failures += 1
            self.stats.discarded += 1
            log.info("EPP keep-alive failed for a session of %s; dropping it", self.endpoint.host)
            await self._retire(pooled)
            return
        except BaseException:
            await self._retire(pooled)
            raise
        self.stats.keepalives += 1
        await self._checkin(pooled)
