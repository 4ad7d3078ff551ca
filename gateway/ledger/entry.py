"""A disclosure entry, the ledger's leaf, and the exact bytes it contributes to the Merkle tree.

Every stored column of a disclosure row is in the leaf; the encrypted values enter as the SHA-256
of their ciphertext.  The tree then proves the metadata and the ciphertext, still verifies after
the subject's data key is destroyed (crypto-shredding), and still verifies after a retention purge
deletes the ciphertext itself (kept apart, in ``entry_values``).  The encoding is canonical JSON
(sorted keys, no spaces, UTF-8), so both stores and the offline verifier derive the same bytes from
the same row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

#: Columns in the leaf, in the store's naming; order does not matter (keys are sorted).
LEAF_COLUMNS: tuple[str, ...] = (
    "leaf_index", "id", "registration_id", "subject_id", "recipient", "recipient_name", "recipient_country",
    "category", "article", "instrument", "purpose", "outcome", "retryable", "fields_json", "withheld_json",
    "payload_digest", "result_code", "sv_trid", "cl_trid", "objects_json", "reason", "attempted_at",
    "recorded_at", "values_digest",
)

#: Columns added later (schema 5): in the leaf only when set, so every leaf written before they existed
#: (where they are NULL) keeps exactly the bytes, and the hash, it was appended with.
#: ``command``: the protocol command that carried the data (``contact:create``, ``domain:create``, an
#: HTTP call, a deposit): the log's unit is the command, grouped by ``registration_id`` for display.
OPTIONAL_LEAF_COLUMNS: tuple[str, ...] = ("command",)
#: Every stored column of a disclosure row (the leaf's and the optional ones).
STORED_COLUMNS: tuple[str, ...] = (*LEAF_COLUMNS, *OPTIONAL_LEAF_COLUMNS)

LEAF_VERSION = 1


def _norm(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, bool):
        return int(value)
    return value


def leaf_bytes(row: dict[str, Any]) -> bytes:
    """Canonical leaf encoding of one disclosure row (a mapping with every ``LEAF_COLUMNS`` key)."""
    doc = {"v": LEAF_VERSION, **{c: _norm(row[c]) for c in LEAF_COLUMNS}}
    doc.update({c: _norm(row[c]) for c in OPTIONAL_LEAF_COLUMNS if row.get(c) is not None})
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _picker(columns: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
    """Sorted keys for a leaf of ``columns``, and a getter taking their values, in that order, from
    ``(LEAF_VERSION, *stored values)``: the dict is then built already sorted."""
    keys = tuple(sorted(("v", *columns)))
    return keys, operator.itemgetter(*(0 if k == "v" else 1 + STORED_COLUMNS.index(k) for k in keys))


_PLAIN: frozenset[type] = frozenset({str, int, type(None)})
_KEYS, _PICK = _picker(LEAF_COLUMNS)
_KEYS_CMD, _PICK_CMD = _picker(STORED_COLUMNS)


def stored_leaf_bytes(values: Sequence[Any]) -> bytes:
    """:func:`leaf_bytes` of a stored row given as its values in ``STORED_COLUMNS`` order, fast.

    The verifier calls this once per leaf, so it skips the per-column ``_norm`` and the sort: when every
    value is text, an integer or NULL (what the stores hold in every leaf column) orjson writes the
    same bytes as ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``; anything
    else (a blob, a bool, a float, an integer beyond 64 bits, text orjson refuses) takes
    :func:`leaf_bytes` itself, so the result is always identical to it."""
    if len(values) == len(STORED_COLUMNS) and set(map(type, values)) <= _PLAIN:
        with_cmd = values[-1] is not None
        keys, pick = (_KEYS_CMD, _PICK_CMD) if with_cmd else (_KEYS, _PICK)
        try:
            return orjson.dumps(dict(zip(keys, pick((LEAF_VERSION, *values)), strict=True)))
        except orjson.JSONEncodeError:
            pass
    return leaf_bytes(dict(zip(STORED_COLUMNS, values, strict=True)))


class EntryUnreadable(ValueError):
    """A stored disclosure row that cannot be decoded into an entry.

    Carries where it is (leaf index and entry id, when those columns are still readable) and which
    column failed, never the column's content: a broken row may hold personal data in the clear."""

    def __init__(self, leaf_index: int | None, entry_id: str | None, column: str) -> None:
        self.leaf_index = leaf_index
        self.entry_id = entry_id
        self.column = column
        super().__init__(f"disclosure row (leaf {leaf_index}, entry {entry_id}): column {column} cannot be decoded")


def _safe(r: Any, column: str, kind: type) -> Any:
    """A column's value if it is there and of ``kind``, else None: for naming a broken row."""
    try:
        value = r[column]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _optional(r: Any, column: str) -> Any:
    """A column added after schema 1, None where the row (an older export, a test double) lacks it."""
    try:
        return r[column]
    except (KeyError, IndexError):
        return None


def _blob(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("not a blob")
    return bytes(value)


def _str_list(text: Any) -> tuple[str, ...]:
    """A JSON array (of field names); its items' types are left to the leaf hash to vouch for."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise TypeError("not a JSON array")
    return tuple(items)


def _str_map(text: Any) -> dict[str, str]:
    """A JSON object (of registry object ids)."""
    items = json.loads(text)
    if not isinstance(items, dict):
        raise TypeError("not a JSON object")
    return items


@dataclass(frozen=True)
class DisclosureEntry:
    id: str
    registration_id: str
    recipient: str
    recipient_name: str
    recipient_country: str
    category: str
    article: str | None
    instrument: str | None
    purpose: str
    #: delivered | refused (the recipient answered no) | possibly_delivered (the frame was written, no answer
    #: came: the recipient may hold it) | failed (nothing left the gateway) | blocked (we refused to send) |
    #: deleted (a ``contact:delete`` the recipient accepted: it no longer holds that object)
    outcome: str
    fields: tuple[str, ...]
    withheld: tuple[str, ...]
    objects: dict[str, str]
    attempted_at: str
    recorded_at: str
    retryable: bool = False
    payload_digest: str | None = None
    result_code: str | None = None
    sv_trid: str | None = None
    cl_trid: str | None = None
    reason: str | None = None
    subject_id: str | None = None
    values_ct: bytes | None = None  # AES-GCM under the subject's data key; None when nothing was sent
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    stored_values_digest: str | None = None  # as read back; differs from values_digest once purged
    command: str | None = None  # the command that carried it (schema 5); None for entries from before

    @property
    def values_purged(self) -> bool:
        return self.stored_values_digest is not None and self.values_ct is None

    @property
    def values_digest(self) -> str | None:
        return None if self.values_ct is None else "sha256:" + hashlib.sha256(self.values_ct).hexdigest()

    def row(self, leaf_index: int) -> dict[str, Any]:
        """The stored columns (the leaf's content) for this entry at ``leaf_index``.

        An entry read back after a purge has no ciphertext; its leaf keeps the stored digest."""
        return {
            "leaf_index": leaf_index, "id": self.id, "registration_id": self.registration_id,
            "subject_id": self.subject_id, "recipient": self.recipient, "recipient_name": self.recipient_name,
            "recipient_country": self.recipient_country, "category": self.category, "article": self.article,
            "instrument": self.instrument, "purpose": self.purpose, "outcome": self.outcome,
            "retryable": int(self.retryable), "fields_json": json.dumps(list(self.fields)),
            "withheld_json": json.dumps(list(self.withheld)), "payload_digest": self.payload_digest,
            "result_code": self.result_code, "sv_trid": self.sv_trid, "cl_trid": self.cl_trid,
            "objects_json": json.dumps(self.objects, sort_keys=True), "reason": self.reason,
            "attempted_at": self.attempted_at, "recorded_at": self.recorded_at,
            # read back: the stored digest (the verifier checks the ciphertext against it separately)
            "values_digest": self.stored_values_digest if self.leaf_hash is not None else self.values_digest,
            "command": self.command,
        }

    def stored_row(self, leaf_index: int) -> tuple[Any, ...]:
        """:meth:`row`'s values in ``STORED_COLUMNS`` order, without the dict: what an append stores and
        hashes (``stored_leaf_bytes``), built once per entry on the append path."""
        digest = self.stored_values_digest if self.leaf_hash is not None else self.values_digest
        return (
            leaf_index, self.id, self.registration_id, self.subject_id, self.recipient, self.recipient_name,
            self.recipient_country, self.category, self.article, self.instrument, self.purpose, self.outcome,
            int(self.retryable), json.dumps(list(self.fields)), json.dumps(list(self.withheld)),
            self.payload_digest, self.result_code, self.sv_trid, self.cl_trid,
            json.dumps(self.objects, sort_keys=True), self.reason, self.attempted_at, self.recorded_at, digest,
            self.command,
        )

    @classmethod
    def from_row(cls, r: Any) -> DisclosureEntry:
        """From a stored row joined with ``entry_values``; ``values_purged`` when the digest has no
        ciphertext any more (retention purge).

        A row that does not decode (broken JSON, a column of the wrong type) raises
        :class:`EntryUnreadable` naming the row and the column, so the verifier can point at the entry
        instead of failing somewhere in a batch."""
        column = "id"
        try:
            column = "values_ct"
            values = _blob(r["values_ct"])
            column = "leaf_hash"
            stored_leaf_hash = _blob(r["leaf_hash"])
            column = "fields_json"
            fields = _str_list(r["fields_json"])
            column = "withheld_json"
            withheld = _str_list(r["withheld_json"])
            column = "objects_json"
            objects = _str_map(r["objects_json"])
            column = "leaf_index"
            index = r["leaf_index"]
            if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
                raise TypeError("leaf_index is not an integer")
            column = "id"
            entry_id = r["id"]
            if not isinstance(entry_id, str):
                raise TypeError("id is not text")
            column = "row"
            return cls(
                id=entry_id, registration_id=r["registration_id"], recipient=r["recipient"],
                recipient_name=r["recipient_name"], recipient_country=r["recipient_country"],
                category=r["category"], article=r["article"], instrument=r["instrument"], purpose=r["purpose"],
                outcome=r["outcome"], retryable=bool(r["retryable"]), fields=fields, withheld=withheld,
                payload_digest=r["payload_digest"], result_code=r["result_code"], sv_trid=r["sv_trid"],
                cl_trid=r["cl_trid"], objects=objects, reason=r["reason"], attempted_at=r["attempted_at"],
                recorded_at=r["recorded_at"], subject_id=r["subject_id"], values_ct=values, leaf_index=index,
                leaf_hash=stored_leaf_hash, stored_values_digest=r["values_digest"], command=_optional(r, "command"),
            )
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise EntryUnreadable(_safe(r, "leaf_index", int), _safe(r, "id", str), column) from exc

    def as_dict(self) -> dict[str, Any]:
        """Metadata view: never the encrypted values (see the ledger for decryption)."""
        return {
            "id": self.id, "seq": self.leaf_index, "registration_id": self.registration_id,
            "subject_id": self.subject_id, "recipient": self.recipient, "recipient_name": self.recipient_name,
            "recipient_country": self.recipient_country,
            "transfer": {"category": self.category, "article": self.article, "instrument": self.instrument},
            "purpose": self.purpose, "outcome": self.outcome, "retryable": self.retryable,
            "fields": list(self.fields), "withheld": list(self.withheld), "payload_digest": self.payload_digest,
            "result_code": self.result_code, "sv_trid": self.sv_trid, "cl_trid": self.cl_trid,
            "objects": self.objects, "reason": self.reason, "attempted_at": self.attempted_at,
            "recorded_at": self.recorded_at, "values_purged": self.values_purged, "command": self.command,
            "leaf_hash": self.leaf_hash.hex() if self.leaf_hash else None,
        }
