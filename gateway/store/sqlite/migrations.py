"""Versioned schema migrations for the embedded SQLite store.

Each migration runs once, in its own transaction, and is recorded in ``schema_version``; a store
written by a newer gateway refuses to open with an older one rather than guess.
"""

from __future__ import annotations

import sqlite3

from gateway.errors import ConfigError

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE registrations (
            id            TEXT PRIMARY KEY,
            client        TEXT NOT NULL,
            order_ref     TEXT NOT NULL,
            domain        TEXT NOT NULL,
            tld           TEXT NOT NULL,
            subject_id    TEXT,
            status        TEXT NOT NULL
                          CHECK (status IN ('accepted','delivering','delivered','failed','blocked')),
            plan_json     TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL
        );
        CREATE INDEX registrations_client ON registrations(client, created_at);
        CREATE INDEX registrations_subject ON registrations(subject_id);

        CREATE TABLE idempotency (
            client          TEXT NOT NULL,
            key             TEXT NOT NULL,
            request_hash    TEXT NOT NULL,
            registration_id TEXT NOT NULL REFERENCES registrations(id),
            status          INTEGER NOT NULL,
            response_json   TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            PRIMARY KEY (client, key)
        );

        -- Data subjects: a random id, the data key wrapped by the KEK; shredding drops the key.
        CREATE TABLE subjects (
            id          TEXT PRIMARY KEY,
            kid         TEXT,
            wrapped     BLOB,
            created_at  TEXT NOT NULL,
            shredded_at TEXT
        );
        -- Blind index: HMAC digests of normalised identifiers, never the identifiers.
        CREATE TABLE subject_index (
            kind        TEXT NOT NULL,
            digest      TEXT NOT NULL,
            subject_id  TEXT NOT NULL REFERENCES subjects(id),
            PRIMARY KEY (kind, digest, subject_id)
        );

        -- One row per (registration, recipient) to deliver. payload_ct holds the policy-released
        -- commands only, sealed under the subject's data key.
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            registration_id TEXT NOT NULL REFERENCES registrations(id),
            recipient       TEXT NOT NULL,
            subject_id      TEXT,
            purpose         TEXT NOT NULL,
            required        INTEGER NOT NULL DEFAULT 1,
            -- batch rows (escrow) are sent by a periodic job, never claimed by the delivery worker
            batch           INTEGER NOT NULL DEFAULT 0,
            state           TEXT NOT NULL CHECK (state IN ('pending','in_flight','done','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            payload_ct      BLOB NOT NULL,
            payload_digest  TEXT NOT NULL,
            transfer_json   TEXT NOT NULL,
            fields_json     TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            last_code       TEXT,
            updated_at      TEXT NOT NULL,
            -- '' for the registration's own delivery; a change id for each later update pushed
            change_id       TEXT NOT NULL DEFAULT '',
            UNIQUE (registration_id, recipient, change_id)
        );
        CREATE INDEX outbox_due ON outbox(batch, state, next_attempt_at);

        -- The ledger's leaves. Append-only: the triggers make UPDATE and DELETE fail for every SQL path.
        CREATE TABLE disclosures (
            leaf_index       INTEGER PRIMARY KEY,
            id               TEXT NOT NULL UNIQUE,
            registration_id  TEXT NOT NULL,
            subject_id       TEXT,
            recipient        TEXT NOT NULL,
            recipient_name   TEXT NOT NULL,
            recipient_country TEXT NOT NULL,
            category         TEXT NOT NULL,
            article          TEXT,
            instrument       TEXT,
            purpose          TEXT NOT NULL,
            outcome          TEXT NOT NULL,
            retryable        INTEGER NOT NULL DEFAULT 0,
            fields_json      TEXT NOT NULL,
            withheld_json    TEXT NOT NULL,
            payload_digest   TEXT,
            result_code      TEXT,
            sv_trid          TEXT,
            cl_trid          TEXT,
            objects_json     TEXT NOT NULL,
            reason           TEXT,
            attempted_at     TEXT NOT NULL,
            recorded_at      TEXT NOT NULL,
            values_digest    TEXT,
            leaf_hash        BLOB NOT NULL
        );
        -- The encrypted values an entry sent, apart from the leaf (which holds their digest), so the
        -- retention purge can delete them and the tree still verifies.
        CREATE TABLE entry_values (
            entry_id   TEXT PRIMARY KEY REFERENCES disclosures(id),
            values_ct  BLOB NOT NULL
        );
        CREATE INDEX disclosures_recipient ON disclosures(recipient, recorded_at);
        CREATE INDEX disclosures_country ON disclosures(recipient_country, recorded_at);
        CREATE INDEX disclosures_category ON disclosures(category, recorded_at);
        CREATE INDEX disclosures_registration ON disclosures(registration_id);
        CREATE INDEX disclosures_subject ON disclosures(subject_id);
        CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures
            BEGIN SELECT RAISE(ABORT, 'disclosures are append-only'); END;
        CREATE TRIGGER disclosures_no_delete BEFORE DELETE ON disclosures
            BEGIN SELECT RAISE(ABORT, 'disclosures are append-only'); END;

        -- Complete subtree hashes (level 0 = leaves); born = leaf index whose append completed it.
        CREATE TABLE ledger_nodes (
            level  INTEGER NOT NULL,
            idx    INTEGER NOT NULL,
            born   INTEGER NOT NULL,
            hash   BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        );
        CREATE INDEX ledger_nodes_born ON ledger_nodes(born, level);
        CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
            BEGIN SELECT RAISE(ABORT, 'ledger nodes are append-only'); END;
        CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
            BEGIN SELECT RAISE(ABORT, 'ledger nodes are append-only'); END;

        CREATE TABLE ledger_head (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            size     INTEGER NOT NULL,
            frontier BLOB NOT NULL
        );
        INSERT INTO ledger_head (id, size, frontier) VALUES (1, 0, X'010000000000000000');

        -- Staff reads of personal data (decrypted values, extracts): ids only, append-only.
        CREATE TABLE access_log (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            at          TEXT NOT NULL,
            actor       TEXT NOT NULL,
            action      TEXT NOT NULL,
            object_id   TEXT NOT NULL,
            subject_id  TEXT
        );
        CREATE INDEX access_log_subject ON access_log(subject_id, at);
        CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
            BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
        CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
            BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;

        -- Data-subject requests (Art. 12-22) and every step taken on them.
        CREATE TABLE requests (
            id               TEXT PRIMARY KEY,
            kind             TEXT NOT NULL,
            channel          TEXT NOT NULL,
            identity_check   TEXT NOT NULL,
            verified_by      TEXT NOT NULL,
            opened_by        TEXT NOT NULL,
            opened_at        TEXT NOT NULL,
            deadline         TEXT NOT NULL,
            state            TEXT NOT NULL,
            subject_id       TEXT,
            closed_at        TEXT,
            data_json        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX requests_state ON requests(state, deadline);
        CREATE TABLE request_events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id  TEXT NOT NULL REFERENCES requests(id),
            at          TEXT NOT NULL,
            actor       TEXT NOT NULL,
            action      TEXT NOT NULL,
            detail_json TEXT NOT NULL
        );
        CREATE INDEX request_events_request ON request_events(request_id, id);
        CREATE TRIGGER request_events_no_update BEFORE UPDATE ON request_events
            BEGIN SELECT RAISE(ABORT, 'request events are append-only'); END;
        CREATE TRIGGER request_events_no_delete BEFORE DELETE ON request_events
            BEGIN SELECT RAISE(ABORT, 'request events are append-only'); END;

        -- Restriction (Art. 18) and objection (Art. 21): further disclosures to the scope are refused.
        CREATE TABLE restrictions (
            id          TEXT PRIMARY KEY,
            subject_id  TEXT NOT NULL,
            kind        TEXT NOT NULL CHECK (kind IN ('restriction','objection')),
            scope       TEXT NOT NULL,
            since       TEXT NOT NULL,
            lifted_at   TEXT,
            request_id  TEXT
        );
        CREATE INDEX restrictions_subject ON restrictions(subject_id);

        CREATE TABLE checkpoints (
            size       INTEGER PRIMARY KEY,
            root       BLOB NOT NULL,
            timestamp  TEXT NOT NULL,
            origin     TEXT NOT NULL,
            key_id     TEXT NOT NULL,
            signature  BLOB NOT NULL
        );
        CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
            BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
        CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
            BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
        """,
    ),
)


def migrate(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    current = int(row[0])
    latest = MIGRATIONS[-1][0]
    if current > latest:
        raise ConfigError(f"store schema version {current} is newer than this gateway ({latest})")
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version(version, applied_at) VALUES (?, datetime('now'))", (version,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def _split(sql: str) -> list[str]:
    """Split on ';' outside trigger bodies (sqlite3.complete_statement knows BEGIN…END)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
