"""Read-only figures for ``/metrics`` and ``/readyz``, computed when asked: the outbox by recipient and
state, the oldest undelivered row's age, the ledger's size and its latest checkpoint, the schema version.

The store's roles have no aggregate reads, so this module asks each backend directly, read-only, through
the same query helpers its own reads use; nothing here writes.  Counts, ages and recipient ids only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.store.base import Store


class NotReady(GatewayError, code="not_ready", status=503, title="Not ready to take traffic"):
    """``/readyz``: the store does not answer, its schema is not the one this code writes, or the
    delivery loop of this process died or stalled."""

_OUTBOX = (
    "SELECT o.recipient, o.state, COUNT(*) AS n, "
    "MIN(CASE WHEN o.change_id = '' THEN r.created_at ELSE o.updated_at END) AS oldest "
    "FROM outbox o JOIN registrations r ON r.id = o.registration_id "
    "WHERE o.state IN ('pending', 'in_flight', 'failed') GROUP BY o.recipient, o.state"
)
_CHECKPOINT = "SELECT size, timestamp FROM checkpoints ORDER BY size DESC LIMIT 1"
_SCHEMA = "SELECT COALESCE(MAX(version), 0) FROM schema_version"


@dataclass(frozen=True)
class OutboxFigure:
    recipient: str
    state: str
    rows: int
    oldest: str | None  # ISO time the oldest of them was queued


@dataclass(frozen=True)
class Figures:
    outbox: list[OutboxFigure]
    ledger_size: int
    checkpoint_size: int | None
    checkpoint_at: str | None


async def _rows(store: Store, sql: str) -> list[Any]:
    """``sql`` on either backend (no parameters)."""
    fetch = getattr(store, "_fetch", None)
    if fetch is not None:  # PostgresStore
        return list(await fetch(sql))
    backend: Any = store  # SqliteStore
    return list(await backend._run(lambda: backend._read(sql)))


def latest_schema(store: Store) -> int:
    """The newest schema version this code knows for the store's backend."""
    if hasattr(store, "_fetch"):
        from gateway.store.postgres.migrations import MIGRATIONS as PG

        return PG[-1][0]
    from gateway.store.sqlite.migrations import MIGRATIONS as LITE

    return LITE[-1][0]


async def schema_in_database(store: Store) -> int:
    return int((await _rows(store, _SCHEMA))[0][0])


async def figures(store: Store) -> Figures:
    outbox = [OutboxFigure(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in await _rows(store, _OUTBOX)]
    head = await store.head()
    cps = await _rows(store, _CHECKPOINT)
    return Figures(outbox, head.size, int(cps[0][0]) if cps else None, str(cps[0][1]) if cps else None)


def age_s(iso_time: str | None, now: dt.datetime) -> float:
    if not iso_time:
        return -1.0
    at = dt.datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return max(0.0, (now - at).total_seconds())
