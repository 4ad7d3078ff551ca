"""Ledger endpoints: signed checkpoints, the public key, inclusion and consistency proofs.

Proofs are served for any checkpoint the gateway signed, so a holder of a checkpoint can check an
entry or the log's append-only growth with nothing but the public key.
"""

from __future__ import annotations

import base64
import re

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.auth import Role, require
from gateway.errors import NotFound, ValidationFailed
from gateway.http.context import principal, services
from gateway.http.problems import json_response

routes = web.RouteTableDef()


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not raw.isdigit() or int(raw) > 2**62:
        raise ValidationFailed(f"'{name}' must be a non-negative integer",
                               errors=[{"loc": ["query", name], "type": "int_parsing"}])
    return int(raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@routes.get("/v1/ledger/public-key")
async def public_key(request: web.Request) -> web.Response:
    ledger = services(request).ledger
    pem = ledger.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return json_response({"key_id": ledger.signer.key_id, "algorithm": "Ed25519", "public_key_pem": pem})


@routes.get("/v1/ledger/checkpoints")
async def list_checkpoints(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    svc = services(request)
    cps = await svc.store.checkpoints()
    return json_response({"items": [svc.ledger.from_stored(c).to_json() for c in cps]})


@routes.post("/v1/ledger/checkpoints")
async def issue_checkpoint(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    signed = await services(request).ledger.checkpoint()
    return json_response({**signed.to_json(), "note": signed.to_text()}, status=201)


@routes.get("/v1/ledger/proofs/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    svc = services(request)
    entry_id = request.query.get("entry", "")
    if not re.fullmatch(r"[0-9a-f]{32}", entry_id):
        raise ValidationFailed("'entry' must be an entry id", errors=[{"loc": ["query", "entry"], "type": "pattern"}])
    size = _int(request, "size")
    cp = await svc.store.checkpoint(size)
    if cp is None:
        raise NotFound("no checkpoint of that size")
    entry = await svc.store.disclosure(entry_id)
    if entry is None or entry.leaf_index is None or entry.leaf_hash is None:
        raise NotFound("no such entry")
    proof = await svc.ledger.inclusion(entry, size)
    return json_response({
        "entry": entry_id, "leaf_index": entry.leaf_index, "leaf_hash": _b64(entry.leaf_hash),
        "tree_size": size, "proof": [_b64(p) for p in proof], "checkpoint": svc.ledger.from_stored(cp).to_json(),
    })


@routes.get("/v1/ledger/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    svc = services(request)
    old, new = _int(request, "from"), _int(request, "to")
    cp_old, cp_new = await svc.store.checkpoint(old), await svc.store.checkpoint(new)
    if cp_old is None or cp_new is None or not 0 < old <= new:
        raise NotFound("both sizes must be checkpoints, with 0 < from <= to")
    proof = await svc.ledger.consistency(old, new)
    return json_response({
        "from": svc.ledger.from_stored(cp_old).to_json(), "to": svc.ledger.from_stored(cp_new).to_json(),
        "proof": [_b64(p) for p in proof],
    })
