"""Escrow deposits: deterministic, full, gTLD-only, sealed to the agent's key; upload via respx."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import idna
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adapters.escrow import (
    IDN_CCTLDS,
    EscrowClient,
    EscrowRecord,
    InvalidDeposit,
    build_deposit,
    decrypt_deposit,
    encrypt_deposit,
    is_gtld,
    summarize_deposit,
)
from adapters.http_partner import PartnerEndpoint
from gateway.errors import PermanentDeliveryError, PolicyRefusal, TransientDeliveryError

WATERMARK = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
ANNA: dict[str, Any] = {
    "name": "Anna Andersson", "street": ["Storgatan 1"], "city": "Stockholm", "pc": "111 22", "cc": "SE",
    "email": "anna.andersson@example.se", "voice": "+46.812345678",
}
BERTIL = {"name": "Bertil Berg", "email": "bertil@example.org", "cc": "SE"}


def records() -> list[EscrowRecord]:
    return [
        EscrowRecord("exempel.com", "com", "subj-anna", {"registrant": ANNA, "admin": ANNA}),
        EscrowRecord(
            "bertil.org", "org", "subj-bertil",
            {"registrant": BERTIL, "tech": {"name": "Tech Person", "email": "noc@example.net"}, "billing": BERTIL},
            contact_subjects={"tech": "subj-tech"},
        ),
    ]


def test_deposit_is_deterministic_and_order_independent() -> None:
    one = build_deposit(records(), "9999", "dep-2026-11-25", WATERMARK)
    in_cet = WATERMARK.astimezone(timezone(timedelta(hours=1)))
    two = build_deposit(list(reversed(records())), "9999", "dep-2026-11-25", in_cet)
    assert one == two
    doc = json.loads(one)
    assert [d["domain"] for d in doc["domains"]] == ["bertil.org", "exempel.com"]
    assert doc["watermark"] == "2026-11-25T00:00:00.000000Z"
    # Escrow is not minimised: every field given goes in, as given.
    assert doc["domains"][1]["contacts"]["registrant"]["fields"] == ANNA


def test_summary_lists_subject_ids_and_field_names_only() -> None:
    deposit = build_deposit(records(), "9999", "dep-1", WATERMARK)
    summary = summarize_deposit(deposit)
    assert summary.subjects == ["subj-anna", "subj-bertil", "subj-tech"]
    assert "registrant.email" in summary.fields and "billing.name" in summary.fields and "tech.email" in summary.fields
    assert summary.fields == sorted(summary.fields)
    assert (summary.deposit_id, summary.registrar_id, summary.domains) == ("dep-1", "9999", 2)
    assert summary.sha256 == hashlib.sha256(deposit).hexdigest()
    text = repr(summary)
    assert "Anna" not in text and "example.se" not in text


def test_record_repr_hides_contact_values() -> None:
    assert "Anna" not in repr(records()[0])


def test_encrypt_decrypt_round_trip() -> None:
    agent = X25519PrivateKey.generate()
    deposit = build_deposit(records(), "9999", "dep-1", WATERMARK)
    sealed = encrypt_deposit(deposit, agent.public_key())
    assert b"Anna" not in sealed and b"anna.andersson" not in sealed
    assert decrypt_deposit(sealed, agent) == deposit
    assert encrypt_deposit(deposit, agent.public_key()) != sealed  # fresh ephemeral key each time


def test_wrong_key_and_tampering_fail() -> None:
    agent = X25519PrivateKey.generate()
    sealed = encrypt_deposit(b"deposit", agent.public_key())
    with pytest.raises(InvalidDeposit, match="wrong key"):
        decrypt_deposit(sealed, X25519PrivateKey.generate())
    for position in (3, 7, len(sealed) - 1):  # magic, ephemeral key, tag
        broken = bytearray(sealed)
        broken[position] ^= 0x01
        with pytest.raises(InvalidDeposit):
            decrypt_deposit(bytes(broken), agent)
    with pytest.raises(InvalidDeposit, match="version"):
        decrypt_deposit(sealed[:5] + b"\x02" + sealed[6:], agent)
    with pytest.raises(InvalidDeposit):
        decrypt_deposit(sealed[:20], agent)


@pytest.mark.parametrize("tld", ["se", "SE", ".uk", "eu", "xn--p1ai", "рф", "中国"])
def test_cctlds_are_not_gtlds(tld: str) -> None:
    assert not is_gtld(tld)


@pytest.mark.parametrize("tld", ["com", "org", "info", "app", "xn--ngbc5azd", "shop", ".net"])
def test_gtlds(tld: str) -> None:
    assert is_gtld(tld)


def test_idn_cctld_table_decodes_as_documented() -> None:
    for a_label, u_label in IDN_CCTLDS.items():
        assert idna.decode(a_label) == u_label


def test_non_gtld_records_are_refused() -> None:
    bad = [*records(), EscrowRecord("exempel.se", "se", "subj-se", {"registrant": ANNA})]
    with pytest.raises(PolicyRefusal) as info:
        build_deposit(bad, "9999", "dep-1", WATERMARK)
    assert "subj-se" in str(info.value) and "exempel" not in str(info.value) and "Anna" not in str(info.value)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (EscrowRecord("exempel.net", "com", "s", {"registrant": ANNA}), "not under"),
        (EscrowRecord("exempel.com", "com", "s", {"admin": ANNA}), "registrant"),
        (EscrowRecord("exempel.com", "com", "s", {"registrant": ANNA, "owner": ANNA}), "role"),
        (EscrowRecord("exempel.com", "com", "s", {"registrant": {"Name!": "x"}}), "field names"),
        (EscrowRecord("exempel.com", "com", "s", {"registrant": {"name": 7}}), "strings"),  # type: ignore[dict-item]
    ],
)
def test_malformed_records_are_rejected(record: EscrowRecord, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_deposit([record], "9999", "dep-1", WATERMARK)


def test_duplicates_naive_watermark_and_bad_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_deposit(records() + records()[:1], "9999", "dep-1", WATERMARK)
    with pytest.raises(ValueError, match="timezone"):
        build_deposit(records(), "9999", "dep-1", datetime(2026, 11, 25))
    with pytest.raises(ValueError, match="deposit_id"):
        build_deposit(records(), "9999", "../etc", WATERMARK)


# ---- upload ------------------------------------------------------------------------------------

BASE = "https://escrow.agent.test"


def escrow_endpoint() -> PartnerEndpoint:
    return PartnerEndpoint(
        base_url=BASE, token="escrow-token", timeout_s=2.0, max_attempts=3, max_total_s=5.0, name="escrow",
        backoff_base_s=0.0, backoff_max_s=0.01,
    )


async def test_upload_put_is_idempotent_and_retried() -> None:
    agent = X25519PrivateKey.generate()
    router = respx.Router(base_url=BASE)
    route = router.put("/deposits/dep-1").mock(
        side_effect=[httpx.Response(503), httpx.Response(201, json={"id": "agent-ref-1"})]
    )
    async with EscrowClient(
        escrow_endpoint(), agent.public_key(), transport=httpx.MockTransport(router.async_handler)
    ) as client:
        summary, receipt = await client.deposit(records(), registrar_id="9999", deposit_id="dep-1", watermark=WATERMARK)
    assert (receipt.status, receipt.agent_ref, receipt.attempts, receipt.deposit_id) == (201, "agent-ref-1", 2, "dep-1")
    requests = [call.request for call in route.calls]
    assert {r.headers["Idempotency-Key"] for r in requests} == {"dep-1"}
    assert len({r.content for r in requests}) == 1
    sealed = requests[0].content
    assert requests[0].headers["Content-Type"] == "application/octet-stream"
    digest = base64.b64encode(hashlib.sha256(sealed).digest()).decode()
    assert requests[0].headers["Content-Digest"] == f"sha-256=:{digest}:"
    assert receipt.sha256 == hashlib.sha256(sealed).hexdigest()
    assert hashlib.sha256(decrypt_deposit(sealed, agent)).hexdigest() == summary.sha256


async def test_upload_refuses_plaintext_and_maps_refusals() -> None:
    agent = X25519PrivateKey.generate()
    router = respx.Router(base_url=BASE)
    route = router.put("/deposits/dep-2").mock(return_value=httpx.Response(403))
    async with EscrowClient(
        escrow_endpoint(), agent.public_key(), transport=httpx.MockTransport(router.async_handler)
    ) as client:
        plaintext = build_deposit(records(), "9999", "dep-2", WATERMARK)
        with pytest.raises(ValueError, match="not sealed"):
            await client.upload("dep-2", plaintext)
        assert route.call_count == 0
        with pytest.raises(PermanentDeliveryError):
            await client.upload("dep-2", encrypt_deposit(plaintext, agent.public_key()))
        assert route.call_count == 1


async def test_upload_gives_up_after_bounded_attempts() -> None:
    agent = X25519PrivateKey.generate()
    router = respx.Router(base_url=BASE)
    route = router.put("/deposits/dep-3").mock(side_effect=httpx.ConnectError("refused"))
    async with EscrowClient(
        escrow_endpoint(), agent.public_key(), transport=httpx.MockTransport(router.async_handler)
    ) as client:
        with pytest.raises(TransientDeliveryError):
            await client.upload("dep-3", encrypt_deposit(b"x", agent.public_key()))
    assert route.call_count == 3
