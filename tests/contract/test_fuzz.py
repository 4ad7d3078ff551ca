"""Fuzz the whole API document against the real gateway, with every role: no 5xx, nothing undocumented.

Schemathesis turns every operation of the served ``/openapi.json`` into Hypothesis strategies, positive
(valid by the document) and negative (violating it), and each case is sent over loopback to a real app
(SQLite, the TLS EPP sandbox, a loopback address lookup service) with each credential: ``ordering``,
``privacy``, ``auditor`` and no token.  Operations on one object are also fuzzed against real objects
(a delivered registration, its disclosure entry, open data-subject requests for its holder), with the
roles they admit, not only against random ids.

Every response is checked for: no server error (5xx), a status code the document lists for the
operation, a content type it lists for that status, and a body matching the documented schema.
Failures are collected, not stopped at, and reported with the request's shape (method, path, status,
query parameter names, body type), never the values sent.

Bounded: a fixed number of generated cases per (operation, mode), each sent once per role, and a time
budget; the run must make at least 10,000 requests (about 12,700, in 60-90 s on two shared cores: the
cost is Hypothesis generating the cases, which is why each case serves every role).
``GATEWAY_FUZZ_SCALE`` scales the case counts (e.g. 10 for a long run before a release; the 10,000-request
floor applies from 1, the default), ``GATEWAY_FUZZ_SEED`` picks another seed (the default is fixed, so CI
is reproducible).
"""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.http.openapi import OPERATIONS
from tests.conftest import VALID_BODY, Gateway

pytestmark = pytest.mark.integration

ROLES = ("ordering", "privacy", "auditor", None)
SCALE = float(os.environ.get("GATEWAY_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "20240613"))


def _n(examples: int) -> int:
    return max(1, round(examples * SCALE))


#: Cases per operation and generation mode (positive, negative); each case is sent with every role, so
#: the handler runs for the roles it admits and the front door (401/403) is tried for the others.
CASES = (_n(60), _n(45))
#: Cases per operation on one object with the path naming a real one, sent with the roles it admits.
REAL_OBJECT_CASES = (_n(30), _n(20))
MIN_REQUESTS = 10_000
PROCESSES = max(1, int(os.environ.get("GATEWAY_FUZZ_PROCESSES", "2")))  # fuzzing clients, each with a share
BUDGET_S = 170.0 * max(1.0, SCALE)  # a safety net: the default run takes about half of it on two cores
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (op, role, kind) -> first shape
    over_budget: bool = False


def _shape(case: Any, response: schemathesis.Response) -> str:
    """How the failing request looked, without the values (they may be anything the fuzzer made up)."""
    body = case.body
    kind = "none" if body is None or type(body).__name__ == "NotSet" else type(body).__name__
    if isinstance(body, dict):
        kind = f"object with keys {sorted(body)[:8]}"
    query = sorted(case.query or {})
    headers = sorted(h for h in (case.headers or {}) if h.lower() != "authorization")
    ctype = next((v[0] for k, v in response.headers.items() if k.lower() == "content-type" and v), "")
    return (f"{case.method} {case.formatted_path} -> {response.status_code} {ctype!r}; query {query}; "
            f"headers {headers}; body {kind}")


def _failure_kinds(exc: BaseException) -> list[str]:
    if isinstance(exc, FailureGroup):
        return [type(f).__name__ + ": " + f.title for f in exc.exceptions]
    if isinstance(exc, Failure):
        return [type(exc).__name__ + ": " + exc.title]
    return [type(exc).__name__]


def _fuzz(base_url: str, doc: dict[str, Any], tokens: dict[str, str], real: dict[str, str],
          cases: tuple[int, int] = CASES, real_cases: tuple[int, int] = REAL_OBJECT_CASES,
          shard: tuple[int, int] = (0, 1)) -> Tally:
    """The run, or its ``shard`` (index, count) of the operations; synchronous (schemathesis calls go
    through ``requests``), so it runs in other processes (or a worker thread) while the test's event loop
    serves the gateway."""
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()][shard[0]::shard[1]]
    tally = Tally()
    deadline = time.monotonic() + BUDGET_S
    session = requests.Session()

    def send(op: Any, case: Any, role: str | None) -> None:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        if role is None:  # "no token" means none at all, also not one the fuzzer made up
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as exc:
            for kind in _failure_kinds(exc):
                tally.failures.setdefault((op.label, str(role), kind), _shape(case, response))

    def run(op: Any, roles: tuple[str | None, ...], mode: GenerationMode, examples: int,
            path_parameters: dict[str, str] | None = None) -> None:
        @seed(SEED)
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        def one(case: Any) -> None:
            if time.monotonic() > deadline:
                tally.over_budget = True
                return
            for role in roles:  # the None role last: it strips any Authorization header from the case
                send(op, case, role)

        try:
            one()
        except Unsatisfiable:  # negative mode on an operation with nothing to violate (no parameters)
            assert mode is GenerationMode.NEGATIVE, op.label

    for op in operations:
        admitted = OPERATIONS[(op.method.upper(), op.path)].roles
        run(op, ROLES, GenerationMode.POSITIVE, cases[0])
        run(op, ROLES, GenerationMode.NEGATIVE, cases[1])
        names = {p.name for p in op.path_parameters}
        if names and names <= real.keys():
            roles = tuple(r for r in ROLES if r in admitted)
            fixed = {name: real.get(f"{op.path} {name}", real[name]) for name in names}
            run(op, roles, GenerationMode.POSITIVE, real_cases[0], fixed)
            run(op, roles, GenerationMode.NEGATIVE, real_cases[1], fixed)
    session.close()
    return tally


async def _seed_objects(gw: Gateway) -> dict[str, str]:
    """Real objects for the fuzzer to aim at: a delivered registration, its entry, and two open requests
    for its holder, one with the holder confirmed by staff (so actions reach the person's data rather than
    stopping at ``subject_not_confirmed``) and one left for fuzzing the confirmation itself."""
    r = await gw.post(VALID_BODY)
    assert r.status == 202, await r.text()
    reg_id = (await r.json())["id"]
    reg = await gw.wait_status(reg_id, {"delivered", "failed"})
    entry_id = reg["disclosures"][0]["id"]
    h = gw.tokens.h("privacy")
    opened = []
    for _ in range(2):
        r = await gw.client.post("/v1/requests", headers=h, json={
            "kind": "access", "channel": "email", "identity_check": "signed letter", "verified_by": "staff",
            "identifiers": {"email": VALID_BODY["registrant"]["email"]}})
        assert r.status == 201, await r.text()
        opened.append((await r.json())["id"])
    r = await gw.client.post(f"/v1/requests/{opened[0]}/subjects", headers=h,
                             json={"subject_ids": [reg["subject_id"]]})
    assert r.status == 200, await r.text()
    r = await gw.client.post("/v1/ledger/checkpoints", headers=gw.tokens.h("auditor"))
    assert r.status == 201
    return {"reg_id": reg_id, "entry_id": entry_id, "request_id": opened[0], "fmt": "json",
            "/v1/requests/{request_id}/subjects request_id": opened[1]}


async def test_fuzz_the_whole_api_with_every_role(contract_gateway: Gateway) -> None:
    gw = contract_gateway
    real = await _seed_objects(gw)
    doc = await (await gw.client.get("/openapi.json")).json()
    tokens = {role: getattr(gw.tokens, role) for role in ("ordering", "privacy", "auditor")}
    base_url = str(gw.client.make_url("")).rstrip("/")
    started = time.monotonic()
    # The clients (Hypothesis generating cases, checking answers: most of the work) run in processes of
    # their own, each on a share of the operations, so generation and the gateway's answers overlap on
    # two cores instead of taking turns under one interpreter lock.
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        shards = await asyncio.gather(*(
            loop.run_in_executor(pool, _fuzz, base_url, doc, tokens, real, CASES, REAL_OBJECT_CASES, (i, PROCESSES))
            for i in range(PROCESSES)))
    tally = Tally(over_budget=any(t.over_budget for t in shards))
    for t in shards:
        tally.requests += t.requests
        tally.statuses.update(t.statuses)
        tally.failures.update(t.failures)
    took = time.monotonic() - started
    summary = (f"{tally.requests} requests over {len(OPERATIONS)} operations x {len(ROLES)} roles in {took:.0f} s; "
               f"statuses {dict(sorted(tally.statuses.items()))}")
    print(summary)  # shown with -s / -rA: what the run covered
    report = "\n".join(f"  {op} [{role}] {kind}\n      e.g. {shape}"
                       for (op, role, kind), shape in sorted(tally.failures.items()))
    assert not tally.failures, f"{len(tally.failures)} kinds of failure; {summary}\n{report}"
    assert not tally.over_budget, f"the time budget ({BUDGET_S:.0f} s) ran out: {summary}"
    assert not any(s >= 500 for s in tally.statuses), summary
    if SCALE >= 1:
        assert tally.requests >= MIN_REQUESTS, summary
    # the run reached the handlers, not only the front door
    assert {200, 201, 401, 403, 404, 409, 422} <= set(tally.statuses), summary


async def test_the_fuzzer_reports_what_breaks_the_document(contract_gateway: Gateway) -> None:
    """The harness itself: an answer the document does not list (a status, a content type) is a failure
    naming the operation, the role and the request's shape."""
    gw = contract_gateway
    doc = copy.deepcopy(await (await gw.client.get("/openapi.json")).json())
    doc["paths"] = {p: doc["paths"][p] for p in ("/v1/art30", "/healthz")}
    del doc["paths"]["/v1/art30"]["get"]["responses"]["403"]
    doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"] = {"text/csv": {}}
    tokens = {role: getattr(gw.tokens, role) for role in ("ordering", "privacy", "auditor")}
    tally = await asyncio.to_thread(_fuzz, str(gw.client.make_url("")).rstrip("/"), doc, tokens, {}, (2, 1))
    kinds = {(op, role, kind.split(":")[0]) for op, role, kind in tally.failures}
    assert ("GET /v1/art30", "ordering", "UndefinedStatusCode") in kinds, tally.failures
    assert any(op == "GET /healthz" and kind == "UndefinedContentType" for op, _, kind in kinds), tally.failures
    shape = tally.failures[next(k for k in tally.failures if k[0] == "GET /v1/art30")]
    assert shape.startswith("GET /v1/art30 -> 403 'application/problem+json'"), shape
