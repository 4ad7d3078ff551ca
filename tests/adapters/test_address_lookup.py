"""AddressLookupClient against respx: categories, fail-closed marketing flag, nothing leaked."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from adapters.address_lookup import AddressLookupClient, LookupAddress, LookupRecord, LookupResult, PersonName
from adapters.http_partner import PartnerEndpoint
from gateway.errors import PermanentDeliveryError, TransientDeliveryError, ValidationFailed

BASE = "https://spar.front.test"
PNR = "19811218-9876"
PNR_CANONICAL = "198112189876"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PERSON = {
    "given_name": "Anna",
    "surname": "Andersson",
    "address": {"street": "Storgatan 1", "postal_code": "111 22", "city": "Stockholm"},
    "sex": "F",  # SPAR sends more than we keep
    "birth_date": "1981-12-18",
}


def blind(number: str) -> str:
    return hmac.new(b"k" * 32, b"national_id\x00" + number.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE)


@pytest.fixture
async def spar(router: respx.Router) -> AsyncIterator[AddressLookupClient]:
    ep = PartnerEndpoint(base_url=BASE, token="spar-token", max_attempts=3, name="spar", backoff_base_s=0.0,
                         backoff_max_s=0.01)
    async with AddressLookupClient(ep, transport=httpx.MockTransport(router.async_handler), clock=lambda: AT) as c:
        yield c


async def lookup(spar: AddressLookupClient, number: str = PNR, purpose: str = "address_update") -> LookupResult:
    return await spar.lookup(number, purpose, blind_index=blind(PNR_CANONICAL))


async def test_found(spar: AddressLookupClient, router: respx.Router) -> None:
    route = router.post("/v1/lookups").mock(
        return_value=httpx.Response(200, json={"result": "found", "person": PERSON, "marketing_opt_out": False})
    )
    result = await lookup(spar)
    assert result.category == "found" and result.marketing_opt_out is False
    assert result.name is not None and (result.name.given_name, result.name.surname) == ("Anna", "Andersson")
    assert result.address is not None and result.address.city == "Stockholm" and result.address.care_of is None
    assert not hasattr(result, "sex")
    # The number travels canonical, in the body, never in the URL.
    request = route.calls.last.request
    assert json.loads(request.content) == {"personnummer": PNR_CANONICAL, "purpose": "address_update"}
    assert PNR_CANONICAL not in str(request.url) and "Idempotency-Key" not in request.headers
    assert "Anna" not in repr(result) and "Storgatan" not in repr(result)
    record = result.record
    assert (record.kind, record.purpose, record.category, record.at) == ("personnummer", "address_update", "found", AT)
    assert record.blind_index == blind(PNR_CANONICAL)
    assert PNR_CANONICAL not in json.dumps(record.as_dict())


async def test_found_without_opt_out_flag_is_treated_as_opted_out(
    spar: AddressLookupClient, router: respx.Router
) -> None:
    router.post("/v1/lookups").mock(return_value=httpx.Response(200, json={"result": "found", "person": PERSON}))
    assert (await lookup(spar)).marketing_opt_out is True


async def test_protected_identity_comes_back_without_name_or_address(
    spar: AddressLookupClient, router: respx.Router
) -> None:
    # Even if the service (wrongly) sends a name and address, they are dropped.
    router.post("/v1/lookups").mock(
        return_value=httpx.Response(
            200, json={"result": "protected_identity", "person": PERSON, "marketing_opt_out": False}
        )
    )
    result = await lookup(spar)
    assert result.category == "protected_identity"
    assert result.name is None and result.address is None
    assert result.marketing_opt_out is True
    assert result.record.category == "protected_identity"


@pytest.mark.parametrize(
    "response",
    [httpx.Response(404), httpx.Response(200, json={"result": "not_found"})],
)
async def test_not_found(spar: AddressLookupClient, router: respx.Router, response: httpx.Response) -> None:
    router.post("/v1/lookups").mock(return_value=response)
    result = await lookup(spar)
    assert (result.category, result.name, result.address, result.marketing_opt_out) == ("not_found", None, None, True)


async def test_deregistered(spar: AddressLookupClient, router: respx.Router) -> None:
    router.post("/v1/lookups").mock(return_value=httpx.Response(200, json={"result": "deregistered"}))
    result = await lookup(spar)
    assert result.category == "deregistered" and result.name is None


async def test_samordningsnummer_is_accepted(spar: AddressLookupClient, router: respx.Router) -> None:
    route = router.post("/v1/lookups").mock(return_value=httpx.Response(200, json={"result": "not_found"}))
    result = await spar.lookup("197010632300", "address_update", blind_index=blind("197010632300"))
    assert result.record.kind == "samordningsnummer"
    assert json.loads(route.calls.last.request.content)["personnummer"] == "197010632300"


async def test_unexpected_answers_are_permanent_and_quote_nothing(
    spar: AddressLookupClient, router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[dict[str, Any]] = [
        {"result": "found"},  # no person
        {"result": "maybe", "person": PERSON},
        {"result": "found", "person": {"given_name": "Anna", "surname": "Andersson", "address": "Storgatan 1"}},
    ]
    for body in bodies:
        router.post("/v1/lookups").mock(return_value=httpx.Response(200, json=body))
        with pytest.raises(PermanentDeliveryError) as info:
            await lookup(spar)
        text = f"{info.value} {info.value!r} {info.value.problem()} {info.value.__cause__} {caplog.text}"
        assert "Anna" not in text and "Storgatan" not in text and PNR_CANONICAL not in text
        assert info.value.__cause__ is None


async def test_service_failures_are_retried_then_transient(spar: AddressLookupClient, router: respx.Router) -> None:
    route = router.post("/v1/lookups").mock(return_value=httpx.Response(503))
    with pytest.raises(TransientDeliveryError) as info:
        await lookup(spar)
    assert route.call_count == 3
    assert PNR_CANONICAL not in str(info.value.problem())


async def test_bad_input_is_refused_without_quoting_it(spar: AddressLookupClient, router: respx.Router) -> None:
    with pytest.raises(ValidationFailed) as info:
        await lookup(spar, number="19811218-9875")
    assert "9875" not in str(info.value.problem())
    with pytest.raises(ValidationFailed):
        await lookup(spar, purpose="because Anna asked")
    with pytest.raises(ValueError, match="blind_index"):
        await spar.lookup(PNR, "address_update", blind_index=PNR)
    assert not router.calls


def test_result_invariants() -> None:
    record = LookupRecord("personnummer", "idx", "address_update", "protected_identity", AT)
    with pytest.raises(ValueError):
        LookupResult("protected_identity", True, record, name=PersonName("A", "B"))
    with pytest.raises(ValueError):
        LookupResult("found", False, record, address=LookupAddress("s", "1", "c"))
