"""For every configured TLD: read the EPP frames the sandbox captured back into registrant field
names and compare them with the policy's release list. Exactly those fields left, nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from lxml import etree

from gateway.policy.loader import load_policies
from tests.conftest import ORG_BODY, ROOT, VALID_BODY, Gateway, body_for_tld

pytestmark = pytest.mark.integration

EPP = "urn:ietf:params:xml:ns:epp-1.0"
C = "urn:ietf:params:xml:ns:contact-1.0"
IIS = "urn:se:iis:xml:epp:iis-1.2"
EURID = "http://www.eurid.eu/xml/epp/contact-ext-1.3"
DKHM = "urn:dkhm:params:xml:ns:dkhm-4.5"
NORID = "http://www.norid.no/xsd/no-ext-contact-1.0"

#: element (namespace, local name) → the registrant field it carries
ELEMENT_FIELD = {
    (C, "name"): "name", (C, "org"): "organisation", (C, "street"): "street", (C, "city"): "city",
    (C, "sp"): "state", (C, "pc"): "postal_code", (C, "cc"): "country", (C, "voice"): "phone",
    (C, "fax"): "fax", (C, "email"): "email",
    (IIS, "orgno"): "national_id", (IIS, "vatno"): "vat_number",
    (EURID, "lang"): "language", (EURID, "vat"): "vat_number", (EURID, "countryOfCitizenship"): "citizenship",
    (EURID, "naturalPerson"): "kind",
    (DKHM, "userType"): "kind", (DKHM, "CVR"): "national_id", (DKHM, "pnumber"): "national_id",
    (NORID, "identity"): "national_id", (NORID, "type"): "kind",  # person / organization / role
    # Traficom (.fi) members inside contact:create, in the contact namespace itself
    (C, "type"): "kind", (C, "firstname"): "name", (C, "lastname"): "name", (C, "legalemail"): "email",
    (C, "identity"): "national_id", (C, "registernumber"): "national_id", (C, "birthDate"): "birth_date",
    (C, "isfinnish"): "country",  # 1/0 from the country (or from the Finnish number sent as identity/registernumber)
}
#: elements that carry no registrant data (protocol structure, the registrar's choices; .fi role 5 = holder)
STRUCTURE = {(C, n) for n in ("create", "id", "postalInfo", "addr", "authInfo", "pw", "role")} | {
    (EURID, "create"), (EURID, "type"), (IIS, "create"), (NORID, "create"),
    (EPP, "extension"),
}
HETU = "131052-308T"  # a valid Finnish personal identity code (python-stdnum's example)
#: fields a policy may release that travel inside another element
IMPLIED = {"national_id_scheme": "national_id"}


def _fields_in(command: etree._Element) -> set[str]:
    found: set[str] = set()
    disclose = f"{{{C}}}disclose"
    for el in command.iter():
        # <contact:disclose> children are publication flags, not data
        if not isinstance(el.tag, str) or el.tag == disclose or any(a.tag == disclose for a in el.iterancestors()):
            continue
        q = etree.QName(el)
        key = (q.namespace or "", q.localname)
        if key in ELEMENT_FIELD:
            found.add(ELEMENT_FIELD[key])
        elif key not in STRUCTURE and key[0] in (C, IIS, EURID, DKHM, NORID):
            raise AssertionError(f"unmapped element {key}: decide what it carries")
    return found


async def _released_fields_left(gateway: Gateway, tld: str, body: dict[str, Any]) -> etree._Element | None:
    """Post ``body``; assert exactly the released fields left; the subject's command, if one was sent."""
    policy = load_policies(ROOT / "config").by_tld[tld]
    r = await gateway.post(body)
    plan = await r.json()
    frames = gateway.sandbox.sandbox.frames
    if r.status == 422 or policy.protocol != "epp":
        if r.status == 202:
            await gateway.wait_status(plan["id"], {"failed"})
        assert frames == []  # blocked or no adapter: nothing left at all
        return None
    await gateway.wait_status(plan["id"], {"delivered"})
    [registry_plan] = [t for t in plan["transfers"] if t["recipient"] == policy.recipient]
    released = set(registry_plan["fields_sent"])
    subject_creates = []
    for f in frames:
        root = etree.fromstring(f)
        create = root.find(f"{{{EPP}}}command/{{{EPP}}}create/{{{C}}}create")
        if create is not None and create.findtext(f"{{{C}}}id") != "RGREGISTRAR":
            subject_creates.append(root.find(f"{{{EPP}}}command"))
    if not released:
        assert subject_creates == []  # thin: no contact object at all
        return None
    [command] = subject_creates
    sent = _fields_in(command)
    expected = {IMPLIED.get(f, f) for f in released}
    assert sent == expected, (tld, "sent, not released:", sorted(sent - expected),
                              "released, not sent:", sorted(expected - sent))
    # and whatever left was allowed by the policy file itself
    for f in sent:
        rule = policy.fields.get(f) or policy.fields.get("national_id")
        assert rule is not None and rule.send != "never", (tld, f)
    return command


@pytest.mark.parametrize("tld", sorted(load_policies(ROOT / "config").by_tld))
async def test_exactly_the_released_fields_left(gateway: Gateway, tld: str) -> None:
    await _released_fields_left(gateway, tld, body_for_tld(tld, "falt", fax="+46 8 111 222 33"))


async def test_fi_finnish_person_sends_hetu_as_identity(gateway: Gateway) -> None:
    b = copy.deepcopy(VALID_BODY)
    b["domain"] = "henkilo.fi"
    b["registrant"] = {
        "kind": "person", "name": "Matti Meikäläinen", "national_id": {"scheme": "fi_hetu", "value": HETU},
        "address": {"street": ["Mannerheimintie 1"], "city": "Helsinki", "postal_code": "00100", "country": "FI"},
        "email": "matti@example.fi", "phone": "+358 9 123 4567", "fax": "+358 9 123 4568",
    }
    command = await _released_fields_left(gateway, "fi", b)
    assert command is not None
    assert command.findtext(f".//{{{C}}}identity") == HETU
    assert command.findtext(f".//{{{C}}}isfinnish") == "1"
    assert command.findtext(f".//{{{C}}}type") == "0" and command.findtext(f".//{{{C}}}role") == "5"
    assert (command.findtext(f".//{{{C}}}firstname"), command.findtext(f".//{{{C}}}lastname")) == (
        "Matti", "Meikäläinen")
    assert command.find(f".//{{{C}}}registernumber") is None


@pytest.mark.parametrize("holder", ["foreign_person", "foreign_organisation"])
async def test_fi_identifies_foreign_holders_as_traficom_asks(gateway: Gateway, holder: str) -> None:
    b = copy.deepcopy(VALID_BODY if holder == "foreign_person" else ORG_BODY)
    b["domain"] = f"{holder.replace('_', '-')}.fi"
    if holder == "foreign_person":
        b["registrant"]["birth_date"] = "1981-12-18"
    r = await gateway.post(b)
    assert r.status == 202, await r.text()
    plan = await r.json()
    reg = await gateway.wait_status(plan["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg["disclosures"]
    [fi] = [t for t in plan["transfers"] if t["recipient"] == "traficom-fi"]
    [create] = [etree.fromstring(f) for f in gateway.sandbox.sandbox.frames
                if b"<contact:create" in f and b"RGREGISTRAR" not in f]
    text = etree.tostring(create).decode()
    if holder == "foreign_person":
        # Traficom's birthDate is an xs:dateTime (as Net::DRI and php-epp-client send it)
        assert ">1981-12-18T00:00:00.0Z<" in text and "811218" not in text  # birthDate, never the Swedish number
        assert "birth_date" in fi["fields_sent"] and "national_id" in fi["fields_withheld"]
    else:
        assert ">802405-0190<" in text  # the organisation's own register number
        assert "national_id" in fi["fields_sent"]
