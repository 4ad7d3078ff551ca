"""A registry that accepts TCP and never answers, next to the real TLS sandbox: every network step has a
deadline, a first frame that is no greeting is transient, and under the scheduler the hung registry stalls
only its own rows (the issue's ".dk hangs, every TLD waits" case), its breaker opens, and a shutdown with
its rows in flight is bounded and gives them back."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.epp.client import EppClient, register
from adapters.epp.framing import write_frame
from adapters.epp.sandbox import RegistrySandbox
from adapters.epp.tls import DevPki, ensure_dev_pki
from adapters.epp.types import Endpoint
from gateway.clock import iso, utcnow
from gateway.delivery.scheduler import Scheduler
from gateway.errors import DeliveryError, PermanentDeliveryError, RegistryUnreachable
from gateway.logs import DeliveryMetrics
from gateway.store.base import OutboxItem
from gateway.store.sqlite import SqliteStore
from tests.adapters.epp.test_client_sandbox import commands
from tests.delivery.test_scheduler import until
from tests.store.conftest import SqliteRaw, make_accepted, make_entry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, validate_schemas=True, require_client_cert=True) as sb:
        yield sb
        assert sb.schema_errors == []


async def _server(handler: object, ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if handler == "greet-garbage":
            await write_frame(writer, b"HTTP/1.1 400 Bad Request\r\n\r\n")
        # otherwise (and after the garbage): say nothing, keep the connection open

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx,
                                        ssl_handshake_timeout=60 if ctx is not None else None)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for w in held:
            w.transport.abort()
        server.close()


def _tls(pki: DevPki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    return ctx


@pytest.fixture
async def hung_tcp() -> AsyncIterator[int]:
    """Accepts TCP and never answers: not even the TLS handshake."""
    async for port in _server("silent"):
        yield port


@pytest.fixture
async def hung_tls(pki: DevPki) -> AsyncIterator[int]:
    """Completes the TLS handshake, then never sends a greeting."""
    async for port in _server("silent", _tls(pki)):
        yield port


def at(sandbox: RegistrySandbox, port: int, timeout_s: float) -> Endpoint:
    return dataclasses.replace(sandbox.endpoint(timeout_s=timeout_s), port=port)


@pytest.fixture(params=["hung_tcp", "hung_tls", "garbage_tls"])
async def faulty(request: pytest.FixtureRequest, pki: DevPki) -> AsyncIterator[tuple[str, int]]:
    """Each kind of registry that never greets: silent before the TLS handshake, silent after it, and one
    whose well-framed first frame is not XML (a proxy on the registry's port)."""
    which = str(request.param)
    mode = "greet-garbage" if which == "garbage_tls" else "silent"
    async for port in _server(mode, None if which == "hung_tcp" else _tls(pki)):
        yield which, port


async def test_every_connect_step_has_a_deadline_and_is_transient(
    faulty: tuple[str, int], sandbox: RegistrySandbox
) -> None:
    which, port = faulty
    t0 = time.monotonic()
    with pytest.raises(RegistryUnreachable) as info:
        async with asyncio.timeout(5), EppClient(at(sandbox, port, 0.4)):
            pass
    assert time.monotonic() - t0 < 1.5
    assert info.value.extra["epp_command"] == ("connect" if which == "hung_tcp" else "greeting")


async def test_a_refused_connection_is_unreachable(sandbox: RegistrySandbox) -> None:
    with pytest.raises(RegistryUnreachable):
        async with EppClient(at(sandbox, 1, 0.5)):  # nothing listens on port 1
            pass


async def test_a_greeting_without_our_services_stays_permanent(sandbox: RegistrySandbox, pki: DevPki) -> None:
    # for contrast: the server speaks EPP but nothing we can use; no retry helps (and no breaker counts it)
    from adapters.epp.xml import build_greeting

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await write_frame(writer, build_greeting("other", "2000-01-01T00:00:00.0Z", ("urn:x:nothing",), ()))
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=_tls(pki))
    try:
        port = int(server.sockets[0].getsockname()[1])
        with pytest.raises(PermanentDeliveryError) as info:
            async with EppClient(at(sandbox, port, 2.0)):
                pass
        assert not isinstance(info.value, RegistryUnreachable)
    finally:
        server.close()


class EppDeliverer:
    """Registers each row's domain at its recipient's endpoint (the sandbox, or the hung server), records
    the outcome with the store's fenced ``finish`` and reports transport failures, as the worker does."""

    def __init__(self, store: SqliteStore, endpoints: dict[str, Endpoint]) -> None:
        self.store, self.endpoints = store, endpoints
        self.calls: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.latency: list[float] = []

    async def deliver(self, item: OutboxItem) -> DeliveryReport:
        self.calls[item.recipient] += 1
        t0 = time.monotonic()
        label = item.registration_id.rsplit("-", 1)[-1]
        now = iso(utcnow())
        entry = make_entry(0, id=uuid.uuid4().hex, registration_id=item.registration_id, recipient=item.recipient)
        try:
            ep = self.endpoints[item.recipient]
            await register(ep, commands(f"ex{label}.se", f"RGH{label}"), item.registration_id)
        except DeliveryError as exc:
            await self.store.finish(item, entry, state="pending", next_attempt_at=iso(utcnow()), now=now)
            return DeliveryReport("retry", isinstance(exc, RegistryUnreachable))
        await self.store.finish(item, entry, state="done", next_attempt_at=None, now=now)
        self.delivered[item.recipient] += 1
        self.latency.append(time.monotonic() - t0)
        return DeliveryReport("delivered", False)

    async def recover(self) -> int:
        now = utcnow()
        return await self.store.requeue_in_flight(iso(now), iso(now - dt.timedelta(seconds=120)))


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    outcome: str
    transport_failure: bool


async def _rows(store: SqliteStore, recipient: str, first: int, n: int) -> None:
    when = iso(utcnow() - dt.timedelta(seconds=1))
    for i in range(first, first + n):
        await store.accept(make_accepted(i, recipients=(recipient,)), when)


async def test_a_hung_dk_stalls_only_dk(sandbox: RegistrySandbox, hung_tls: int, tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "gw.db"))
    raw = SqliteRaw(str(tmp_path / "gw.db"))
    await _rows(store, "dk-hostmaster", 1000, 4)
    await _rows(store, "iis", 2000, 20)
    d = EppDeliverer(store, {"iis": sandbox.endpoint(timeout_s=5.0), "dk-hostmaster": at(sandbox, hung_tls, 60.0)})
    sched = Scheduler(store, d, per_recipient=2, max_in_flight=8, lease_s=30.0, shutdown_grace_s=1.0,
                      metrics=DeliveryMetrics.create())
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop, 0.05))
    try:
        took = await until(lambda: d.delivered["iis"] == 20, limit_s=10.0)
        assert took < 6.0  # the issue: 14 of 210 in 80 s
        assert sorted(d.latency)[len(d.latency) // 2] < 1.0  # median latency (the issue: 43 s)
        assert sched.lanes("dk-hostmaster") == 2 and d.calls["dk-hostmaster"] == 2
    finally:
        t_stop = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - t_stop < 4.0  # grace 1 s + unwinding, not the 60 s deadline
    rows = await raw.fetch("SELECT state, claim_token FROM outbox WHERE recipient='dk-hostmaster'")
    assert [(r["state"], r["claim_token"]) for r in rows] == [("pending", None)] * 4
    await store.close()


async def test_a_hung_registry_opens_its_breaker(sandbox: RegistrySandbox, hung_tcp: int, tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "gw.db"))
    await _rows(store, "dk-hostmaster", 3000, 10)
    d = EppDeliverer(store, {"dk-hostmaster": at(sandbox, hung_tcp, 0.2)})
    sched = Scheduler(store, d, per_recipient=1, breaker_threshold=3, breaker_cooldown_s=60.0,
                      metrics=DeliveryMetrics.create())
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop, 0.05))
    try:
        await until(lambda: sched.breaker("dk-hostmaster").state.value == "open")
        await asyncio.sleep(0.5)
        assert d.calls["dk-hostmaster"] == 3  # no attempts burnt while open
        value = sched.metrics.registry.get_sample_value("gateway_delivery_breaker_state",
                                                        {"recipient": "dk-hostmaster"})
        assert value == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await store.pending_count() == 10
    await store.close()
