"""A registration's EPP row is an order; its commands are built when it is sent (``commands_for``).

What acceptance says about those commands without building them must be exactly what the built
commands carry: ``carried_by_order`` against ``carried_fields`` of the built contact, for any released
values at every EPP registry of the configuration.  The commands built from the values as sealed
(narrowed to what is carried, street lines come back as a list) are the commands built from
everything released, so the worker sends what the old acceptance built (``registrations_built.json``
holds the digests, see ``test_payloads``).  Encoding: the sealed content is encoded once, the payload's
digest taken from the same bytes, and the C encoder gives the canonical bytes the digests were always
computed over.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.epp.extensions import NeulevelContactExt
from adapters.epp.types import DiscloseSpec
from gateway.outbox.epp import (
    RegistrarContact,
    RegistrationOrder,
    carried_by_order,
    carried_fields,
    commands_for,
    order_from_json,
    order_to_json,
)
from gateway.outbox.payloads import (
    EppOrder,
    EppRegistration,
    EppTransferIn,
    HttpsPost,
    OutboxContent,
    canonical_json,
    decode,
    json_digest,
)
from gateway.policy.loader import load_policies
from gateway.policy.schema import RecipientPolicy
from tests.conftest import ROOT

POLICIES = load_policies(ROOT / "config")
EPP = sorted(rid for rid, p in POLICIES.recipients.items() if p.protocol == "epp" and p.epp is not None)
REGISTRAR = RegistrarContact()
SCHEMES = ["se_personnummer", "se_organisationsnummer", "dk_cvr", "no_fodselsnummer", "no_organisasjonsnummer",
           "fi_hetu", "fi_ytunnus", "ee_isikukood"]


def order(**kw: Any) -> RegistrationOrder:
    base: dict[str, Any] = dict(
        domain="exempel.se", period_years=2, nameservers=("ns1.example.net", "ns2.example.net"), kind="person",
        contact_id="RGABCDEFGHIJKL", contact_auth="c-auth", domain_auth="d-auth", registrar_id=REGISTRAR.id,
        registrar_auth="r-auth",
    )
    return RegistrationOrder(**(base | kw))


text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
optional = {
    "organisation": text,
    "street": st.lists(text, min_size=1, max_size=3).map(tuple),
    "state": text,
    "postal_code": st.from_regex(r"[0-9]{3} ?[0-9]{2}", fullmatch=True),
    "phone": st.sampled_from(["+46812345678", "+4798765432", "+358912345678"]),
    "fax": st.sampled_from(["+46812345679", "+4531234567"]),
    "national_id": st.from_regex(r"[0-9]{6}-?[0-9]{4}", fullmatch=True),
    "national_id_scheme": st.sampled_from(SCHEMES),
    "vat_number": st.from_regex(r"[A-Z]{2}[0-9]{10}", fullmatch=True),
    "language": st.sampled_from(["sv", "en", "fi", "nb"]),
    "citizenship": st.sampled_from(["SE", "FI", "NO", "DK"]),
    "birth_date": st.sampled_from(["1981-12-18", "1990-01-31"]),
    "kind": st.sampled_from(["person", "organisation"]),
}


@st.composite
def released(draw: st.DrawFn) -> dict[str, Any]:
    """Released values as minimisation gives them: the RFC 5733 minimum and any optional fields."""
    values: dict[str, Any] = {"name": draw(text), "city": draw(text), "country": draw(st.sampled_from(["SE", "FI"])),
                              "email": "anna@example.se"}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            values[name] = draw(strategy)
    return values


@st.composite
def orders(draw: st.DrawFn) -> RegistrationOrder:
    nexus = draw(st.sampled_from([None, NeulevelContactExt("P3", "C11"), NeulevelContactExt("P1", "C31", "SE")]))
    disclose = draw(st.sampled_from([None, DiscloseSpec(0, ("name", "addr", "voice", "email")),
                                     DiscloseSpec(1, ("org", "fax"))]))
    return order(kind=draw(st.sampled_from(["person", "organisation"])), nexus=nexus, disclose=disclose)


def subject_contact(o: RegistrationOrder, values: dict[str, Any], policy: RecipientPolicy) -> Any:
    cmds = commands_for(o, values, policy, REGISTRAR)
    subject = cmds.subject_contacts()
    return subject[0] if subject else None


@pytest.mark.parametrize("recipient", EPP)
@settings(max_examples=60, deadline=None)
@given(o=orders(), values=released())
def test_what_acceptance_says_is_carried_is_what_the_built_contact_carries(
    recipient: str, o: RegistrationOrder, values: dict[str, Any]
) -> None:
    policy = POLICIES.recipients[recipient]
    contact = subject_contact(o, values, policy)
    expected = carried_fields(contact, set(values)) if contact is not None else set()
    assert carried_by_order(o, values, policy) == expected


@pytest.mark.parametrize("recipient", EPP)
@settings(max_examples=40, deadline=None)
@given(o=orders(), values=released())
def test_the_commands_from_the_sealed_values_are_the_commands_from_all_released(
    recipient: str, o: RegistrationOrder, values: dict[str, Any]
) -> None:
    policy = POLICIES.recipients[recipient]
    carried = carried_by_order(o, values, policy)
    sealed = json.loads(json.dumps({k: v for k, v in values.items() if k in carried}))  # tuples come back as lists
    built = commands_for(o, sealed, policy, REGISTRAR)
    if carried:
        assert built == commands_for(o, values, policy, REGISTRAR)
    # deterministic: every attempt (and a crash-recovered one) builds the same objects, under the order's ids
    assert built == commands_for(o, sealed, policy, REGISTRAR)
    assert built.domain.auth_pw == o.domain_auth
    assert {c.id for c in built.subject_contacts()} <= {o.contact_id}


@settings(max_examples=50, deadline=None)
@given(o=orders())
def test_an_order_round_trips_through_its_stored_form(o: RegistrationOrder) -> None:
    stored = json.loads(json.dumps(order_to_json(o)))
    assert order_from_json(stored) == o
    for auth_pw in (None, "Abc-123-xyz"):
        payload = EppOrder(o, auth_pw=auth_pw)
        assert decode(json.loads(json.dumps(payload.to_json()))) == payload


def test_an_order_is_sent_as_a_registration_or_a_transfer() -> None:
    o = order()
    policy = POLICIES.recipients["iis-se"]
    cmds = commands_for(o, {"name": "Anna", "city": "Sthlm", "country": "SE", "email": "a@example.se"}, policy,
                        REGISTRAR)
    assert EppOrder(o).sendable(cmds) == EppRegistration(cmds)
    assert EppOrder(o, auth_pw="Abc-123").sendable(cmds) == EppTransferIn(auth_pw="Abc-123", years=2, commands=cmds)
    # the order itself holds no command and is digested as what it is, not as the commands
    assert EppOrder(o).digest() != EppRegistration(cmds).digest()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(st.characters(codec="utf-8")),
                                                                  inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(st.characters(codec="utf-8")), json_values, max_size=5))
def test_the_canonical_bytes_are_those_the_digests_were_always_computed_over(data: dict[str, Any]) -> None:
    legacy = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(data) == legacy


@pytest.mark.parametrize("payload", [
    EppOrder(order(nexus=NeulevelContactExt("P3", "C11"), disclose=DiscloseSpec(0, ("name",)))),
    EppOrder(order(), auth_pw="Åäö-123"),
    HttpsPost("/v1/domains", {"domain": "exempel.se", "data": {"name": "Åsa Öberg"}}),
])
def test_the_sealed_content_is_encoded_once_for_its_bytes_and_its_digest(payload: Any) -> None:
    content = OutboxContent(payload, {"name": "Åsa Öberg", "street": ["Storgatan 1"], "city": "Göteborg"})
    encoded, digest = content.encoded()
    assert encoded == canonical_json(content.to_json())
    assert OutboxContent.from_json(json.loads(encoded)) == content
    assert digest == payload.digest() == json_digest(payload.to_json())
