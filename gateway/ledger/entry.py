"""The exact bytes a disclosure entry contributes to the Merkle tree.

Every stored column of a disclosure row is in the leaf; the encrypted values enter as the SHA-256
of their ciphertext.  The tree then proves the metadata and the ciphertext, still verifies after
the subject's data key is destroyed (crypto-shredding), and still verifies after a retention purge
deletes the ciphertext itself (kept apart, in ``entry_values``).  The encoding is canonical JSON
(sorted keys, no spaces, UTF-8), so both stores and the offline verifier derive the same bytes from
the same row.
"""

from __future__ import annotations

import base64
import json
from typing import Any

#: Columns in the leaf, in the store's naming; order does not matter (keys are sorted).
LEAF_COLUMNS: tuple[str, ...] = (
    "leaf_index", "id", "registration_id", "subject_id", "recipient", "recipient_name", "recipient_country",
    "category", "article", "instrument", "purpose", "outcome", "retryable", "fields_json", "withheld_json",
    "payload_digest", "result_code", "sv_trid", "cl_trid", "objects_json", "reason", "attempted_at",
    "recorded_at", "values_digest",
)

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
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
