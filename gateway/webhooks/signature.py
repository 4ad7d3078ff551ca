"""The Standard Webhooks signature (https://www.standardwebhooks.com): headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds at sending) and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``, keyed with the secret's bytes (``whsec_`` + base64 of 32 random bytes).

A receiver verifies with its copy of the secret, refuses timestamps far from its clock (replay), and
de-duplicates on ``webhook-id``, which stays the same on every retry of one event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, shown to the client once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a webhook secret")
    key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    if len(key) < 24:
        raise ValueError("webhook secret too short")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one attempt (signed anew each time: the timestamp is the sending time)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True if any ``v1`` signature in the header (space-separated) matches."""
    want = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(want, s) for s in signature_header.split() if s.startswith("v1,"))
