"""Result-code mapping, the retry loop, the token bucket, update narrowing and clTRIDs (no network)."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.epp.client import command_cl_trid
from adapters.epp.extensions import IisDomainUpdate
from adapters.epp.outcomes import Outcome, classify, raise_for_result, with_retries
from adapters.epp.ratelimit import TokenBucket
from adapters.epp.reconcile import narrow_contact_update, narrow_domain_update
from adapters.epp.types import ContactUpdate, DomainInfo, DomainUpdate, EppResult
from gateway.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (1000, Outcome.SUCCESS), (1300, Outcome.SUCCESS), (1301, Outcome.SUCCESS), (1500, Outcome.SUCCESS),
        (1001, Outcome.PENDING),
        (2400, Outcome.RETRYABLE), (2500, Outcome.RETRYABLE), (2501, Outcome.RETRYABLE), (2502, Outcome.RETRYABLE),
        (2001, Outcome.PERMANENT), (2005, Outcome.PERMANENT), (2200, Outcome.PERMANENT), (2302, Outcome.PERMANENT),
        (2306, Outcome.PERMANENT), (2308, Outcome.PERMANENT), (9999, Outcome.PERMANENT),
    ],
)  # fmt: skip
def test_classify(code: int, outcome: Outcome) -> None:
    assert classify(code) is outcome


def test_raise_for_result_carries_ids_not_messages() -> None:
    raise_for_result(EppResult(1001, "pending", "c-1", "s-1"), "domain:transfer")
    with pytest.raises(TransientDeliveryError) as transient:
        raise_for_result(EppResult(2502, "limit: Anna Svensson", "c-2", "s-2"), "login")
    assert transient.value.result_code == 2502
    assert transient.value.extra == {"epp_command": "login", "cl_trid": "c-2", "sv_trid": "s-2"}
    with pytest.raises(PermanentDeliveryError) as permanent:
        raise_for_result(EppResult(2306, "Anna Svensson refused", "c-3", "s-3"), "domain:renew", object_id="a.se")
    assert permanent.value.extra["sv_trid"] == "s-3" and permanent.value.extra["object_id"] == "a.se"
    assert "Anna" not in str(permanent.value) + repr(permanent.value.problem())


async def test_with_retries_retries_transient_only() -> None:
    calls: list[int] = []
    seen: list[tuple[int, DeliveryError]] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientDeliveryError("try again", result_code=2400)
        return "done"

    result = await with_retries(
        flaky, attempts=5, max_total_s=5, initial_wait_s=0.001, on_retry=lambda n, e: seen.append((n, e))
    )
    assert result == "done" and len(calls) == 3 and [n for n, _ in seen] == [1, 2]

    async def refused() -> str:
        calls.append(1)
        raise PermanentDeliveryError("no", result_code=2005)

    calls.clear()
    with pytest.raises(PermanentDeliveryError):
        await with_retries(refused, attempts=5, max_total_s=5, initial_wait_s=0.001)
    assert len(calls) == 1

    async def bug() -> str:
        calls.append(1)
        raise KeyError("not a delivery error")

    calls.clear()
    with pytest.raises(KeyError):
        await with_retries(bug, attempts=5, max_total_s=5, initial_wait_s=0.001)
    assert len(calls) == 1


async def test_with_retries_is_bounded_by_attempts_and_total_time() -> None:
    calls: list[float] = []

    async def down() -> None:
        calls.append(time.monotonic())
        raise TransientDeliveryError("down")

    with pytest.raises(TransientDeliveryError):
        await with_retries(down, attempts=3, max_total_s=60, initial_wait_s=0.001)
    assert len(calls) == 3

    calls.clear()
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError):
        await with_retries(down, attempts=1000, max_total_s=0.15, initial_wait_s=0.02, max_wait_s=0.04)
    assert time.monotonic() - started < 0.5 and 2 <= len(calls) < 1000
    with pytest.raises(ValueError):
        await with_retries(down, attempts=0, max_total_s=1)


async def test_token_bucket_spaces_and_allows_bursts() -> None:
    bucket = TokenBucket(rate_per_s=50, burst=1)
    started = time.monotonic()
    for _ in range(6):
        await bucket.acquire()
    assert time.monotonic() - started >= 5 / 50 * 0.9

    bursty = TokenBucket(rate_per_s=1, burst=4)
    started = time.monotonic()
    await asyncio.gather(*(bursty.acquire() for _ in range(4)))
    assert time.monotonic() - started < 0.1  # a full bucket does not wait
    with pytest.raises(ValueError):
        TokenBucket(0)


_RESULT = EppResult(1000, "ok", "c", "s")
_INFO = DomainInfo(
    name="a.se",
    roid="D1",
    cl_id="registrar1",
    registrant="NEW1",
    result=_RESULT,
    statuses=("clientHold",),
    nameservers=("ns2.example.net", "NS3.example.net"),
    contacts=(("admin", "OLD1"), ("billing", "NEW1")),
)


def test_narrow_domain_update_drops_what_is_applied() -> None:
    applied = DomainUpdate(
        name="a.se",
        add_ns=("ns3.example.net",),
        rem_ns=("ns1.example.net",),
        add_contacts=(("billing", "new1"),),
        rem_contacts=(("tech", "OLD1"),),
        add_status=("clientHold",),
        registrant="NEW1",
    )
    assert narrow_domain_update(applied, _INFO) is None
    partly = DomainUpdate(name="a.se", add_ns=("ns3.example.net", "ns4.example.net"), rem_ns=("ns2.example.net",))
    assert narrow_domain_update(partly, _INFO) == DomainUpdate(
        name="a.se", add_ns=("ns4.example.net",), rem_ns=("ns2.example.net",)
    )
    # authInfo and extensions are not visible in <info>: kept, because setting them again is harmless.
    secret = DomainUpdate(name="a.se", add_status=("clientHold",), auth_pw="n3w-Pw")
    assert narrow_domain_update(secret, _INFO) == DomainUpdate(name="a.se", auth_pw="n3w-Pw")
    ext = DomainUpdate(name="a.se", extensions=(IisDomainUpdate(True),))
    assert narrow_domain_update(ext, _INFO) == ext


def test_narrow_contact_update() -> None:
    cmd = ContactUpdate(id="C01", add_status=("clientDeleteProhibited",), rem_status=("clientUpdateProhibited",))
    assert narrow_contact_update(cmd, ("clientDeleteProhibited", "linked")) is None
    assert narrow_contact_update(cmd, ()) == ContactUpdate(id="C01", add_status=("clientDeleteProhibited",))
    with_chg = ContactUpdate(id="C01", add_status=("clientDeleteProhibited",), email="a@example.se")
    assert narrow_contact_update(with_chg, ("clientDeleteProhibited",)) == ContactUpdate(id="C01", email="a@example.se")


def test_command_cl_trids_are_deterministic_and_hide_personal_data() -> None:
    a = ContactUpdate(id="C01", email="anna@example.se")
    assert command_cl_trid("job-1", "contact-update", a) == command_cl_trid("job-1", "contact-update", a)
    # Personal values shape the clTRID only by being present, so it cannot confirm a guessed e-mail.
    b = ContactUpdate(id="C01", email="bo@example.se")
    assert command_cl_trid("job-1", "contact-update", a) == command_cl_trid("job-1", "contact-update", b)
    c = ContactUpdate(id="C01", voice="+46.1")
    assert command_cl_trid("job-1", "contact-update", a) != command_cl_trid("job-1", "contact-update", c)
    d1 = DomainUpdate(name="a.se", add_ns=("ns1.example.net",))
    d2 = DomainUpdate(name="a.se", add_ns=("ns2.example.net",))
    assert command_cl_trid("job-1", "domain-update", d1) != command_cl_trid("job-1", "domain-update", d2)
    assert command_cl_trid("job-1", "domain-update", d1) != command_cl_trid("job-2", "domain-update", d1)
    long = command_cl_trid("x" * 100, "domain-update", DomainUpdate(name="a" * 60 + ".se", add_status=("clientHold",)))
    assert len(long) <= 64 and long.endswith(long.split("-")[-1])
