"""Staff actions on parked deliveries: the one place that retries or cancels a parked outbox row, for the
API, the staff pages and the CLI alike.

A row is parked (``needs_attention``) when its recipient refused it for good or its transient failures
outlasted the recipient's deadline; the delivery worker leaves it alone until staff decide.  A retry puts
it back in the queue, due at once, with a fresh deadline for its next transient failure; a cancel gives
up on it for good.  Either is written with the actor in the access log, in the transaction of the state
change (``gateway.store.parked_rows``), so the record cannot be missing for a change that happened.
"""

from __future__ import annotations

from typing import Literal

import structlog

from gateway.errors import NotParked
from gateway.store.base import OutboxStore

log = structlog.get_logger("gateway.parked")

ParkedAction = Literal["retry", "cancel"]
PARKED_ACTIONS: tuple[ParkedAction, ...] = ("retry", "cancel")


async def act_on_parked(store: OutboxStore, row_id: int, action: ParkedAction, *, actor: str, now: str) -> None:
    """Retry or cancel parked row ``row_id`` as ``actor``.

    Raises ``OutboxRowNotFound`` for an unknown id and ``NotParked`` for a row that is not parked (still
    the worker's, or already delivered or cancelled), with nothing written.  The log line names the row
    and the action only: the actor is in the access log, which is where staff actions are accounted for."""
    if action == "retry":
        done = await store.retry_parked(row_id, now, actor=actor)
    else:
        done = await store.cancel_parked(row_id, now, actor=actor)
    if not done:
        raise NotParked()
    log.info("outbox.parked_" + ("retried" if action == "retry" else "cancelled"), row_id=row_id)
