"""Parked outbox rows as staff see them, and the record of what staff did with them: written once for both
stores (placeholders are the caller's).

A row is parked (``state='needs_attention'``, schema 5) when its recipient refused it for good or its
transient failures outlasted the recipient's deadline; it waits for staff to retry or cancel it.  What
staff see of it is operational metadata only (ids, recipient, purpose, attempts, the last result code and
the parked reason, which the worker writes without personal data): never the payload or the subject.

Each retry or cancel is written to the append-only ``access_log`` in the transaction of the state change
(action ``outbox.retry`` or ``outbox.cancel``, the staff principal as actor, the row id as object): the
log that already holds staff actions on personal data, so no new table (and no migration) is needed, and
a staff action can no more be edited away than a read of decrypted values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

#: What a parked row shows, in ``SELECT`` order.
PARKED_COLUMNS: Final = ("id", "registration_id", "recipient", "purpose", "change_id", "attempts", "last_code",
                         "parked_reason", "updated_at")
#: Every parked row ({}: an extra condition, e.g. a recipient), per recipient, oldest first.
SELECT_PARKED: Final = (f"SELECT {', '.join(PARKED_COLUMNS)} FROM outbox "  # noqa: S608 - fixed names only
                        "WHERE state='needs_attention'{} ORDER BY recipient, updated_at, id")

StaffAction = Literal["retry", "cancel"]
#: The access log's action for each staff action on a parked row.
ACTION_NAMES: Final[dict[StaffAction, str]] = {"retry": "outbox.retry", "cancel": "outbox.cancel"}
_ACTIONS_BY_NAME: Final = {name: action for action, name in ACTION_NAMES.items()}
#: The access log's staff actions on parked rows, newest first ({}: the placeholder of the limit).
SELECT_ACTIONS: Final = ("SELECT id, at, actor, action, object_id FROM access_log "  # noqa: S608 - fixed names
                         f"WHERE action IN ('{ACTION_NAMES['retry']}', '{ACTION_NAMES['cancel']}') "
                         "ORDER BY id DESC LIMIT {}")


def parked_view(row: Any) -> dict[str, Any]:
    """One parked row as the API, the page and the CLI show it."""
    out = {c: row[c] for c in PARKED_COLUMNS}
    out["id"] = int(out["id"])
    out["attempts"] = int(out["attempts"])
    return out


def action_views(rows: Iterable[Any], outbox: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Access-log rows of staff actions, each with the outbox row it acted on (``outbox``: by id, with its
    recipient and registration id; a row id that is not there shows None for both)."""
    out = []
    for r in rows:
        row_id = int(r["object_id"])
        target = outbox.get(row_id) or {}
        out.append({"at": r["at"], "actor": r["actor"], "action": _ACTIONS_BY_NAME[r["action"]], "row_id": row_id,
                    "recipient": target.get("recipient"), "registration_id": target.get("registration_id")})
    return out
