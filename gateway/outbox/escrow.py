"""How a queued ``DomainRecord`` becomes a record of the escrow deposit (RFC 5733 contact names).

Pure, so the escrow job in ``gateway.delivery`` is left with claiming, sending and recording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.escrow import EscrowRecord
from gateway.outbox.payloads import DomainRecord

#: Registrant fields → the escrow record's contact keys (RFC 5733 names, as the deposit uses).
_CONTACT_KEYS = {
    "name": "name", "organisation": "org", "street": "street", "city": "city", "state": "sp",
    "postal_code": "pc", "country": "cc", "phone": "voice", "fax": "fax", "email": "email",
    "national_id": "national_id", "vat_number": "vat_number",
}


def deposit_record(
    record: DomainRecord, values: Mapping[str, Any], subject_id: str, previous: EscrowRecord | None
) -> EscrowRecord:
    """The deposit's record of ``record.domain`` from the released ``values``.

    ``previous`` is the record the same deposit already holds for the domain (a registration and a
    later change queued together): a change carries no name servers or expiry, so those are kept."""
    contact = {_CONTACT_KEYS[k]: v for k, v in values.items() if k in _CONTACT_KEYS}
    return EscrowRecord(
        domain=record.domain, tld=record.tld, subject_id=subject_id,
        # the holder is also the admin contact (policies map admin to the subject); the tech
        # and billing contacts are the registrar's own, which the agent holds already
        contacts={"registrant": contact, "admin": contact},
        nameservers=tuple(record.nameservers or (previous.nameservers if previous else ())),
        expires=record.expires or (previous.expires if previous else None),
    )
