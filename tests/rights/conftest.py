"""Helpers for the rights tests (the `gateway` fixture is tests/conftest.py's: build_app has the rights routes)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp import web

from gateway.http.context import SERVICES
from tests.conftest import VALID_BODY, Gateway, body

BERTIL: dict[str, Any] = dict(
    VALID_BODY["registrant"], name="Bertil Berg", email="bertil@example.se",
    national_id={"scheme": "se_personnummer", "value": "19880320-0016"},
)


def anna(**overrides: Any) -> dict[str, Any]:
    return body(**overrides)


def bertil(**overrides: Any) -> dict[str, Any]:
    b = body(**overrides)
    b["registrant"] = copy.deepcopy(BERTIL)
    return b


async def register(gw: Gateway, data: dict[str, Any], want: str = "delivered") -> str:
    r = await gw.post(data)
    answer = await r.json()
    if want == "blocked":
        assert r.status == 422, answer
        return str(answer["registration_id"])
    assert r.status == 202, answer
    reg = await gw.wait_status(answer["id"], {"delivered", "failed"})
    assert reg["status"] == want, reg
    return str(answer["id"])


async def entries(gw: Gateway, **params: str) -> list[dict[str, Any]]:
    r = await gw.client.get("/v1/disclosures", params=params, headers=gw.tokens.h("privacy"))
    return list((await r.json())["items"])


async def open_request(gw: Gateway, kind: str = "access", status: int = 201, **identifiers: str) -> dict[str, Any]:
    r = await gw.client.post("/v1/requests", headers=gw.tokens.h("privacy"), json={
        "kind": kind, "channel": "email", "identity_check": "BankID signature", "verified_by": "staff-1",
        "identifiers": identifiers,
    })
    data: dict[str, Any] = await r.json()
    assert r.status == status, data
    return data


async def confirm(gw: Gateway, req: dict[str, Any], subject_ids: list[str] | None = None,
                  status: int = 200) -> dict[str, Any]:
    """The staff's confirmation step: ``subject_ids`` are the person's records.  By default the request's
    one candidate, which must then be the only one (so a test never confirms a stranger by accident)."""
    if subject_ids is None:
        assert len(req["candidates"]) == 1, req["candidates"]
        subject_ids = [req["candidates"][0]["subject_id"]]
    r = await gw.client.post(f"/v1/requests/{req['id']}/subjects", json={"subject_ids": subject_ids},
                             headers=gw.tokens.h("privacy"))
    data: dict[str, Any] = await r.json()
    assert r.status == status, data
    return data


async def open_confirmed(gw: Gateway, kind: str = "access", **identifiers: str) -> dict[str, Any]:
    """Open a request whose identifiers match exactly one record, and confirm that record."""
    return await confirm(gw, await open_request(gw, kind, **identifiers))


async def public_key_pem(gw: Gateway) -> bytes:
    r = await gw.client.get("/v1/ledger/public-key")
    return str((await r.json())["public_key_pem"]).encode()


def extra_links(monkeypatch: pytest.MonkeyPatch, gateway: Gateway, *links: tuple[str, str, str]) -> None:
    """Blind-index links (kind, value, subject id) beside the store's own, seen by ``find_subjects`` as stored
    links would be: records that share an identifier (or carry a strong one) however registrations are
    grouped into subjects, which these tests must not depend on.  Add them after the registrations."""
    app: web.Application | None = gateway.client.app
    assert app is not None
    svc = app[SERVICES]
    real = svc.store.find_subjects
    rows: dict[tuple[str, str], list[str]] = {}
    for kind, value, sid in links:
        [(k, digest)] = svc.ledger.digests([(kind, value)])
        rows.setdefault((k, digest), []).append(sid)

    async def find(digests: list[tuple[str, str]]) -> list[str]:
        found = list(await real(digests))
        for kind, digest in digests:
            found += [s for s in rows.get((kind, digest), []) if s not in found]
        return found

    monkeypatch.setattr(svc.store, "find_subjects", find)
