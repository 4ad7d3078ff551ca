"""Helpers for the rights tests (the `gateway` fixture is tests/conftest.py's: build_app has the rights routes)."""

from __future__ import annotations

import copy
from typing import Any

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


async def public_key_pem(gw: Gateway) -> bytes:
    r = await gw.client.get("/v1/ledger/public-key")
    return str((await r.json())["public_key_pem"]).encode()
