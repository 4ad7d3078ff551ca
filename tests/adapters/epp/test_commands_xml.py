"""Frames for update/delete/renew/transfer/poll: schema-valid, in schema order, parsed back."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from adapters.epp.sandbox import FrameValidator
from adapters.epp.types import (
    Address,
    ContactDelete,
    ContactUpdate,
    DiscloseSpec,
    DomainDelete,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    PollAck,
    PollRequest,
    PostalInfoChange,
    TransferOp,
)
from adapters.epp.xml import (
    NSMAP,
    build_contact_delete,
    build_contact_update,
    build_domain_delete,
    build_domain_renew,
    build_domain_transfer,
    build_domain_update,
    build_poll,
    parse_document,
    parse_response,
    xs_date,
)


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def _valid(validator: FrameValidator, frame: bytes) -> etree._Element:
    assert validator.errors(frame) == []
    return parse_document(frame)


def _names(el: etree._Element | None) -> list[str]:
    assert el is not None
    return [etree.QName(c).localname for c in el]


def test_contact_update_sends_only_what_changed(validator: FrameValidator) -> None:
    full = ContactUpdate(
        id="RG1A2B",
        add_status=("clientDeleteProhibited",),
        rem_status=("clientUpdateProhibited",),
        postal_info=(
            PostalInfoChange(type="int", name="Anna Berg"),
            PostalInfoChange(type="loc", org="", addr=Address(city="Lund", cc="SE", street=("A", "B"), pc="222 22")),
        ),
        voice="",
        fax="+46.812345679",
        email="anna@example.se",
        auth_pw="n3w-Pw",
        disclose=DiscloseSpec(flag=1, elements=("addr", "name")),
    )
    root = _valid(validator, build_contact_update(full, "t-cu1"))
    update = root.find(".//contact:update", NSMAP)
    assert _names(update) == ["id", "add", "rem", "chg"]
    chg = root.find(".//contact:chg", NSMAP)
    assert chg is not None
    assert _names(chg) == ["postalInfo", "postalInfo", "voice", "fax", "email", "authInfo", "disclose"]
    assert _names(chg[0]) == ["name"] and _names(chg[1]) == ["org", "addr"]
    assert chg.findtext("contact:voice", namespaces=NSMAP) == "" and chg[1][0].text is None
    disclose = chg.find("contact:disclose", NSMAP)
    assert disclose is not None and [(c.get("type")) for c in disclose] == ["int", "int"]

    only_email = _valid(validator, build_contact_update(ContactUpdate(id="RG1A2B", email="x@example.se"), "t-cu2"))
    assert _names(only_email.find(".//contact:update", NSMAP)) == ["id", "chg"]
    assert _names(only_email.find(".//contact:chg", NSMAP)) == ["email"]
    status_only = ContactUpdate(id="RG1A2B", add_status=("clientTransferProhibited",))
    only_status = _valid(validator, build_contact_update(status_only, "t-cu5"))
    assert only_status.find(".//contact:chg", NSMAP) is None


def test_contact_update_that_changes_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        build_contact_update(ContactUpdate(id="RG1A2B"), "t-cu3")
    with pytest.raises(ValueError):
        twice = (PostalInfoChange(type="loc", name="A"), PostalInfoChange(type="loc", name="B"))
        build_contact_update(ContactUpdate(id="RG1A2B", postal_info=twice), "t-cu4")


def test_domain_update_in_schema_order(validator: FrameValidator) -> None:
    cmd = DomainUpdate(
        name="exempel.se",
        add_ns=("ns3.example.net",),
        rem_ns=("ns1.example.net",),
        add_contacts=(("tech", "NEW1"),),
        rem_contacts=(("tech", "OLD1"),),
        add_status=("clientHold", "clientTransferProhibited"),
        rem_status=("clientUpdateProhibited",),
        registrant="NEW1",
        auth_pw="n3w-Pw",
    )
    root = _valid(validator, build_domain_update(cmd, "t-du1"))
    assert _names(root.find(".//domain:update", NSMAP)) == ["name", "add", "rem", "chg"]
    assert _names(root.find(".//domain:add", NSMAP)) == ["ns", "contact", "status", "status"]
    assert _names(root.find(".//domain:chg", NSMAP)) == ["registrant", "authInfo"]
    assert DomainUpdate(name="exempel.se").is_empty() and not cmd.is_empty()
    with pytest.raises(ValueError):
        build_domain_update(DomainUpdate(name="exempel.se"), "t-du2")
    _valid(validator, build_domain_update(DomainUpdate(name="exempel.se", registrant="NEW1"), "t-du3"))


def test_delete_renew_transfer_poll_frames(validator: FrameValidator) -> None:
    _valid(validator, build_contact_delete(ContactDelete("RG1A2B"), "t-d1"))
    _valid(validator, build_domain_delete(DomainDelete("exempel.se"), "t-d2"))
    renew = _valid(validator, build_domain_renew(DomainRenew("exempel.se", dt.date(2027, 3, 1), 2), "t-r1"))
    assert renew.findtext(".//domain:curExpDate", namespaces=NSMAP) == "2027-03-01"
    ops: tuple[TransferOp, ...] = ("request", "query", "approve", "reject", "cancel")
    for op in ops:
        frame = build_domain_transfer(DomainTransfer("exempel.se", op, auth_pw="d0main-Pw"), f"t-tr-{op}")
        root = _valid(validator, frame)
        assert root.find(".//epp:transfer", NSMAP).get("op") == op  # type: ignore[union-attr]
    _valid(validator, build_domain_transfer(DomainTransfer("exempel.se", "request", "pw-pw-pw", 1), "t-tr"))
    with pytest.raises(ValueError):
        build_domain_transfer(DomainTransfer("exempel.se", "approve", period_years=1), "t-tr2")
    req = _valid(validator, build_poll(PollRequest(), "t-p1"))
    assert req.find(".//epp:poll", NSMAP).attrib == {"op": "req"}  # type: ignore[union-attr]
    ack = _valid(validator, build_poll(PollAck("12345"), "t-p2"))
    assert ack.find(".//epp:poll", NSMAP).attrib == {"op": "ack", "msgID": "12345"}  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        build_poll(PollAck(" "), "t-p3")


def _response(body: str, code: int = 1000) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><response>
  <result code="{code}"><msg>ok</msg></result>{body}
  <trID><clTRID>ABC-1</clTRID><svTRID>SV-1</svTRID></trID>
</response></epp>""".encode()


_TRN = """<domain:trnData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
  <domain:name>example.com</domain:name><domain:trStatus>pending</domain:trStatus>
  <domain:reID>ClientX</domain:reID><domain:reDate>2000-06-06T22:00:00.0Z</domain:reDate>
  <domain:acID>ClientY</domain:acID><domain:acDate>2000-06-11T22:00:00.0Z</domain:acDate>
  <domain:exDate>2002-09-08T22:00:00.0Z</domain:exDate></domain:trnData>"""


def test_parse_renew_transfer_and_poll_responses(validator: FrameValidator) -> None:
    renew = _response("""<resData><domain:renData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
      <domain:name>example.com</domain:name><domain:exDate>2005-04-03T22:00:00.0Z</domain:exDate>
      </domain:renData></resData>""")
    assert validator.errors(renew) == []
    parsed = parse_response(renew)
    assert (parsed.renewed_name, xs_date(parsed.expiry_date)) == ("example.com", dt.date(2005, 4, 3))

    transfer = _response(f"<resData>{_TRN}</resData>", code=1001)
    assert validator.errors(transfer) == []
    parsed = parse_response(transfer)
    assert parsed.result.pending and parsed.transfer is not None
    assert (parsed.transfer.tr_status, parsed.transfer.re_id) == ("pending", "ClientX")
    assert parsed.transfer.ac_id == "ClientY"

    poll = _response(
        f"""<msgQ count="5" id="12345"><qDate>2000-06-08T22:00:00.0Z</qDate>
        <msg>Transfer requested.</msg></msgQ><resData>{_TRN}</resData>""",
        code=1301,
    )
    assert validator.errors(poll) == []
    parsed = parse_response(poll)
    assert (parsed.msg_count, parsed.msg_id) == (5, "12345")
    assert parsed.message is not None and parsed.message.text == "Transfer requested."
    assert parsed.message.transfer is not None and parsed.message.transfer.name == "example.com"

    ack = parse_response(_response('<msgQ count="4" id="12345"/>'))
    assert (ack.msg_count, ack.msg_id, ack.message) == (4, "12345", None)
    empty = parse_response(_response("", code=1300))
    assert (empty.msg_count, empty.message) == (None, None)


def test_xs_date_tolerates_what_registries_send() -> None:
    assert xs_date("2027-03-01T10:00:00.0Z") == dt.date(2027, 3, 1)
    assert xs_date("2027-03-01") == dt.date(2027, 3, 1)
    assert xs_date(None) is None and xs_date("garbage") is None
