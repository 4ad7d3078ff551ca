"""The Art. 15 extract's disclosure items, and the offline verifier (both pure).

Each item carries the entry's full leaf row, so anyone holding the extract and the published
checkpoint key can recompute the leaf hash (``leaf_bytes``), check the RFC 9162 inclusion proof
against the signed checkpoint's root, and check that what the letter says (recipient, date,
purpose, basis, fields, outcome) is what the log row says.  The decrypted values cannot be checked
offline: the leaf commits to their ciphertext's digest, and the ciphertext stays with us.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from gateway.ledger.checkpoint import SignedCheckpoint, verify_checkpoint
from gateway.ledger.entry import LEAF_COLUMNS, OPTIONAL_LEAF_COLUMNS, DisclosureEntry, leaf_bytes
from gateway.ledger.merkle import leaf_hash, verify_inclusion
from gateway.rights.texts import (
    Lang,
    country_name,
    outcome_text,
    recipient_name,
    safeguard_text,
    transfer_text,
    value_note_text,
)

FORMAT = "registrant-gateway/art15-extract"
FORMAT_VERSION = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def json_safe(value: Any) -> Any:
    """Bytes as ``{"b64": …}`` — the same shape ``leaf_bytes`` gives them, so the leaf hashes alike."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": _b64(bytes(value))}
    return value


def leaf_row(entry: DisclosureEntry) -> dict[str, Any]:
    assert entry.leaf_index is not None
    return {k: json_safe(v) for k, v in entry.row(entry.leaf_index).items()}


def values_note(entry: DisclosureEntry, *, erased: bool) -> str | None:
    if entry.values_purged:
        return "purged"
    if entry.values_ct is None:
        return "none_sent"
    return "erased" if erased else None


def present_entry(
    entry: DisclosureEntry,
    values: dict[str, Any] | None,
    note: str | None,
    proof: list[bytes],
    lang: Lang,
    purpose_text: str,
    lawful_basis: str | None,
    domain: str | None = None,
) -> dict[str, Any]:
    """One disclosure as the data subject sees it, with what lets them check it; ``domain`` is the name
    the disclosure was for (from the registration: the leaf does not carry it, so it is not checked)."""
    assert entry.leaf_hash is not None
    return {
        "id": entry.id,
        "registration_id": entry.registration_id,
        "domain": domain,
        "date": entry.attempted_at,
        "recorded_at": entry.recorded_at,
        "recipient": {
            "id": entry.recipient, "name": entry.recipient_name, "country": entry.recipient_country,
            "country_name": country_name(entry.recipient_country, lang),
            "name_text": recipient_name(entry.recipient_name, lang),
        },
        "purpose": entry.purpose,
        "purpose_text": purpose_text,
        "legal_basis": {
            "processing": lawful_basis,
            "transfer_category": entry.category,
            "article": entry.article,
            "instrument": entry.instrument,
            "safeguard": safeguard_text(entry.category, entry.article, entry.instrument),
            "text": transfer_text(entry.category, entry.article, entry.instrument, lang),
        },
        "fields": list(entry.fields),
        "withheld": list(entry.withheld),
        "values": values,
        "values_note": note,
        "values_note_text": value_note_text(note, lang) if note else None,
        "outcome": entry.outcome,
        "outcome_text": outcome_text(entry.outcome, lang),
        "leaf": leaf_row(entry),
        "leaf_hash": _b64(entry.leaf_hash),
        "proof": [_b64(p) for p in proof],
    }


#: What the letter shows, and the leaf column it must equal.
_SHOWN: tuple[tuple[tuple[str, ...], str], ...] = (
    (("id",), "id"),
    (("registration_id",), "registration_id"),
    (("date",), "attempted_at"),
    (("recorded_at",), "recorded_at"),
    (("recipient", "id"), "recipient"),
    (("recipient", "name"), "recipient_name"),
    (("recipient", "country"), "recipient_country"),
    (("purpose",), "purpose"),
    (("legal_basis", "transfer_category"), "category"),
    (("legal_basis", "article"), "article"),
    (("legal_basis", "instrument"), "instrument"),
    (("outcome",), "outcome"),
)


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(d, Mapping):
            raise KeyError(p)
        d = d[p]
    return d


def _check_item(i: int, item: Any, cp: SignedCheckpoint, subjects: set[str]) -> list[str]:
    where = f"disclosure {i}"
    if not isinstance(item, Mapping):
        return [f"{where}: not an object"]
    leaf = item.get("leaf")
    if not isinstance(leaf, Mapping) or set(leaf) - set(OPTIONAL_LEAF_COLUMNS) != set(LEAF_COLUMNS):
        return [f"{where}: leaf row missing or with missing/extra columns"]
    idx = leaf["leaf_index"]
    if isinstance(idx, bool) or not isinstance(idx, int):
        return [f"{where}: leaf_index is not an integer"]
    problems: list[str] = []
    try:
        lh = leaf_hash(leaf_bytes(dict(leaf)))
    except (TypeError, ValueError):
        return [f"{where}: leaf row cannot be encoded"]
    try:
        proof = [base64.b64decode(p, validate=True) for p in item.get("proof", [])]
    except (binascii.Error, ValueError, TypeError):
        return [f"{where}: proof is not a list of base64 hashes"]
    if not verify_inclusion(lh, idx, cp.checkpoint.size, proof, cp.checkpoint.root):
        problems.append(f"{where} (leaf {idx}): leaf hash and inclusion proof do not match the checkpoint root")
    if item.get("leaf_hash") is not None and item.get("leaf_hash") != _b64(lh):
        problems.append(f"{where} (leaf {idx}): stated leaf_hash differs from the recomputed one")
    for path, column in _SHOWN:
        try:
            shown = _dig(item, path)
        except KeyError:
            problems.append(f"{where}: '{'.'.join(path)}' is missing")
            continue
        if shown != leaf[column]:
            problems.append(f"{where} (leaf {idx}): '{'.'.join(path)}' differs from the log row's {column}")
    for name, column in (("fields", "fields_json"), ("withheld", "withheld_json")):
        try:
            if item.get(name) != json.loads(leaf[column]):
                problems.append(f"{where} (leaf {idx}): '{name}' differs from the log row")
        except (TypeError, ValueError):
            problems.append(f"{where} (leaf {idx}): log row's {column} is not JSON")
    if leaf["subject_id"] not in subjects:
        problems.append(f"{where} (leaf {idx}): the log row belongs to another data subject")
    return problems


def verify_extract(extract: dict[str, Any], public_key_pem: bytes) -> list[str]:
    """Every problem found (empty list = valid): the checkpoint signature, and for each disclosure
    its leaf hash recomputed from the leaf row, its inclusion proof against the checkpoint root,
    that the presented metadata equals the row, and that the row is the extract's subject's."""
    if not isinstance(extract, Mapping):
        return ["the extract is not a JSON object"]
    problems: list[str] = []
    if extract.get("format") != FORMAT or extract.get("format_version") != FORMAT_VERSION:
        problems.append(f"unknown extract format (expected {FORMAT} version {FORMAT_VERSION})")
    try:
        cp = SignedCheckpoint.from_json(extract["checkpoint"])
    except (KeyError, TypeError, ValueError) as exc:
        return [*problems, f"checkpoint: missing or malformed ({type(exc).__name__})"]
    try:
        if not verify_checkpoint(cp, public_key_pem):
            problems.append("checkpoint: signature does not verify with this public key")
    except (ValueError, TypeError):
        return [*problems, "public key: not an Ed25519 public key in PEM form"]
    subjects = {s for s in (extract.get("subject_ids") or [extract.get("subject_id")]) if isinstance(s, str)}
    items = extract.get("disclosures")
    if not isinstance(items, list):
        return [*problems, "disclosures: missing or not a list"]
    seen: set[Any] = set()
    for i, item in enumerate(items):
        problems.extend(_check_item(i, item, cp, subjects))
        key = item.get("id") if isinstance(item, Mapping) else None
        if key in seen:
            problems.append(f"disclosure {i}: listed twice")
        seen.add(key)
    return problems
