"""A queued escrow record becomes the deposit's record: RFC 5733 contact keys, released values only,
and a change (which carries no name servers or expiry) keeps those of the record before it."""

from __future__ import annotations

from adapters.escrow import EscrowRecord
from gateway.outbox.escrow import deposit_record
from gateway.outbox.payloads import DomainRecord

VALUES = {"name": "Anna Andersson", "street": ["Storgatan 1"], "city": "Stockholm", "postal_code": "111 22",
          "country": "SE", "email": "anna@example.se", "phone": "+4681234", "language": "sv"}


def test_values_map_to_contact_keys_and_unknown_fields_stay_out() -> None:
    record = DomainRecord(domain="a.com", tld="com", data=VALUES, nameservers=("ns1.example.net",),
                          expires="2026-01-01")
    out = deposit_record(record, VALUES, "s1", None)
    contact = {"name": "Anna Andersson", "street": ["Storgatan 1"], "city": "Stockholm", "pc": "111 22",
               "cc": "SE", "email": "anna@example.se", "voice": "+4681234"}
    assert out == EscrowRecord(domain="a.com", tld="com", subject_id="s1",
                               contacts={"registrant": contact, "admin": contact},
                               nameservers=("ns1.example.net",), expires="2026-01-01")


def test_a_change_keeps_the_name_servers_and_expiry_already_held() -> None:
    before = deposit_record(DomainRecord(domain="a.com", tld="com", data=VALUES, nameservers=("ns1.example.net",),
                                         expires="2026-01-01"), VALUES, "s1", None)
    after = deposit_record(DomainRecord(domain="a.com", tld="com", data={"email": "new@example.se"}),
                           {"email": "new@example.se"}, "s1", before)
    assert (after.nameservers, after.expires) == (("ns1.example.net",), "2026-01-01")
    assert after.contacts["registrant"] == {"email": "new@example.se"}
    assert deposit_record(DomainRecord(domain="b.com", tld="com", data={}), {}, "s1", None).nameservers == ()
