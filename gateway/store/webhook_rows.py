"""Webhook rows shared by both stores: which subscriptions get an event, the rows written for it, and how
rows read back.  Placeholders are the caller's (``?`` or ``$n``); the values are the same in both."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gateway.store.base import NewWebhook, WebhookDelivery
from gateway.webhooks.events import EVENT_STATES, EventType, event_body, new_event_id, parse_events

#: Insert of one notification row, in column order of ``event_rows``.
EVENT_COLUMNS = ("event_id, webhook_id, registration_id, type, body_json, state, attempts, next_attempt_at, "
                 "created_at, updated_at")
#: The live subscriptions of one client ($1 / ?: the client).
HOOKS_OF_CLIENT = "SELECT id, events_json FROM webhooks WHERE client={} AND deleted_at IS NULL ORDER BY id"
#: A registration's client, order reference and status ({}: the registration id).
REGISTRATION = "SELECT client, order_ref, status FROM registrations WHERE id={}"


def webhook_values(hook: NewWebhook, now: str) -> tuple[Any, ...]:
    return (hook.id, hook.client, hook.url, json.dumps(list(hook.events)), hook.secret, now)


def event_rows(
    hooks: Iterable[Any], type_: EventType, *, registration_id: str, order_ref: str, status: str,
    code: str | None, now: str,
) -> list[tuple[Any, ...]]:
    """One row per subscription that wants ``type_``; one event id for all of them (the same event)."""
    wanted = [h["id"] for h in hooks if type_ in parse_events(h["events_json"])]
    if not wanted:
        return []
    event_id = new_event_id()
    body = event_body(event_id, type_, registration_id=registration_id, order_ref=order_ref, status=status,
                      code=code, timestamp=now)
    return [(event_id, hid, registration_id, type_, body, "pending", 0, now, now, now) for hid in wanted]


def hook_view(row: Any, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row["id"], "url": row["url"], "events": list(parse_events(row["events_json"])),
        "created_at": row["created_at"], "deliveries": {s: int(counts.get(s, 0)) for s in EVENT_STATES},
    }


def event_view(row: Any) -> dict[str, Any]:
    return {
        "event_id": row["event_id"], "type": row["type"], "registration_id": row["registration_id"],
        "state": row["state"], "attempts": int(row["attempts"]), "last_status": row["last_status"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def delivery(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=int(row["id"]), event_id=row["event_id"], webhook_id=row["webhook_id"], url=row["url"],
        secret=row["secret"], body=row["body_json"], attempts=int(row["attempts"]), created_at=row["created_at"],
    )


def check_result_state(state: str) -> None:
    if state not in EVENT_STATES:
        raise ValueError("bad webhook event state")
