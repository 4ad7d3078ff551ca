"""Fixtures for the identity tests (issue 13): the registration path over a real store, on SQLite and on
PostgreSQL (the throwaway cluster of ``tests/store/conftest.py``), and registrants that share what
families, companies and resellers share (e-mail, phone, address) with distinct or equal strong ids.

``World`` is the service level: a store, a Ledger and the real RegistrationService, plus ``deliver``,
which turns due outbox rows into delivered disclosure entries the way the delivery worker does (values
sealed under the row's subject key), so that a subject's records can be read back as an extract would.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stdnum import luhn

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.errors import SubjectErased
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.models import RegistrationRequest
from gateway.outbox.epp import RegistrarContact
from gateway.outbox.payloads import outbox_aad
from gateway.policy.loader import PolicySet, load_policies
from gateway.services.ledger import Ledger
from gateway.services.registrations import RegistrationService
from gateway.store.base import DisclosureFilter, Store
from tests.conftest import ROOT, Gateway, Tokens, running_gateway
from tests.store import conftest as store_fixtures

# the store fixtures of the contract suite (a throwaway PostgreSQL cluster, ``store`` on both databases)
pg_cluster = store_fixtures.pg_cluster
pg_dsn = store_fixtures.pg_dsn
pg_empty_dsn = store_fixtures.pg_empty_dsn
store_spec = store_fixtures.store_spec
store = store_fixtures.store

T_NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def pnr(i: int) -> str:
    """A valid Swedish personnummer (YYYYMMDD-NNNC, Luhn check digit), distinct for each ``i`` < 10**5."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=(i * 37) % 20000)
    serial = 100 + (i * 7) % 900
    base = f"{born:%y%m%d}{serial:03d}"
    return f"{born:%Y%m%d}-{serial:03d}{luhn.calc_check_digit(base)}"


def registrant(name: str, email: str, *, national_id: str | None = None, phone: str = "+46 8 123 456 78",
               street: str = "Storgatan 1", scheme: str = "se_personnummer",
               citizenship: str | None = None) -> dict[str, Any]:
    """A natural person as the ordering system sends one."""
    r: dict[str, Any] = {
        "kind": "person", "name": name,
        "address": {"street": [street], "city": "Stockholm", "postal_code": "111 22", "country": "SE"},
        "email": email, "phone": phone, "language": "sv",
    }
    if national_id is not None:
        r["national_id"] = {"scheme": scheme, "value": national_id}
    if citizenship is not None:
        r["citizenship"] = citizenship
    return r


def order(reg: dict[str, Any], domain: str) -> dict[str, Any]:
    return {"order_ref": f"ORD-{uuid.uuid4().hex[:8]}", "domain": domain, "period_years": 1,
            "nameservers": ["ns1.example.net", "ns2.example.net"], "registrant": reg}


@dataclass
class Keys:
    """The key material every process of one deployment shares (KEK ring, blind-index key)."""

    ring: KeyRing = field(default_factory=KeyRing.new)
    index_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def env(self) -> dict[str, str]:
        return {"GW_TEST_KEK": self.ring.to_json(), "GW_TEST_INDEX": base64.b64encode(self.index_key).decode()}

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Keys:
        return cls(KeyRing.from_env(env["GW_TEST_KEK"]), base64.b64decode(env["GW_TEST_INDEX"]))


_POLICIES: list[PolicySet] = []


def policies() -> PolicySet:
    if not _POLICIES:
        _POLICIES.append(load_policies(ROOT / "config"))
    return _POLICIES[0]


@dataclass
class World:
    """One gateway process's services over a store (no HTTP, no EPP)."""

    store: Store
    ledger: Ledger
    registrations: RegistrationService

    @classmethod
    def over(cls, store: Store, keys: Keys) -> World:
        ledger = Ledger(store, keys.ring, BlindIndexer(keys.index_key), CheckpointSigner.generate())
        return cls(store, ledger, RegistrationService(store, ledger, policies(), RegistrarContact(),
                                                      b"s" * 32, clock=lambda: T_NOW))

    async def register(self, reg: dict[str, Any], domain: str, client: str = "shop") -> tuple[int, dict[str, Any]]:
        body = order(reg, domain)
        req = RegistrationRequest.model_validate_json(json.dumps(body))
        return await self.registrations.submit(client, uuid.uuid4().hex, body, req)

    async def subject_of(self, reg_id: str) -> str:
        row = await self.store.registration(reg_id)
        assert row is not None and row["subject_id"] is not None
        return str(row["subject_id"])

    async def deliver(self, reg_ids: set[str]) -> list[DisclosureEntry]:
        """Due outbox rows of ``reg_ids`` as delivered entries, as the worker records them: the values
        sent, sealed under the row's subject key at the time of delivery."""
        now = T_NOW.isoformat()
        out = []
        for item in await self.store.claim_due("9999-12-31", 10_000):
            if item.registration_id not in reg_ids:
                continue  # another example's row (one PostgreSQL database serves a whole hypothesis run)
            content = await self.ledger.open_json(item.subject_id, item.payload_ct,
                                                  outbox_aad(item.registration_id, item.recipient, item.change_id))
            values = content["values"]
            dek = await self.ledger.dek(item.subject_id or "")
            assert dek is not None
            eid = uuid.uuid4().hex
            entry = DisclosureEntry(
                id=eid, registration_id=item.registration_id, recipient=item.recipient, recipient_name=item.recipient,
                recipient_country=item.transfer["country"], category=item.transfer["category"],
                article=item.transfer["article"], instrument=item.transfer["instrument"], purpose=item.purpose,
                outcome="delivered", fields=tuple(sorted(values)), withheld=(), objects={}, attempted_at=now,
                recorded_at=now, payload_digest=item.payload_digest, result_code="1000", subject_id=item.subject_id,
                values_ct=self.ledger.seal_json(dek, values, f"entry:{eid}"),
            )
            await self.store.finish(item, entry, state="done", next_attempt_at=None, now=now)
            out.append(entry)
        return out

    async def records(self, subject_id: str) -> list[dict[str, Any]]:
        """Every value sealed into the subject's disclosure entries, decrypted (what an extract shows);
        raises ``SubjectErased`` once the subject's key is gone."""
        out = []
        async for e in self.store.iter_disclosures(DisclosureFilter(subject_id=subject_id)):
            values = await self.ledger.entry_values(e)
            if values is not None:
                out.append(values)
        return out

    async def readable(self, subject_id: str) -> bool:
        try:
            await self.records(subject_id)
        except SubjectErased:
            return False
        return await self.ledger.dek(subject_id) is not None


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def world(store: Store, keys: Keys) -> World:
    return World.over(store, keys)


# -- the whole gateway (HTTP, TLS EPP sandbox) on either database ------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    yield None if request.param == "sqlite" else request.getfixturevalue("pg_dsn")


@pytest.fixture
async def gw(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
             database_url: str | None) -> AsyncIterator[Gateway]:
    """As ``tests.conftest.gateway``, on SQLite and on PostgreSQL."""
    extra = {} if database_url is None else {"database_url": database_url}
    async with running_gateway(tmp_path, pki, sandbox, tokens, **extra) as g:
        yield g
