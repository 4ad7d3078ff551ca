"""The auditor's side of the rollback check, pure: read a kept checkpoint, judge the gateway's answer.

Whoever kept one signed checkpoint can hold the gateway to it for ever after: the gateway must show,
with an RFC 9162 consistency proof, that the tree the checkpoint names (size and root) is a prefix of
its current, freshly signed head.  It cannot refuse by having lost the checkpoint row (the proof comes
from the tree, not from stored checkpoints), and a rollback or fork cannot produce a proof that
verifies here.  This module only parses and checks; the HTTP call is the caller's (``gateway ledger
audit``), and nothing here trusts the gateway beyond the public key the caller chose.

The checkpoint file is what the API serves for a checkpoint: one item of ``GET /v1/ledger/checkpoints``
(``origin``, ``size``, ``root``, ``timestamp``, ``key_id``, ``signature``), or the ``POST`` answer, which
adds ``note``; or that note alone, the signed text ``gateway ledger checkpoint`` prints.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.ledger.checkpoint import SignedCheckpoint, verify_checkpoint
from gateway.ledger.merkle import HASH_SIZE, verify_consistency

__all__ = ["AuditFailed", "check_extension", "load_checkpoint", "refutation"]


class AuditFailed(Exception):
    """The gateway's answer refutes the kept checkpoint, or does not prove anything.

    ``kind`` is one of ``rollback`` (the gateway's tree is smaller than one it signed), ``fork`` (its
    tree at that size has another root, or its proof does not verify), ``bad_signature`` (a checkpoint
    not signed by the expected key) or ``malformed`` (an answer that is not a proof at all)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def load_checkpoint(text: str) -> SignedCheckpoint:
    """A kept checkpoint in either served form (JSON object, or signed note text); ``ValueError`` otherwise.

    A JSON object that also carries ``note`` (the ``POST /v1/ledger/checkpoints`` answer) must agree with
    it, so a hand-edited field cannot hide behind an intact note."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return SignedCheckpoint.from_text(text)
    try:
        data = json.loads(stripped)
    except ValueError:
        raise ValueError("checkpoint file is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("checkpoint file is not a JSON object")
    note = data.pop("note", None)
    signed = SignedCheckpoint.from_json(data)
    if note is not None and (not isinstance(note, str) or SignedCheckpoint.from_text(note) != signed):
        raise ValueError("the checkpoint's note does not match its fields")
    return signed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hash(value: object) -> bytes:
    if not isinstance(value, str):
        raise AuditFailed("malformed", "a proof hash is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AuditFailed("malformed", "a proof hash is not valid base64") from None
    if len(raw) != HASH_SIZE:
        raise AuditFailed("malformed", f"a proof hash is not {HASH_SIZE} bytes")
    return raw


def check_extension(
    kept: SignedCheckpoint, answer: Mapping[str, Any], public_key: Ed25519PublicKey
) -> SignedCheckpoint:
    """Check the gateway's answer to ``GET /v1/ledger/audit`` for ``kept``; return the new signed head.

    Everything is checked here, nothing taken from the answer on trust: the head's signature under
    ``public_key``, its origin, its size, and the consistency proof from the kept tree to the head.
    Raises :class:`AuditFailed` otherwise."""
    old = kept.checkpoint
    echo = answer.get("from")
    if echo != {"size": old.size, "root": _b64(old.root)}:
        raise AuditFailed("malformed", "the answer is about another tree than the checkpoint's")
    to_json, proof_json = answer.get("to"), answer.get("proof")
    if not isinstance(to_json, Mapping) or not isinstance(proof_json, list):
        raise AuditFailed("malformed", "the answer has no signed head or no proof")
    try:
        head = SignedCheckpoint.from_json(to_json)
    except ValueError as exc:
        raise AuditFailed("malformed", f"the signed head does not parse: {exc}") from None
    if not verify_checkpoint(head, public_key):
        raise AuditFailed("bad_signature", f"the gateway's head (size {head.checkpoint.size}) is not signed by "
                          "the expected key")
    new = head.checkpoint
    if new.origin != old.origin:
        raise AuditFailed("fork", f"the head is for another log ({new.origin!r}, not {old.origin!r})")
    if new.size < old.size:
        raise AuditFailed("rollback", f"the gateway's signed head has {new.size} entries, fewer than the "
                          f"{old.size} of the checkpoint")
    proof = [_hash(p) for p in proof_json]
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise AuditFailed("fork", f"the consistency proof from size {old.size} to {new.size} does not verify: "
                          "the gateway's tree does not contain the checkpoint's")
    return head


def refutation(problem: Mapping[str, Any], kept: SignedCheckpoint) -> AuditFailed:
    """The gateway's own ``ledger_inconsistent`` problem, as the finding it is (``rollback`` or ``fork``)."""
    old = kept.checkpoint
    head_size = problem.get("head_size")
    if problem.get("reason") == "beyond_head":
        return AuditFailed("rollback", f"ROLLBACK: the gateway holds {head_size} entries, fewer than the "
                           f"{old.size} of the checkpoint it signed")
    server_root = problem.get("server_root")
    return AuditFailed("fork", f"FORK: the gateway's tree at size {old.size} has root {server_root}, the "
                       f"checkpoint has {_b64(old.root)} (gateway head size {head_size})")
