"""Ledger endpoints: signed checkpoints, the public key, inclusion and consistency proofs, the rollback check.

Proofs are served for any checkpoint the gateway signed, so a holder of a checkpoint can check an
entry or the log's append-only growth with nothing but the public key.  ``GET /v1/ledger/audit`` does
not even need the checkpoint to be stored here any more: it proves the auditor's (size, root) against
the current head from the tree itself, or refutes it with a ``ledger_inconsistent`` problem.

Query parameters are validated by one model per route (:mod:`gateway.http.query`): unknown or repeated
parameters, and anything but ASCII decimal digits for a size, are a 422 naming the parameter, never a 500.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from pydantic import ConfigDict, Field

from gateway.auth import Role, require
from gateway.errors import NotFound
from gateway.http.context import principal, services
from gateway.http.problems import json_response
from gateway.http.query import Hex32, QueryModel, Seq, parse_query

routes = web.RouteTableDef()

#: Standard base64 of a SHA-256 hash, as checkpoints carry it (``+`` must be sent as ``%2B``).
ROOT_PATTERN = r"^[A-Za-z0-9+/]{43}=$"


class InclusionQuery(QueryModel):
    entry: Hex32
    size: Seq


class ConsistencyQuery(QueryModel):
    model_config = ConfigDict(populate_by_name=False)  # only ``from`` and ``to``, not the field names

    first: Seq = Field(alias="from")
    second: Seq = Field(alias="to")


class AuditQuery(QueryModel):
    size: Seq
    root: Annotated[str, Field(pattern=ROOT_PATTERN)]


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
    q = parse_query(InclusionQuery, request.query)
    cp = await svc.store.checkpoint(q.size)
    if cp is None:
        raise NotFound("no checkpoint of that size")
    entry = await svc.store.disclosure(q.entry)
    if entry is None or entry.leaf_index is None or entry.leaf_hash is None:
        raise NotFound("no such entry")
    proof = await svc.ledger.inclusion(entry, q.size)
    return json_response({
        "entry": q.entry, "leaf_index": entry.leaf_index, "leaf_hash": _b64(entry.leaf_hash),
        "tree_size": q.size, "proof": [_b64(p) for p in proof], "checkpoint": svc.ledger.from_stored(cp).to_json(),
    })


@routes.get("/v1/ledger/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    svc = services(request)
    q = parse_query(ConsistencyQuery, request.query)
    old, new = q.first, q.second
    if not 0 < old <= new:
        raise NotFound("both sizes must be checkpoints, with 0 < from <= to")
    cp_old, cp_new = await svc.store.checkpoint(old), await svc.store.checkpoint(new)
    if cp_old is None or cp_new is None:
        raise NotFound("both sizes must be checkpoints, with 0 < from <= to")
    proof = await svc.ledger.consistency(old, new)
    return json_response({
        "from": svc.ledger.from_stored(cp_old).to_json(), "to": svc.ledger.from_stored(cp_new).to_json(),
        "proof": [_b64(p) for p in proof],
    })


@routes.get("/v1/ledger/audit")
async def audit(request: web.Request) -> web.Response:
    """The rollback check: is the auditor's tree (``size``, ``root``) a prefix of the current head?

    200 with ``{"from": {size, root}, "to": <head, signed now>, "proof": [...]}`` to verify offline
    (``gateway ledger audit``); 409 ``ledger_inconsistent`` with the sizes and this gateway's root at
    ``size`` when it is not; 500 ``proof_unavailable`` when the stored tree cannot prove it."""
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    q = parse_query(AuditQuery, request.query)
    answer: dict[str, Any] = (await services(request).ledger.prove_extends(q.size, base64.b64decode(q.root))).to_json()
    return json_response(answer, headers={"Cache-Control": "no-store"})
