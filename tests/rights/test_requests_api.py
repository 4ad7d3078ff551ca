"""Request lifecycle over HTTP: deadlines and extension, roles, problems, restriction and objection."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.rights.deadlines import deadline_for, extended_deadline
from gateway.store.base import DisclosureFilter
from tests.conftest import Gateway
from tests.rights.conftest import anna, bertil, confirm, entries, open_confirmed, open_request, register

pytestmark = pytest.mark.integration


async def test_request_lifecycle_and_deadlines(gateway: Gateway) -> None:
    await register(gateway, anna())
    h = gateway.tokens.h("privacy")
    req = await open_request(gateway, kind="rectification", email="anna.andersson@example.se",
                             national_id="19811218-9876", domain="exempel.se")
    today = dt.datetime.now(dt.UTC).date()
    assert req["deadline"] == deadline_for(today).isoformat()
    assert req["days_left"] == (deadline_for(today) - today).days
    [candidate] = req["candidates"]
    assert candidate["matched_by"] == ["national_id", "email", "domain"]
    assert candidate["registrations"] == 1 and candidate["domains"] == ["exempel.se"]
    assert candidate["erased"] is False and req["confirmed_subject_ids"] is None

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
    assert [e["action"] for e in closed["events"]] == ["opened", "candidates_found", "extended", "closed"]
    # a closed request takes no confirmation either
    r = await gateway.client.post(f"/v1/requests/{req['id']}/subjects", json={"subject_ids": []}, headers=h)
    assert r.status == 409 and (await r.json())["code"] == "request_closed"
    listed = await (await gateway.client.get("/v1/requests", params={"state": "closed"}, headers=h)).json()
    assert [r["id"] for r in listed["items"]] == [req["id"]]


async def test_a_shared_email_alone_does_not_hand_over_another_persons_data(gateway: Gateway) -> None:
    await register(gateway, anna())
    h = gateway.tokens.h("privacy")
    rows = await entries(gateway)
    # one entry per command: the contact:create (it names the registry's contact) and the domain:create
    assert sorted(e["command"] for e in rows) == ["contact:create", "domain:create"]
    [entry] = [e for e in rows if e["command"] == "contact:create"]
    anna_subject = entry["subject_id"]
    assert {e["subject_id"] for e in rows} == {anna_subject}
    # right e-mail, someone else's personnummer: Anna's record is listed, matched by the e-mail only (not
    # by the number, not strong, not suggested), and nothing is acted on
    req = await open_request(gateway, email="anna.andersson@example.se", national_id="19880320-0016")
    [candidate] = req["candidates"]
    assert candidate["subject_id"] == anna_subject and candidate["matched_by"] == ["email"]
    assert candidate["strong"] is False and candidate["suggested"] is False and candidate["confirmed"] is False
    assert req["subject_id"] is None and req["confirmed_subject_ids"] is None
    assert [e["action"] for e in req["events"]] == ["opened", "candidates_found"]
    for action in ("extract", "erase", "restrict", "object"):
        r = await gateway.client.post(f"/v1/requests/{req['id']}/{action}", json={}, headers=h)
        assert r.status == 409 and (await r.json())["code"] == "subject_not_confirmed", action
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.json", headers=h)
    assert r.status == 409
    r = await gateway.client.post(f"/v1/requests/{req['id']}/rectify", headers=h,
                                  json={"registrant": anna()["registrant"]})
    assert r.status == 409 and (await r.json())["code"] == "subject_not_confirmed"
    # staff decide it is not the person: the extract lists nothing, erasure has nobody to erase
    done = await confirm(gateway, req, [])
    assert done["confirmed_subject_ids"] == [] and done["subject_id"] is None
    x = await (await gateway.client.post(f"/v1/requests/{req['id']}/extract", headers=h)).json()
    assert x["disclosures"] == [] and x["subject_ids"] == []
    r = await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=h)
    assert r.status == 409 and (await r.json())["code"] == "subject_not_identified"
    key = await gateway.store.subject_key(anna_subject)
    assert key is not None and key.wrapped is not None
    assert [a for a in await gateway.store.access_log(anna_subject) if a["action"] == "rights.extract"] == []

    # a domain that is not the subject's does not corroborate; the registry contact id does (any case)
    req2 = await open_request(gateway, email="anna.andersson@example.se", domain="annan.se")
    assert [c["matched_by"] for c in req2["candidates"]] == [["email"]]
    contact = next(v for k, v in entry["objects"].items() if v.startswith("RG"))
    found = await open_request(gateway, email="anna.andersson@example.se", contact_id=contact.lower())
    assert [(c["subject_id"], c["matched_by"]) for c in found["candidates"]] == [
        (anna_subject, ["contact_id", "email"])]
    other = await open_request(gateway, email="anna.andersson@example.se", contact_id="RG-OTHER")
    assert [c["matched_by"] for c in other["candidates"]] == [["email"]]
    assert (await gateway.client.get("/v1/requests", params={"state": "bogus"}, headers=h)).status == 422


async def test_roles_and_problems(gateway: Gateway) -> None:
    h, audit, shop = (gateway.tokens.h(r) for r in ("privacy", "auditor", "ordering"))
    req = await open_request(gateway, email="nobody@example.se")
    rid = req["id"]
    # the auditor reads requests and the Art. 30 record, nothing else
    assert (await gateway.client.get("/v1/requests", headers=audit)).status == 200
    assert (await gateway.client.get(f"/v1/requests/{rid}", headers=audit)).status == 200
    assert (await gateway.client.get("/v1/art30", headers=audit)).status == 200
    for method, path in (("POST", "/v1/requests"), ("GET", f"/v1/requests/{rid}/extract.json"),
                         ("POST", f"/v1/requests/{rid}/erase"), ("POST", f"/v1/requests/{rid}/subjects"),
                         ("POST", "/v1/explain"),
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
    req = await open_confirmed(gateway, kind="restriction", email="anna.andersson@example.se")
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
    assert actions == ["opened", "candidates_found", "subjects_confirmed", "restricted", "art19_notices", "lifted",
                       "objected", "art19_notices"]


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


async def test_confirming_candidates_over_http(gateway: Gateway) -> None:
    await register(gateway, anna())
    await register(gateway, bertil(domain="bertils.se"))
    h, audit = gateway.tokens.h("privacy"), gateway.tokens.h("auditor")
    anna_subject = (await entries(gateway))[0]["subject_id"]
    req = await open_request(gateway, email="anna.andersson@example.se", national_id="19811218-9876",
                             national_id_scheme="se_personnummer")
    rid = req["id"]
    [candidate] = req["candidates"]  # Bertil shares nothing given here
    assert candidate["subject_id"] == anna_subject and {"national_id", "email"} <= set(candidate["matched_by"])
    assert candidate["domains"] == ["exempel.se"] and candidate["registrations"] == 1
    path = f"/v1/requests/{rid}/subjects"
    # the body is strict: a list of subject ids, nothing else; only candidates; the auditor only reads
    for body in ({}, {"subject_ids": "x"}, {"subject_ids": ["not-an-id"]}, {"subject_ids": [], "extra": 1}):
        r = await gateway.client.post(path, json=body, headers=h)
        assert r.status == 422 and (await r.json())["code"] == "validation_failed", body
    bertil_subject = next(e["subject_id"] for e in await entries(gateway) if e["subject_id"] != anna_subject)
    r = await gateway.client.post(path, json={"subject_ids": [bertil_subject]}, headers=h)
    problem = await r.json()
    assert r.status == 422 and problem["code"] == "not_a_candidate"
    assert problem["errors"] == [{"loc": ["subject_ids", 0], "type": "not_a_candidate"}]
    assert (await gateway.client.post(path, json={"subject_ids": []}, headers=audit)).status == 403
    assert (await gateway.client.post("/v1/requests/" + "f" * 32 + "/subjects", json={"subject_ids": []},
                                      headers=h)).status == 404
    r = await gateway.client.post(f"/v1/requests/{rid}/extract", headers=h)
    problem = await r.json()
    assert r.status == 409 and problem["code"] == "subject_not_confirmed"
    assert problem["title"] == "Confirm which candidate records are the data subject's first"

    r = await gateway.client.post(path, json={"subject_ids": [candidate["subject_id"]]}, headers=h)
    done = await r.json()
    assert r.status == 200, done
    assert done["confirmed_subject_ids"] == [candidate["subject_id"]] and done["subject_id"] == candidate["subject_id"]
    assert [c["confirmed"] for c in done["candidates"] if c["subject_id"] == candidate["subject_id"]] == [True]
    # the auditor sees candidates and the decision; the request log holds ids and kinds only
    view = await (await gateway.client.get(f"/v1/requests/{rid}", headers=audit)).json()
    assert view["confirmed_subject_ids"] == [candidate["subject_id"]] and view["candidates"]
    assert view["events"][-1]["action"] == "subjects_confirmed"
    assert view["events"][-1]["detail"]["matched_by"][0]["matched_by"] == candidate["matched_by"]
    text = json.dumps(view["events"]) + json.dumps(view["data"])
    for pii in ("Anna", "anna.andersson", "811218", "Storgatan"):
        assert pii not in text, pii
    x = await (await gateway.client.post(f"/v1/requests/{rid}/extract", headers=h)).json()
    assert {d["leaf"]["subject_id"] for d in x["disclosures"]} == {candidate["subject_id"]}
    listed = await (await gateway.client.get("/v1/requests", headers=h)).json()
    assert listed["items"][0]["confirmed_subject_ids"] == [candidate["subject_id"]]
