"""Data-subject requests beyond ``RequestStore``: who a request is assigned to (schema 8's
``requests.assignee``), written for both stores.

Assigning writes the column and the request event that records it in one transaction, with the previous
assignee read inside it, so the event log never says "from A" when B was assigned in between.  The SQL is
written once with ``?`` placeholders; the PostgreSQL mixin renumbers it (``gateway.store.accounts.dollar``).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

#: The assignee of one request (no row: no such request).
SELECT_ASSIGNEE = "SELECT assignee FROM requests WHERE id=?"
SET_ASSIGNEE = "UPDATE requests SET assignee=? WHERE id=?"
INSERT_EVENT = "INSERT INTO request_events(request_id, at, actor, action, detail_json) VALUES (?,?,?,?,?)"


class RequestExtraStore(Protocol):
    """What the rights service needs beyond ``RequestStore`` for assigning requests."""

    async def assign_request(self, request_id: str, assignee: str | None, *, at: str, actor: str) -> bool:
        """Set (``None``: clear) the request's assignee and add its ``assigned`` event, in one transaction.
        False (nothing written) if there is no such request."""
        ...


def assigned_event(request_id: str, at: str, actor: str, assignee: str | None, previous: str | None) -> tuple[Any, ...]:
    """The ``assigned`` event's row for ``INSERT_EVENT``: account names only, never personal data."""
    detail = {"assignee": assignee, "previous": previous}
    return (request_id, at, actor, "assigned", json.dumps(detail, sort_keys=True))
