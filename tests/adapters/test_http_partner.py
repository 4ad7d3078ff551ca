"""HttpPartnerClient against respx: retry classification, idempotency, bounds, and no personal data in errors."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from adapters.http_partner import HttpPartnerClient, PartnerEndpoint, is_transient_status
from gateway.errors import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError

BASE = "https://mail.partner.test"
PII = ("Anna Andersson", "anna.andersson@example.se", "19811218-9876", "Storgatan 1")
PAYLOAD: dict[str, Any] = {"to": PII[1], "name": PII[0], "template": "welcome"}


class Sleeps(list[float]):
    """Records the back-off delays instead of waiting for them."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def endpoint(**kw: Any) -> PartnerEndpoint:
    defaults: dict[str, Any] = dict(
        base_url=BASE, token="s3cret-token", timeout_s=2.0, verify=True, max_attempts=4, max_total_s=5.0,
        name="mailer", backoff_base_s=0.01, backoff_max_s=0.05,
    )
    defaults.update(kw)
    return PartnerEndpoint(**defaults)


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(router: respx.Router, sleeps: Sleeps) -> AsyncIterator[HttpPartnerClient]:
    async with HttpPartnerClient(endpoint(), transport=httpx.MockTransport(router.async_handler), sleep=sleeps) as c:
        yield c


def assert_no_pii(exc: BaseException, caplog: pytest.LogCaptureFixture | None = None) -> None:
    # Every exception in the chain (the part of a traceback that is not our own source code).
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), *traceback.format_exception_only(seen)]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    if isinstance(exc, DeliveryError):
        texts.append(json.dumps(exc.problem(), default=str))
    if caplog is not None:
        texts.append(caplog.text)
    for text in texts:
        for value in PII:
            assert value not in text


async def test_503_then_200_is_one_success_with_two_attempts(
    client: HttpPartnerClient, router: respx.Router, sleeps: Sleeps
) -> None:
    route = router.post("/v1/messages").mock(
        side_effect=[httpx.Response(503), httpx.Response(202, json={"id": "msg-77"})]
    )
    receipt = await client.send("/v1/messages", PAYLOAD, "delivery-1")
    assert (receipt.status, receipt.partner_ref, receipt.attempts) == (202, "msg-77", 2)
    assert route.call_count == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.05


async def test_same_idempotency_key_and_body_on_every_retry(client: HttpPartnerClient, router: respx.Router) -> None:
    route = router.post("/v1/messages").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.ReadTimeout("slow"), httpx.Response(200)]
    )
    receipt = await client.send("/v1/messages", PAYLOAD, "delivery-42")
    assert receipt.attempts == 4
    requests = [call.request for call in route.calls]
    assert {r.headers["Idempotency-Key"] for r in requests} == {"delivery-42"}
    assert len({r.content for r in requests}) == 1
    assert json.loads(requests[0].content) == PAYLOAD
    assert {r.headers["Authorization"] for r in requests} == {"Bearer s3cret-token"}
    assert requests[0].headers["Content-Type"] == "application/json"


async def test_429_retry_after_is_honoured(client: HttpPartnerClient, router: respx.Router, sleeps: Sleeps) -> None:
    router.post("/v1/messages").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200)]
    )
    receipt = await client.send("/v1/messages", PAYLOAD, "k")
    assert receipt.attempts == 2
    assert sleeps == [3.0]


async def test_retry_after_as_http_date(client: HttpPartnerClient, router: respx.Router, sleeps: Sleeps) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    router.post("/v1/messages").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200)]
    )
    await client.send("/v1/messages", PAYLOAD, "k")
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 4.0


async def test_long_retry_after_is_left_to_the_worker(
    client: HttpPartnerClient, router: respx.Router, sleeps: Sleeps
) -> None:
    route = router.post("/v1/messages").mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(TransientDeliveryError) as info:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert route.call_count == 1 and sleeps == []
    assert info.value.result_code == 429
    assert info.value.extra["retry_after_s"] == 120.0
    assert info.value.extra["attempts"] == 1


async def test_400_is_permanent_after_exactly_one_request(client: HttpPartnerClient, router: respx.Router) -> None:
    route = router.post("/v1/messages").mock(return_value=httpx.Response(400, json={"error": "bad"}))
    with pytest.raises(PermanentDeliveryError) as info:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert route.call_count == 1
    assert info.value.result_code == 400
    assert info.value.extra["attempts"] == 1


@pytest.mark.parametrize(
    ("status", "transient"),
    [(408, True), (409, True), (425, True), (429, True), (500, True), (502, True), (503, True), (504, True),
     (507, True), (401, False), (403, False), (404, False), (413, False), (422, False), (501, False), (505, False)],
)
async def test_status_classification(
    client: HttpPartnerClient, router: respx.Router, status: int, transient: bool
) -> None:
    assert is_transient_status(status) is transient
    route = router.post("/v1/messages").mock(return_value=httpx.Response(status))
    expected = TransientDeliveryError if transient else PermanentDeliveryError
    with pytest.raises(expected) as info:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert info.value.result_code == status
    assert route.call_count == (4 if transient else 1)


async def test_redirect_is_not_followed(client: HttpPartnerClient, router: respx.Router) -> None:
    route = router.post("/v1/messages").mock(
        return_value=httpx.Response(307, headers={"Location": "https://elsewhere.test/"})
    )
    with pytest.raises(PermanentDeliveryError) as info:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert info.value.result_code == 307
    assert route.call_count == 1  # and nothing went to elsewhere.test: the router would have refused it


@pytest.mark.parametrize("error", [httpx.ConnectTimeout("t"), httpx.ReadTimeout("t"), httpx.ConnectError("refused"),
                                   httpx.RemoteProtocolError("dropped")])
async def test_transport_errors_are_retried(
    client: HttpPartnerClient, router: respx.Router, error: Exception
) -> None:
    route = router.post("/v1/messages").mock(side_effect=[error, httpx.Response(200, json={"reference": "r-1"})])
    receipt = await client.send("/v1/messages", PAYLOAD, "k")
    assert (receipt.attempts, receipt.partner_ref) == (2, "r-1")
    assert route.call_count == 2


async def test_attempts_are_bounded(client: HttpPartnerClient, router: respx.Router, sleeps: Sleeps) -> None:
    route = router.post("/v1/messages").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientDeliveryError) as info:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert route.call_count == 4 and len(sleeps) == 3
    # a read timeout comes after the body went out, so the partner may hold it (the log says "possibly delivered")
    assert info.value.extra == {"partner": "mailer", "cause": "ReadTimeout", "attempts": 4, "frame_written": True}


async def test_total_time_is_bounded(router: respx.Router) -> None:
    route = router.post("/v1/messages").mock(return_value=httpx.Response(503))
    ep = endpoint(max_attempts=1000, max_total_s=0.3, backoff_base_s=0.05, backoff_max_s=0.1)
    started = time.monotonic()
    async with HttpPartnerClient(ep, transport=httpx.MockTransport(router.async_handler)) as c:
        with pytest.raises(TransientDeliveryError):
            await c.send("/v1/messages", PAYLOAD, "k")
    assert time.monotonic() - started < 1.0
    assert 2 <= route.call_count < 100


async def test_no_personal_data_in_errors_even_when_partner_echoes_it(
    client: HttpPartnerClient, router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"error": f"invalid recipient {PII[1]} for {PII[0]}, pnr {PII[2]}, {PII[3]}"}
    caplog.set_level(logging.DEBUG)
    router.post("/v1/messages").mock(return_value=httpx.Response(422, json=echo))
    with pytest.raises(PermanentDeliveryError) as permanent:
        await client.send("/v1/messages", PAYLOAD, "k")
    assert_no_pii(permanent.value, caplog)

    router.post("/v1/people/anna.andersson@example.se").mock(return_value=httpx.Response(503, json=echo))
    with pytest.raises(TransientDeliveryError) as transient:
        await client.send("/v1/people/anna.andersson@example.se", PAYLOAD, "k")
    assert_no_pii(transient.value, caplog)

    router.post("/v1/slow").mock(side_effect=httpx.ReadTimeout(f"timed out sending {PII[0]}"))
    with pytest.raises(TransientDeliveryError) as timeout:
        await client.send("/v1/slow", PAYLOAD, "k")
    assert_no_pii(timeout.value, caplog)
    assert timeout.value.__cause__ is None and timeout.value.__suppress_context__


async def test_unserialisable_payload_is_permanent_without_values(client: HttpPartnerClient) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await client.send("/v1/messages", {"name": PII[0], "n": float("nan")}, "k")
    assert_no_pii(info.value)


async def test_delete_treats_gone_as_erased(client: HttpPartnerClient, router: respx.Router) -> None:
    route = router.delete("/v1/subscribers/sub-9").mock(side_effect=[httpx.Response(503), httpx.Response(404)])
    receipt = await client.delete("/v1/subscribers/sub-9", "erase-sub-9")
    assert (receipt.status, receipt.attempts) == (404, 2)
    assert {c.request.headers["Idempotency-Key"] for c in route.calls} == {"erase-sub-9"}


async def test_delete_refused_is_permanent(client: HttpPartnerClient, router: respx.Router) -> None:
    router.delete("/v1/subscribers/sub-9").mock(return_value=httpx.Response(403))
    with pytest.raises(PermanentDeliveryError):
        await client.delete("/v1/subscribers/sub-9", "erase-sub-9")


async def test_oversized_success_body_keeps_the_success(router: respx.Router) -> None:
    router.post("/v1/messages").mock(return_value=httpx.Response(200, json={"id": "x" * 100, "pad": "y" * 5000}))
    ep = endpoint(max_response_bytes=1024)
    async with HttpPartnerClient(ep, transport=httpx.MockTransport(router.async_handler)) as c:
        receipt = await c.send("/v1/messages", PAYLOAD, "k")
    assert (receipt.status, receipt.partner_ref) == (200, None)


@pytest.mark.parametrize("path", ["https://evil.test/steal", "//evil.test/x", "v1/messages"])
async def test_paths_cannot_leave_the_base_url(client: HttpPartnerClient, path: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        await client.send(path, PAYLOAD, "k")


def test_endpoint_rules() -> None:
    assert "s3cret-token" not in repr(endpoint())
    with pytest.raises(ConfigError):
        endpoint(base_url="http://mail.partner.test")
    with pytest.raises(ConfigError):
        endpoint(max_attempts=0)
    endpoint(base_url="http://127.0.0.1:8080")


def test_unreadable_ca_file_is_a_config_error(tmp_path: Any) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="CA file"):
        HttpPartnerClient(endpoint(verify=str(bad)))
