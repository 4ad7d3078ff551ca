"""The embedded store: SQLite in WAL mode, one writer connection, explicit transactions.

The accepted request, its outbox rows and any "blocked" disclosure entries are written in one
``BEGIN IMMEDIATE`` transaction, and so is each delivery outcome with its disclosure entry: after a
crash at any instant the store holds either both halves or neither.  Calls are synchronous and
short; the async API runs them in a worker thread behind a lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.store.migrations import migrate

T = TypeVar("T")


@dataclass(frozen=True)
class DisclosureEntry:
    id: str
    registration_id: str
    recipient: str
    recipient_name: str
    recipient_country: str
    category: str
    article: str | None
    instrument: str | None
    purpose: str
    outcome: str  # delivered | failed | blocked
    fields: tuple[str, ...]
    withheld: tuple[str, ...]
    objects: dict[str, str]
    attempted_at: str
    recorded_at: str
    retryable: bool = False
    payload_digest: str | None = None
    result_code: str | None = None
    sv_trid: str | None = None
    cl_trid: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "registration_id": self.registration_id,
            "recipient": self.recipient,
            "recipient_name": self.recipient_name,
            "recipient_country": self.recipient_country,
            "transfer": {"category": self.category, "article": self.article, "instrument": self.instrument},
            "purpose": self.purpose,
            "outcome": self.outcome,
            "retryable": self.retryable,
            "fields": list(self.fields),
            "withheld": list(self.withheld),
            "payload_digest": self.payload_digest,
            "result_code": self.result_code,
            "sv_trid": self.sv_trid,
            "cl_trid": self.cl_trid,
            "objects": self.objects,
            "reason": self.reason,
            "attempted_at": self.attempted_at,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class OutboxItem:
    id: int
    registration_id: str
    recipient: str
    attempts: int
    payload: dict[str, Any]
    payload_digest: str
    transfer: dict[str, Any]
    fields: dict[str, Any]


@dataclass(frozen=True)
class NewOutbox:
    recipient: str
    payload: dict[str, Any]
    payload_digest: str
    transfer: dict[str, Any]
    fields: dict[str, Any]


@dataclass(frozen=True)
class DisclosureFilter:
    recipient: str | None = None
    country: str | None = None
    category: str | None = None
    outcome: str | None = None
    registration_id: str | None = None
    since: str | None = None
    until: str | None = None
    after_seq: int = 0
    limit: int = 100


_ENTRY_COLUMNS = (
    "id, registration_id, recipient, recipient_name, recipient_country, category, article, instrument, "
    "purpose, outcome, retryable, fields_json, withheld_json, payload_digest, result_code, sv_trid, "
    "cl_trid, objects_json, reason, attempted_at, recorded_at"
)


def _entry_params(e: DisclosureEntry) -> tuple[Any, ...]:
    return (
        e.id, e.registration_id, e.recipient, e.recipient_name, e.recipient_country, e.category, e.article,
        e.instrument, e.purpose, e.outcome, int(e.retryable), json.dumps(list(e.fields)),
        json.dumps(list(e.withheld)), e.payload_digest, e.result_code, e.sv_trid, e.cl_trid,
        json.dumps(e.objects, sort_keys=True), e.reason, e.attempted_at, e.recorded_at,
    )


def _entry_from_row(row: sqlite3.Row) -> DisclosureEntry:
    return DisclosureEntry(
        id=row["id"], registration_id=row["registration_id"], recipient=row["recipient"],
        recipient_name=row["recipient_name"], recipient_country=row["recipient_country"],
        category=row["category"], article=row["article"], instrument=row["instrument"],
        purpose=row["purpose"], outcome=row["outcome"], retryable=bool(row["retryable"]),
        fields=tuple(json.loads(row["fields_json"])), withheld=tuple(json.loads(row["withheld_json"])),
        payload_digest=row["payload_digest"], result_code=row["result_code"], sv_trid=row["sv_trid"],
        cl_trid=row["cl_trid"], objects=json.loads(row["objects_json"]), reason=row["reason"],
        attempted_at=row["attempted_at"], recorded_at=row["recorded_at"],
    )


class SqliteStore:
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        self.schema_version = migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    # -- idempotency and acceptance ------------------------------------------------------------

    def idempotent_response(self, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        rows = self._read(
            "SELECT request_hash, status, response_json FROM idempotency WHERE client=? AND key=?", (client, key)
        )
        if not rows:
            return None
        return rows[0]["request_hash"], int(rows[0]["status"]), json.loads(rows[0]["response_json"])

    def accept(
        self,
        *,
        registration: dict[str, Any],
        idempotency: tuple[str, str, str],
        status: int,
        response: dict[str, Any],
        outbox: list[NewOutbox],
        entries: list[DisclosureEntry],
        now: str,
    ) -> tuple[str, int, dict[str, Any]] | None:
        """Write the whole acceptance atomically; returns the earlier answer if the key raced us."""
        client, key, request_hash = idempotency
        with self._tx() as c:
            prior = c.execute(
                "SELECT request_hash, status, response_json FROM idempotency WHERE client=? AND key=?",
                (client, key),
            ).fetchone()
            if prior is not None:
                return prior["request_hash"], int(prior["status"]), json.loads(prior["response_json"])
            c.execute(
                "INSERT INTO registrations(id, client, order_ref, domain, tld, status, plan_json, created_at, "
                "updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    registration["id"], client, registration["order_ref"], registration["domain"],
                    registration["tld"], registration["status"], json.dumps(registration["plan"]), now, now,
                ),
            )
            c.execute(
                "INSERT INTO idempotency(client, key, request_hash, registration_id, status, response_json, "
                "created_at) VALUES (?,?,?,?,?,?,?)",
                (client, key, request_hash, registration["id"], status, json.dumps(response), now),
            )
            for item in outbox:
                c.execute(
                    "INSERT INTO outbox(registration_id, recipient, state, payload_json, payload_digest, "
                    "transfer_json, fields_json, next_attempt_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        registration["id"], item.recipient, "pending", json.dumps(item.payload),
                        item.payload_digest, json.dumps(item.transfer), json.dumps(item.fields), now, now,
                    ),
                )
            for entry in entries:
                self._append(c, entry)
        return None

    @staticmethod
    def _append(c: sqlite3.Connection, entry: DisclosureEntry) -> None:
        c.execute(
            f"INSERT INTO disclosures({_ENTRY_COLUMNS}) VALUES ({','.join('?' * 21)})",  # noqa: S608 - fixed columns
            _entry_params(entry),
        )

    # -- registrations ---------------------------------------------------------------------------

    def registration(self, reg_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM registrations WHERE id=?", (reg_id,))
        if not rows:
            return None
        row = rows[0]
        deliveries = self._read(
            "SELECT recipient, state, attempts, last_code, updated_at FROM outbox WHERE registration_id=? "
            "ORDER BY id",
            (reg_id,),
        )
        entries = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM disclosures WHERE registration_id=? ORDER BY seq",  # noqa: S608
            (reg_id,),
        )
        return {
            "id": row["id"],
            "client": row["client"],
            "order_ref": row["order_ref"],
            "domain": row["domain"],
            "status": row["status"],
            "plan": json.loads(row["plan_json"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "deliveries": [dict(d) for d in deliveries],
            "disclosures": [_entry_from_row(e).as_dict() for e in entries],
        }

    # -- outbox ------------------------------------------------------------------------------------

    def requeue_in_flight(self, now: str) -> int:
        """After a crash, anything in flight may or may not have reached the recipient: retry it.

        The EPP adapter makes the retry idempotent (deterministic object ids, <info> on 2302).
        """
        with self._tx() as c:
            cur = c.execute(
                "UPDATE outbox SET state='pending', next_attempt_at=?, updated_at=? WHERE state='in_flight'",
                (now, now),
            )
            return cur.rowcount

    def claim_due(self, now: str, limit: int) -> list[OutboxItem]:
        with self._tx() as c:
            rows = c.execute(
                "SELECT * FROM outbox WHERE state='pending' AND next_attempt_at<=? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            items = []
            for row in rows:
                c.execute(
                    "UPDATE outbox SET state='in_flight', attempts=attempts+1, updated_at=? WHERE id=?",
                    (now, row["id"]),
                )
                c.execute(
                    "UPDATE registrations SET status='delivering', updated_at=? WHERE id=? AND status='accepted'",
                    (now, row["registration_id"]),
                )
                items.append(
                    OutboxItem(
                        id=row["id"], registration_id=row["registration_id"], recipient=row["recipient"],
                        attempts=row["attempts"] + 1, payload=json.loads(row["payload_json"]),
                        payload_digest=row["payload_digest"], transfer=json.loads(row["transfer_json"]),
                        fields=json.loads(row["fields_json"]),
                    )
                )
            return items

    def finish(self, item: OutboxItem, entry: DisclosureEntry, *, state: str, next_attempt_at: str | None,
               now: str) -> None:
        """Record one attempt's outcome and its disclosure entry in one transaction."""
        if state not in ("done", "failed", "pending"):
            raise ValueError("bad outbox state")
        with self._tx() as c:
            c.execute(
                "UPDATE outbox SET state=?, last_code=?, next_attempt_at=COALESCE(?, next_attempt_at), "
                "updated_at=? WHERE id=? AND state='in_flight'",
                (state, entry.result_code, next_attempt_at, now, item.id),
            )
            self._append(c, entry)
            states = {r[0] for r in c.execute(
                "SELECT state FROM outbox WHERE registration_id=?", (item.registration_id,)
            )}
            status = "delivered" if states == {"done"} else "failed" if "failed" in states else "delivering"
            c.execute(
                "UPDATE registrations SET status=?, updated_at=? WHERE id=?", (status, now, item.registration_id)
            )

    def pending_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','in_flight')")[0][0])

    # -- disclosures ---------------------------------------------------------------------------------

    def disclosures(self, f: DisclosureFilter) -> list[tuple[int, DisclosureEntry]]:
        where = ["seq > ?"]
        params: list[Any] = [f.after_seq]
        for column, value in (
            ("recipient", f.recipient), ("recipient_country", f.country), ("category", f.category),
            ("outcome", f.outcome), ("registration_id", f.registration_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if f.since is not None:
            where.append("recorded_at >= ?")
            params.append(f.since)
        if f.until is not None:
            where.append("recorded_at < ?")
            params.append(f.until)
        params.append(f.limit)
        rows = self._read(
            # only fixed column names are interpolated; every value is a bound parameter
            f"SELECT seq, {_ENTRY_COLUMNS} FROM disclosures WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",  # noqa: S608
            tuple(params),
        )
        return [(int(r["seq"]), _entry_from_row(r)) for r in rows]
