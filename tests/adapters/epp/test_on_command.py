"""The client's per-command observer (``on_command``), over a ``RecordingTransport``: each command's
name, result code (``None`` without a readable answer) and seconds; frames unchanged; through the pool
and into ``gateway_epp_command_duration_seconds``."""

from __future__ import annotations

import pytest

from adapters.epp.client import EppClient, register_with
from adapters.epp.pool import EppSessionPool
from adapters.epp.transport import RECORDING_ENDPOINT, Answer, RecordingTransport, answer, echo
from adapters.epp.types import DomainInfoQuery
from adapters.epp.xml import build_response
from gateway.delivery.epp_pools import EppPools
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.logs import DeliveryMetrics
from tests.adapters.epp.test_transport import commands
from tests.adapters.epp.test_xml import sample_domain


class Seen(list[tuple[str, int | None, float]]):
    def __call__(self, command: str, code: int | None, seconds: float) -> None:
        self.append((command, code, seconds))

    def codes(self) -> list[tuple[str, int | None]]:
        return [(c, code) for c, code, _ in self]


async def test_the_hook_sees_each_command_with_its_code_and_duration() -> None:
    seen = Seen()
    async with EppClient(RecordingTransport(), trid_prefix="o", on_command=seen) as client:
        await register_with(client, commands(), "o")
        await client.hello()  # no command: not observed
    assert seen.codes() == [("login", 1000), ("contact:create", 1000), ("domain:create", 1000), ("logout", 1500)]
    assert all(isinstance(s, float) and s >= 0 for _, _, s in seen)


async def test_frames_are_the_same_with_and_without_the_hook() -> None:
    plain, hooked = RecordingTransport(), RecordingTransport()
    async with EppClient(plain, trid_prefix="f") as client:
        await register_with(client, commands(), "f")
    async with EppClient(hooked, trid_prefix="f", on_command=Seen()) as client:
        await register_with(client, commands(), "f")
    assert hooked.written == plain.written


async def test_an_error_code_is_observed_before_it_raises() -> None:
    def respond(frame: bytes) -> Answer:
        return answer(frame, 2303) if b"<domain:info" in frame else echo()(frame)

    seen = Seen()
    async with EppClient(RecordingTransport(respond), on_command=seen) as client:
        with pytest.raises(PermanentDeliveryError):
            await client.send(DomainInfoQuery("gone.se"), "t-info")
    assert seen.codes()[1] == ("domain:info", 2303)


@pytest.mark.parametrize(
    "failure", [TimeoutError(), ConnectionResetError(), b"<not-epp"], ids=["timeout", "reset", "garbled"]
)
async def test_no_readable_answer_is_observed_as_none(failure: Answer) -> None:
    seen = Seen()
    transport = RecordingTransport([build_response(1000, "ok", "x-login", "S1"), failure])
    async with EppClient(transport, trid_prefix="x", on_command=seen) as client:
        with pytest.raises(TransientDeliveryError):
            await client.send(sample_domain("x.se"), "x-domain")
    assert seen.codes() == [("login", 1000), ("domain:create", None)]


async def test_a_failing_hook_changes_nothing() -> None:
    def broken(command: str, code: int | None, seconds: float) -> None:
        raise RuntimeError("metrics down")

    transport = RecordingTransport()
    async with EppClient(transport, trid_prefix="b", on_command=broken) as client:
        outcome = await register_with(client, commands(), "b")
    assert outcome.domain_result.code == 1000 and len(transport.written) == 4


async def test_the_pool_gives_the_hook_to_every_session() -> None:
    seen = Seen()
    async with EppSessionPool(RECORDING_ENDPOINT, idle_keepalive_s=None, transport=RecordingTransport,
                              on_command=seen) as pool:
        async with pool.acquire() as client:
            await client.send(sample_domain("p.se"))
    assert seen.codes() == [("login", 1000), ("domain:create", 1000), ("logout", 1500)]


def test_epp_pools_time_commands_into_the_histogram() -> None:
    metrics = DeliveryMetrics.create()
    pools = EppPools(max_sessions=1, idle_keepalive_s=None, rate_limit_per_s=None, attempts=1, metrics=metrics,
                     registry_label=lambda ep: "iis-se")
    observe = pools.pool(RECORDING_ENDPOINT)._on_command
    assert observe is not None
    observe("contact:create", 1000, 0.2)
    observe("domain:create", None, 0.3)
    sample = metrics.registry.get_sample_value
    assert sample("gateway_epp_command_duration_seconds_count",
                  {"registry": "iis-se", "command": "contact:create", "code": "1000"}) == 1
    assert sample("gateway_epp_command_duration_seconds_sum",
                  {"registry": "iis-se", "command": "domain:create", "code": "error"}) == pytest.approx(0.3)
    unmeasured = EppPools(max_sessions=1, idle_keepalive_s=None, rate_limit_per_s=None, attempts=1)
    assert unmeasured.pool(RECORDING_ENDPOINT)._on_command is None
    assert EppPools(max_sessions=1, idle_keepalive_s=None, rate_limit_per_s=None, attempts=1,
                    metrics=metrics).registry_label(RECORDING_ENDPOINT) == "recording.invalid"
