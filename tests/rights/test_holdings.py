"""Holdings: who holds which of a person's data now, through the running gateway (the lifecycle API against the
TLS sandbox) and as the pure computation the API, the letter and erasure share."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from gateway.ledger.entry import DisclosureEntry
from gateway.policy.loader import PolicySet, load_policies
from gateway.rights.config import load_retention
from gateway.rights.extract import verify_extract
from gateway.services.holdings import RegistrationFacts, holdings
from tests.api.test_lifecycle import act, entries, registration, wait_for
from tests.conftest import ROOT, Gateway, body
from tests.rights.conftest import anna, open_confirmed, public_key_pem, register
from tests.rights.test_letter import configure


async def subject_of(gw: Gateway, reg_id: str) -> str:
    sid: str = (await registration(gw, reg_id))["subject_id"]
    return sid


async def held(gw: Gateway, subject_id: str, role: str = "privacy", status: int = 200) -> dict[str, Any]:
    r = await gw.client.get(f"/v1/subjects/{subject_id}/holdings", headers=gw.tokens.h(role))
    data: dict[str, Any] = await r.json()
    assert r.status == status, data
    return data


def objects(h: dict[str, Any], recipient: str) -> dict[tuple[str, str], dict[str, Any]]:
    [r] = [r for r in h["recipients"] if r["recipient"] == recipient]
    return {(o["kind"], o["id"]): o for o in r["objects"]}


@pytest.mark.integration
async def test_holdings_list_exactly_the_live_objects_as_domains_end(gateway: Gateway) -> None:
    first = await register(gateway, anna())
    second = await register(gateway, body(domain="andra.se", order_ref="ORD-1002"))
    sid = await subject_of(gateway, first)
    assert await subject_of(gateway, second) == sid
    [create] = entries(await registration(gateway, first), "contact:create")
    contact = create["objects"]["contact"]

    h = await held(gateway, sid)
    assert h["subject_id"] == sid and [r["recipient"] for r in h["recipients"]] == ["iis-se"]
    live = objects(h, "iis-se")
    assert set(live) == {("contact", contact), ("domain", "exempel.se"), ("domain", "andra.se")}
    assert live[("contact", contact)]["ends"] == "deleted when no domain of ours uses it"
    assert live[("contact", contact)]["since"] == create["recorded_at"]
    assert live[("contact", contact)]["fields"] == sorted(create["fields"]) and "name" in create["fields"]
    links = live[("domain", "andra.se")]["links"]
    assert links["registrant"] == contact and set(links.values()) == {contact}  # her contact (as holder, admin)
    expires = (await registration(gateway, second))["expires_at"]
    assert live[("domain", "andra.se")]["ends"] == (f"deletion, transfer away or expiry on {expires[:10]}" if expires
                                                    else "deletion, transfer away or expiry (date not known yet)")
    # our own copy: kept while the registration is ours
    [own] = [c for c in h["retention"]["copies"] if c["registration_id"] == first]
    assert own["purge_on"] is None and own["ends"] == "kept while the registration is ours, then 15 months"
    assert h["retention"]["measured_from"] == "registration_end"

    # the first domain is deleted: it is no longer held; the contact the second one uses still is
    assert (await act(gateway, first, "delete")).status == 202
    await wait_for(gateway, first, lambda g: bool(entries(g, "domain:delete")))
    await wait_for(gateway, first, lambda g: all(d["state"] == "done" for d in g["deliveries"]))
    live = objects(await held(gateway, sid), "iis-se")
    assert set(live) == {("contact", contact), ("domain", "andra.se")}

    # the last one goes: the registry deleted the contact, so it holds nothing of hers
    assert (await act(gateway, second, "delete")).status == 202
    ended = await wait_for(gateway, second, lambda g: bool(entries(g, "contact:delete")))
    h = await held(gateway, sid, role="auditor")  # the auditor reads holdings too (nothing is decrypted)
    assert h["recipients"] == []
    [own] = [c for c in h["retention"]["copies"] if c["registration_id"] == first]
    assert own["purge_on"] is not None and own["ends"] == f"purged on {own['purge_on']}"
    assert own["purge_on"] > ended["ended_at"][:10]
    # the log keeps every entry
    assert len(entries(await registration(gateway, first), "contact:create")) == 1

    # erasure's deletion plan: the registry received her data but holds none of it now
    req = await open_confirmed(gateway, kind="erasure", email="anna.andersson@example.se")
    out = await (await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=gateway.tokens.h("privacy"))
                 ).json()
    [plan] = [p for p in out["recipients"] if p["recipient"] == "iis-se"]
    assert plan["holds"] == [] and plan["deletion_request"] == "not_needed"


@pytest.mark.integration
async def test_a_contact_the_registry_keeps_is_listed_as_held_by_it(gateway: Gateway) -> None:
    reg_id = await register(gateway, anna())
    sid = await subject_of(gateway, reg_id)
    assert (await act(gateway, reg_id, "transfer-out")).status == 202
    reg = await wait_for(gateway, reg_id, lambda g: bool(entries(g, "contact:delete")))
    [refused] = entries(reg, "contact:delete")
    assert refused["outcome"] == "refused"
    live = objects(await held(gateway, sid), "iis-se")
    # the domain is another registrar's now; the contact it still points at stays with the registry
    assert list(live) == [("contact", refused["objects"]["contact"])]
    assert live[("contact", refused["objects"]["contact"])]["ends"] == (
        "kept by the registry (refused delete, 2305) — ask the registry")

    # the erasure plan: deletion can be asked for (no active registration), the contact is listed
    req = await open_confirmed(gateway, kind="erasure", email="anna.andersson@example.se")
    out = await (await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=gateway.tokens.h("privacy"))
                 ).json()
    [plan] = [p for p in out["recipients"] if p["recipient"] == "iis-se"]
    assert plan["deletion_request"] == "possible" and [o["kind"] for o in plan["holds"]] == ["contact"]


@pytest.mark.integration
async def test_holdings_refuse_unknown_subjects_and_other_roles(gateway: Gateway) -> None:
    reg_id = await register(gateway, anna())
    sid = await subject_of(gateway, reg_id)
    await held(gateway, uuid.uuid4().hex, status=404)
    await held(gateway, "not-a-subject", status=404)
    await held(gateway, sid, role="ordering", status=403)
    r = await gateway.client.get(f"/v1/subjects/{sid}/holdings")
    assert r.status == 401


@pytest.mark.integration
async def test_the_letter_says_who_holds_the_data_now_in_swedish_and_english(gateway: Gateway) -> None:
    configure(gateway)  # the controller's own details: a letter with placeholders is refused
    first = await register(gateway, anna())
    await register(gateway, body(domain="andra.se", order_ref="ORD-1002"))
    assert (await act(gateway, first, "delete")).status == 202
    await wait_for(gateway, first, lambda g: all(d["state"] == "done" for d in g["deliveries"]))
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    h = gateway.tokens.h("privacy")
    base = f"/v1/requests/{req['id']}/extract"

    x = await (await gateway.client.post(base, json={"lang": "en"}, headers=h)).json()
    section = x["holdings"]
    assert section["heading"] == "Who holds your data now"
    [iis] = section["recipients"]
    assert iis["country_name"] == "Sweden"
    assert {(o["kind_text"], o["id"]) for o in iis["objects"] if o["kind"] == "domain"} == {("Domain name", "andra.se")}
    assert verify_extract(x, await public_key_pem(gateway)) == []  # the section does not disturb the proofs

    sv = await (await gateway.client.get(f"{base}.html", params={"lang": "sv"}, headers=h)).text()
    assert "Vem har dina uppgifter nu" in sv and "andra.se" in sv
    assert "radering, flytt till annan registrar eller utgång" in sv
    assert "Vår egen kopia" in sv
    en = await (await gateway.client.get(f"{base}.html", params={"lang": "en"}, headers=h)).text()
    assert "Who holds your data now" in en and "deletion, transfer away or expiry" in en
    # exempel.se was deleted: the registry no longer holds it (our own copy's retention still names it)
    recipients = en.split("Who holds your data now")[1].split("Our own copy")[0]
    assert "andra.se" in recipients and "exempel.se" not in recipients
    pdf = await gateway.client.get(f"{base}.pdf", params={"lang": "sv"}, headers=h)
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")


# -- the pure computation -----------------------------------------------------------------------------------

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def entry(reg: str, recipient: str, command: str | None, outcome: str, objects: dict[str, str],
          fields: tuple[str, ...] = (), at: str = "2026-01-01T10:00:00Z", code: str | None = None,
          index: int = 0, purpose: str = "domain_registration", values: bool = False) -> DisclosureEntry:
    return DisclosureEntry(
        id=uuid.uuid4().hex, registration_id=reg, recipient=recipient, recipient_name=recipient.upper(),
        recipient_country="SE", category="eea", article=None, instrument=None, purpose=purpose, outcome=outcome,
        fields=fields, withheld=(), objects=objects, attempted_at=at, recorded_at=at, result_code=code,
        command=command, leaf_index=index, values_ct=b"sealed" if values else None,
    )


def facts(reg: str, domain: str, **kw: Any) -> RegistrationFacts:
    return RegistrationFacts(id=reg, domain=domain, status=kw.pop("status", "delivered"),
                             updated_at="2026-01-01T10:00:00Z", **kw)


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "config")


def test_pure_holdings_per_object(policies: PolicySet) -> None:
    retention = load_retention(ROOT / "config")
    log = [
        entry("r1", "iis-se", "contact:create", "delivered", {"contact": "C1", "contact:registrant": "C1"},
              ("email", "name"), index=1, values=True),
        entry("r1", "iis-se", "domain:create", "delivered", {"domain": "a.se", "contact:registrant": "C1",
                                                              "contact:admin": "REGISTRAR"}, index=2),
        entry("r1", "iis-se", "contact:update", "delivered", {"contact": "C1"}, ("phone",),
              at="2026-02-01T10:00:00Z", index=3, values=True),
        entry("r2", "verisign-com", "domain:create", "delivered", {"domain": "a.com"}, index=4),  # thin: no data
        entry("r3", "iis-se", "contact:create", "delivered", {"contact": "C3"}, ("name",), index=5),
        entry("r3", "iis-se", "domain:create", "delivered", {"domain": "b.se", "contact:registrant": "C3"}, index=6),
        entry("r3", "iis-se", "domain:delete", "deleted", {"domain": "b.se"}, index=7),
        entry("r3", "iis-se", "contact:delete", "refused", {"contact": "C3"}, code="2305", index=8),
        entry("r1", "escrow-agent", None, "delivered", {"deposit_id": "D1", "deposit_sha256": "x"}, ("name",),
              index=9, purpose="escrow"),
        entry("r4", "iis-se", "contact:create", "refused", {"contact": "C4"}, ("name",), index=10),
    ]
    regs = {"r1": facts("r1", "a.se", expires_at="2027-01-01"), "r2": facts("r2", "a.com"),
            "r3": facts("r3", "b.se", ended_at="2026-03-01T00:00:00Z", end_reason="deleted"),
            "r4": facts("r4", "c.se", status="failed")}
    out = holdings(["s1"], log, regs, policies.recipients, retention).as_dict()
    by = {r["recipient"]: {(o["kind"], o["id"]): o for o in r["objects"]} for r in out["recipients"]}
    assert set(by) == {"iis-se", "escrow-agent"}  # verisign-com got no personal data
    assert set(by["iis-se"]) == {("contact", "C1"), ("domain", "a.se"), ("contact", "C3")}
    c1 = by["iis-se"][("contact", "C1")]
    assert c1["fields"] == ["email", "name", "phone"] and c1["since"] == "2026-01-01T10:00:00Z"
    assert by["iis-se"][("domain", "a.se")]["links"] == {"registrant": "C1"}  # the registrar's own contact is not hers
    assert by["iis-se"][("domain", "a.se")]["ends"] == "deletion, transfer away or expiry on 2027-01-01"
    assert by["iis-se"][("contact", "C3")]["ends_kind"] == "kept_by_registry"
    assert by["escrow-agent"][("copy", "D1")]["ends_kind"] == "escrow_active"
    [own] = out["retention"]["copies"]
    assert own["registration_id"] == "r1" and own["entries"] == 2 and own["purge_on"] is None


def test_pure_holdings_a_release_still_queued_keeps_the_domain_listed(policies: PolicySet) -> None:
    retention = load_retention(ROOT / "config")
    log = [entry("r1", "iis-se", "domain:create", "delivered", {"domain": "a.se"}, ("name",), index=1)]
    ended = facts("r1", "a.se", ended_at="2026-03-01T00:00:00Z", end_reason="deleted",
                  unfinished=frozenset({"iis-se"}))
    [r] = holdings(["s1"], log, {"r1": ended}, policies.recipients, retention).recipients
    [o] = r.objects
    assert o.ends.text("en") == "ended 2026-03-01 (deleted); deletion at the registry pending"
    assert o.ends.text("sv") == "upphörde 2026-03-01 (raderat); radering hos registret väntar"
    done = facts("r1", "a.se", ended_at="2026-03-01T00:00:00Z", end_reason="transferred_out")
    assert holdings(["s1"], log, {"r1": done}, policies.recipients, retention).recipients == ()
