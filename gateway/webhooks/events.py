"""Webhook events: their types, the body sent for each, and which registration status change is which.

The body names the registration by the gateway's id and the client's own ``order_ref``, with its status
and a result code: nothing about the holder (no name, address, contact data, domain name or subject id),
so a notification leaving the gateway is never a disclosure of personal data.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final, Literal

EventType = Literal[
    "registration.delivered", "registration.failed", "registration.blocked", "registration.changed"
]
#: Every event type, in the order documented.
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    "registration.delivered",  # every required recipient (the registry) has it
    "registration.failed",  # a required delivery failed for good (parked: permanent error, or retries used up)
    "registration.blocked",  # refused: a transfer blocked at acceptance, or a restriction at send time
    "registration.changed",  # a registrant change or rectification was queued for past recipients
)
#: The body's top-level and ``data`` keys: nothing else is ever sent (tests hold the gateway to it).
BODY_KEYS: Final = frozenset({"id", "type", "timestamp", "data"})
DATA_KEYS: Final = frozenset({"registration_id", "order_ref", "status", "code"})
#: Webhook delivery states (``webhook_events.state``).
EVENT_STATES: Final = ("pending", "delivered", "failed")


def new_event_id() -> str:
    """A fresh event id, the receiver's de-duplication key (``webhook-id``): the same on every retry."""
    return f"evt_{uuid.uuid4().hex}"


def event_body(
    event_id: str, type_: EventType, *, registration_id: str, order_ref: str, status: str, code: str | None,
    timestamp: str,
) -> str:
    """The JSON body of one event, compact and with sorted keys, exactly as stored and signed."""
    body: dict[str, Any] = {
        "id": event_id,
        "type": type_,
        "timestamp": timestamp,
        "data": {"registration_id": registration_id, "order_ref": order_ref, "status": status, "code": code},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def status_event(old: str | None, new: str, *, refused: bool) -> EventType | None:
    """The event a registration's status change from ``old`` to ``new`` is, if any.

    Only final states are announced (``delivering`` is not); ``refused`` is set when the attempt that
    ended the registration was a refusal (a restriction at send time), which makes a ``failed``
    registration a ``registration.blocked`` event."""
    if new == old:
        return None
    if new == "delivered":
        return "registration.delivered"
    if new == "failed":
        return "registration.blocked" if refused else "registration.failed"
    if new == "blocked":
        return "registration.blocked"
    return None


def parse_events(events_json: str) -> tuple[str, ...]:
    """A subscription's event types as stored."""
    value = json.loads(events_json)
    return tuple(str(v) for v in value)
