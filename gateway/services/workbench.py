"""Who a disclosure was about, as the workbench shows it: the name, decrypted for the privacy role and
recorded as a read, or a stable pseudonym for everyone else.

The name is never stored in the clear: it is one of the values an entry sent, sealed under the
subject's data key.  So a name is read from the entries of that subject that carried values (the page's own
rows first, then at most ``SCAN_LIMIT`` more), and every name shown is one ``subject.name_read`` line in the access
log, ids only, so "who read what" lists it like any other decryption.

The pseudonym ("Subject 3f9a0c12") is an HMAC of the subject id under a key derived from the gateway's
secret: the same person always gets the same label, so an auditor can follow one person through the log
without learning who it is, and the label cannot be turned back into the id without the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import SubjectErased
from gateway.ledger.entry import DisclosureEntry
from gateway.services.ledger import Ledger
from gateway.store.base import DisclosureFilter, Store

#: The entries of one subject decrypted, at most, to find one that carried the name.
SCAN_LIMIT = 20
#: The value key of the registrant's name in an entry's sealed values (``config/fields.yaml``).
NAME_FIELD = "name"


def label_key(secret: bytes) -> bytes:
    """The pseudonym key: HMAC(secret, "subject-label"), never the secret itself."""
    return hmac.new(secret, b"subject-label", hashlib.sha256).digest()


def pseudonym(key: bytes, subject_id: str) -> str:
    """A stable short code for ``subject_id`` (8 hex digits of its HMAC)."""
    return hmac.new(key, subject_id.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True)
class SubjectName:
    """What the workbench knows of one subject's name: ``name`` None when none could be read
    (``erased``: the data key is gone; otherwise no entry carried the name)."""

    subject_id: str
    code: str
    name: str | None = None
    erased: bool = False


def _name_of(values: Any) -> str | None:
    if isinstance(values, dict):
        v = values.get(NAME_FIELD)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


async def read_names(
    store: Store, ledger: Ledger, secret: bytes, subject_ids: Iterable[str], *, actor: str, where: str,
    seen: Sequence[DisclosureEntry] = (),
) -> dict[str, SubjectName]:
    """Decrypt the name of each subject in ``subject_ids`` and record each read (``where`` says which page
    or export read it).  ``seen`` are entries already at hand (a page's rows), tried first."""
    key = label_key(secret)
    out: dict[str, SubjectName] = {}
    read: list[str] = []
    by_subject: dict[str, list[DisclosureEntry]] = {}
    for e in seen:
        if e.subject_id and e.values_ct is not None:
            by_subject.setdefault(e.subject_id, []).append(e)
    for sid in dict.fromkeys(subject_ids):
        name: str | None = None
        erased = False
        try:
            for e in by_subject.get(sid, []):
                name = _name_of(await ledger.entry_values(e))
                if name:
                    break
            if name is None:
                checked = 0
                async for e in store.iter_disclosures(DisclosureFilter(subject_id=sid), page=SCAN_LIMIT):
                    if checked >= SCAN_LIMIT:
                        break
                    if e.values_ct is None:
                        continue
                    checked += 1
                    name = _name_of(await ledger.entry_values(e))
                    if name:
                        break
        except SubjectErased:
            erased = True
        if name is not None:
            read.append(sid)
        out[sid] = SubjectName(sid, pseudonym(key, sid), name, erased)
    # every read recorded before any name is shown; recorded together, so a page of names costs one
    # commit of the store's group writer instead of one commit a name
    await asyncio.gather(*(ledger.record_access(actor, "subject.name_read", where, sid) for sid in read))
    return out


def labels(secret: bytes, subject_ids: Iterable[str]) -> dict[str, SubjectName]:
    """The pseudonyms only (no decryption, nothing to record)."""
    key = label_key(secret)
    return {sid: SubjectName(sid, pseudonym(key, sid)) for sid in dict.fromkeys(subject_ids)}

