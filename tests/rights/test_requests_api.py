"""Request lifecycle over HTTP: deadlines and extension, roles, problems, restriction and objection."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.rights.deadlines import deadline_for, extended_deadline
from gateway.store.base import DisclosureFilter
from tests.conftest import Gateway
from tests.rights.conftest import anna, bertil, entries, open_request, register

pytestmark = pytest.mark.integration


async def test_request_lifecycle_and_deadlines(gateway: Gateway) -> None:
    await register(gateway, anna())
    h = gateway.tokens.h("privacy")
    req = await open_request(gateway, kind="rectification", email="anna.andersson@example.se",
                             national_id="19811218-9876", domain="exempel.se")
    today = dt.datetime.now(dt.UTC).date()
    assert req["deadline"] == deadline_for(today).isoformat()
    assert req["days_left"] == (deadline_for(today) - today).days
    assert req["data"]["matched_by"] == ["email", "national_id", "domain"]

    listed = await (await gateway.client.get("/v1/requests", params={"state": "open"}, headers=h)).json()
    assert [r["id"] for r in listed["items"]] == [req["id"]]

    r = await gateway.client.post(f"/v1/requests/{req['id']}/extend", json={"reason": "many registrations"},
                                  headers=h)
    extended = await r.json()
    assert r.status == 200, extended
    assert extended["deadline"] == extended_deadline(today).isoformat()
    assert extended["events"][-1]["action"] == "extended"
    r = await gateway.client.post(f"/v1/requests/{req['id']}/extend", json={"reason": "again"}, headers=h)
    assert r.status == 409 and (await r.json())["code"] == "extension_refused"

    r = await gateway.client.post(f"/v1/requests/{req['id']}/close", json={"outcome": "rectified"}, headers=h)
    closed = await r.json()
    assert closed["state"] == "closed" and closed["closed_at"] and closed["days_left"] is None
    r = await gateway.client.post(f"/v1/requests/{req['id']}/restrict", json={}, headers=h)
    assert r.status == 409 and (await r.json())["code"] == "request_closed"
    assert [e["action"] for e in closed["events"]] == ["opened", "subject_found", "extended", "closed"]
    listed = await (await gateway.client.get("/v1/requests", params={"state": "closed"}, headers=h)).json()
    assert [r["id"] for r in listed["items"]] == [req["id"]]


async def test_a_shared_email_alone_does_not_find_another_person(gateway: Gateway) -> None:
    await register(gateway, anna())
    # right e-mail, someone else's personnummer: every identifier given must match the same subject
    req = await open_request(gateway, email="anna.andersson@example.se", national_id="19880320-0016")
    assert req["subject_id"] is None
    assert [e["action"] for e in req["events"]] == ["opened", "subject_not_found"]
    # a domain that is not the subject's does not corroborate either
    req2 = await open_request(gateway, email="anna.andersson@example.se", domain="annan.se")
    assert req2["subject_id"] is None
    # the registry contact id corroborates; a foreign one does not
    [entry] = await entries(gateway)
    contact = next(v for k, v in entry["objects"].items() if v.startswith("RG"))
    found = await open_request(gateway, email="anna.andersson@example.se", contact_id=contact.lower())
    assert found["subject_id"] == entry["subject_id"]
    assert (await open_request(gateway, email="anna.andersson@example.se", contact_id="RG-OTHER"))["subject_id"] is None
    h = gateway.tokens.h("privacy")
    assert (await gateway.client.get("/v1/requests", params={"state": "bogus"}, headers=h)).status == 422
    r = await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=h)
    assert r.status == 409 and (await r.json())["code"] == "subject_not_identified"
    # an extract for nobody lists nothing
    x = await (await gateway.client.post(f"/v1/requests/{req['id']}/extract", headers=h)).json()
    assert x["disclosures"] == []


async def test_roles_and_problems(gateway: Gateway) -> None:
    h, audit, shop = (gateway.tokens.h(r) for r in ("privacy", "auditor", "ordering"))
    req = await open_request(gateway, email="nobody@example.se")
    rid = req["id"]
    # the auditor reads requests and the Art. 30 record, nothing else
    assert (await gateway.client.get("/v1/requests", headers=audit)).status == 200
    assert (await gateway.client.get(f"/v1/requests/{rid}", headers=audit)).status == 200
    assert (await gateway.client.get("/v1/art30", headers=audit)).status == 200
    for method, path in (("POST", "/v1/requests"), ("GET", f"/v1/requests/{rid}/extract.json"),
                         ("POST", f"/v1/requests/{rid}/erase"), ("POST", "/v1/explain"),
                         ("POST", "/v1/retention/purge")):
        r = await gateway.client.request(method, path, headers=audit, json={})
        assert r.status == 403, path
    assert (await gateway.client.get("/v1/requests", headers=shop)).status == 403
    assert (await gateway.client.get("/v1/art30")).status == 401

    r = await gateway.client.get("/v1/requests/" + "f" * 32, headers=h)
    assert r.status == 404 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "request_not_found"
    assert (await gateway.client.get("/v1/requests/not-an-id", headers=h)).status == 404

    # strict bodies; the problem names fields, never values
    r = await gateway.client.post("/v1/requests", headers=h, json={
        "kind": "access", "channel": "email", "identity_check": "x", "verified_by": "y",
        "identifiers": {"email": "secret-person@example.se", "shoe_size": "44"}})
    problem = await r.json()
    assert r.status == 422 and problem["code"] == "validation_failed"
    assert "secret-person" not in json.dumps(problem)
    r = await gateway.client.post("/v1/requests", headers=h, json={
        "kind": "access", "channel": "email", "identity_check": "x", "verified_by": "y", "identifiers": {}})
    assert (await r.json())["code"] == "identifiers_missing"
    r = await gateway.client.post("/v1/requests", headers=h, json={"kind": "portability"})
    assert r.status == 422
    r = await gateway.client.post("/v1/requests", data=b"{nope", headers=h | {"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["code"] == "malformed_body"
    r = await gateway.client.post(f"/v1/requests/{rid}/restrict", json={"scope": "no-such-recipient"}, headers=h)
    assert r.status == 422 and (await r.json())["code"] == "invalid_scope"
    r = await gateway.client.post("/v1/retention/purge", params={"dry_run": "maybe"}, headers=h)
    assert r.status == 422
    r = await gateway.client.post("/v1/explain", headers=h, json={"tld": "se", "registrant": {"kind": "person"}})
    assert r.status == 422 and (await r.json())["code"] == "validation_failed"


async def test_restriction_and_objection_are_enforced_and_lifted(gateway: Gateway) -> None:
    await register(gateway, anna(domain="exempel.se"))
    h = gateway.tokens.h("privacy")
    req = await open_request(gateway, kind="restriction", email="anna.andersson@example.se")
    r = await gateway.client.post(f"/v1/requests/{req['id']}/restrict", json={"scope": "all"}, headers=h)
    restricted = await r.json()
    assert r.status == 201, restricted
    assert restricted["notify_recipients"] == ["iis-se"]  # Art. 19
    restriction_id = restricted["restriction"]["id"]

    # the next registration for the same person is refused (fail closed) and the refusal is logged
    r = await gateway.post(anna(domain="ny.se"))
    assert r.status == 422 and (await r.json())["code"] == "subject_restricted"
    # another person is unaffected
    await register(gateway, bertil(domain="bertils.se"))

    r = await gateway.client.post(f"/v1/requests/{req['id']}/lift", json={"restriction_id": "0" * 32}, headers=h)
    assert r.status == 404 and (await r.json())["code"] == "restriction_not_found"
    r = await gateway.client.post(f"/v1/requests/{req['id']}/lift", json={"restriction_id": restriction_id},
                                  headers=h)
    assert r.status == 200 and (await r.json())["lifted_at"]
    await register(gateway, anna(domain="ny.se"))

    # an objection to marketing does not stop a registration with the registry
    r = await gateway.client.post(f"/v1/requests/{req['id']}/object", json={}, headers=h)
    objected = await r.json()
    assert r.status == 201 and objected["restriction"]["kind"] == "objection"
    assert objected["restriction"]["scope"] == "marketing"
    await register(gateway, anna(domain="tredje.se"))
    actions = [e["action"] for e in (await (await gateway.client.get(f"/v1/requests/{req['id']}",
                                                                     headers=h)).json())["events"]]
    assert actions == ["opened", "subject_found", "restricted", "art19_notices", "lifted", "objected",
                       "art19_notices"]


async def test_explain_over_http(gateway: Gateway) -> None:
    h = gateway.tokens.h("privacy")
    registrant = dict(anna()["registrant"], fax="+46 8 123 456 79")
    r = await gateway.client.post("/v1/explain", json={"tld": "se", "registrant": registrant}, headers=h)
    out = await r.json()
    assert r.status == 200, out
    [iis] = out["recipients"]
    assert iis["sent"]["national_id"] == "[SE]811218-9876" and "fax" in iis["withheld"]
    r = await gateway.client.post("/v1/explain", json={"tld": "cn", "registrant": registrant}, headers=h)
    assert (await r.json())["registration_possible"] is False
    # nothing was sent or logged
    assert await gateway.store.disclosures(DisclosureFilter()) == []
