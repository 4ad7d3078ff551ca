"""Versioned schema migrations for the PostgreSQL store.

The same tables and columns as the SQLite schema (``migrations.py``), with BYTEA for blobs and BIGINT
for leaf indexes and sizes.  Timestamps stay TEXT (ISO strings), exactly as in SQLite, so a row read
back from either store yields the same leaf bytes.  Every TEXT column uses the "C" collation: ordering
and range comparisons (``next_attempt_at <= now``, ``recorded_at >= since``, ``ORDER BY id``) are then
byte-wise, as SQLite's BINARY collation is, whatever locale the cluster was initialised with.

Each migration runs once, in its own transaction, and is recorded in ``schema_version``.  The caller
holds a session-level advisory lock for the whole run, so several gateway processes starting at once
against an empty database migrate it exactly once; a database written by a newer gateway refuses to
open with an older one rather than guess.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import ConfigError

#: Key of the session-level advisory lock held while migrating (one-key space, "RGWMIGR1").
MIGRATION_LOCK_KEY = 0x5247574D49475231

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE registrations (
            id            TEXT COLLATE "C" PRIMARY KEY,
            client        TEXT COLLATE "C" NOT NULL,
            order_ref     TEXT COLLATE "C" NOT NULL,
            domain        TEXT COLLATE "C" NOT NULL,
            tld           TEXT COLLATE "C" NOT NULL,
            subject_id    TEXT COLLATE "C",
            status        TEXT COLLATE "C" NOT NULL
                          CHECK (status IN ('accepted','delivering','delivered','failed','blocked')),
            plan_json     TEXT COLLATE "C" NOT NULL,
            created_at    TEXT COLLATE "C" NOT NULL,
            updated_at    TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX registrations_client ON registrations(client, created_at);
        CREATE INDEX registrations_subject ON registrations(subject_id);

        CREATE TABLE idempotency (
            client          TEXT COLLATE "C" NOT NULL,
            key             TEXT COLLATE "C" NOT NULL,
            request_hash    TEXT COLLATE "C" NOT NULL,
            registration_id TEXT COLLATE "C" NOT NULL REFERENCES registrations(id),
            status          INTEGER NOT NULL,
            response_json   TEXT COLLATE "C" NOT NULL,
            created_at      TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (client, key)
        );

        -- Data subjects: a random id, the data key wrapped by the KEK; shredding drops the key.
        CREATE TABLE subjects (
            id          TEXT COLLATE "C" PRIMARY KEY,
            kid         TEXT COLLATE "C",
            wrapped     BYTEA,
            created_at  TEXT COLLATE "C" NOT NULL,
            shredded_at TEXT COLLATE "C"
        );
        -- Blind index: HMAC digests of normalised identifiers, never the identifiers.
        CREATE TABLE subject_index (
            kind        TEXT COLLATE "C" NOT NULL,
            digest      TEXT COLLATE "C" NOT NULL,
            subject_id  TEXT COLLATE "C" NOT NULL REFERENCES subjects(id),
            PRIMARY KEY (kind, digest, subject_id)
        );

        -- One row per (registration, recipient) to deliver. payload_ct holds the policy-released
        -- commands only, sealed under the subject's data key.
        CREATE TABLE outbox (
            id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            registration_id TEXT COLLATE "C" NOT NULL REFERENCES registrations(id),
            recipient       TEXT COLLATE "C" NOT NULL,
            subject_id      TEXT COLLATE "C",
            purpose         TEXT COLLATE "C" NOT NULL,
            required        INTEGER NOT NULL DEFAULT 1,
            -- batch rows (escrow) are sent by a periodic job, never claimed by the delivery worker
            batch           INTEGER NOT NULL DEFAULT 0,
            state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending','in_flight','done','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            payload_ct      BYTEA NOT NULL,
            payload_digest  TEXT COLLATE "C" NOT NULL,
            transfer_json   TEXT COLLATE "C" NOT NULL,
            fields_json     TEXT COLLATE "C" NOT NULL,
            next_attempt_at TEXT COLLATE "C" NOT NULL,
            last_code       TEXT COLLATE "C",
            updated_at      TEXT COLLATE "C" NOT NULL,
            -- '' for the registration's own delivery; a change id for each later update pushed
            change_id       TEXT NOT NULL DEFAULT '',
            UNIQUE (registration_id, recipient, change_id)
        );
        CREATE INDEX outbox_due ON outbox(batch, state, next_attempt_at);

        -- Rejects every UPDATE, DELETE and TRUNCATE on the table it guards; TG_ARGV[0] is the message.
        CREATE FUNCTION gateway_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
        END
        $$;

        -- The ledger's leaves. Append-only: the triggers make UPDATE and DELETE fail for every SQL path.
        CREATE TABLE disclosures (
            leaf_index       BIGINT PRIMARY KEY,
            id               TEXT COLLATE "C" NOT NULL UNIQUE,
            registration_id  TEXT COLLATE "C" NOT NULL,
            subject_id       TEXT COLLATE "C",
            recipient        TEXT COLLATE "C" NOT NULL,
            recipient_name   TEXT COLLATE "C" NOT NULL,
            recipient_country TEXT COLLATE "C" NOT NULL,
            category         TEXT COLLATE "C" NOT NULL,
            article          TEXT COLLATE "C",
            instrument       TEXT COLLATE "C",
            purpose          TEXT COLLATE "C" NOT NULL,
            outcome          TEXT COLLATE "C" NOT NULL,
            retryable        INTEGER NOT NULL DEFAULT 0,
            fields_json      TEXT COLLATE "C" NOT NULL,
            withheld_json    TEXT COLLATE "C" NOT NULL,
            payload_digest   TEXT COLLATE "C",
            result_code      TEXT COLLATE "C",
            sv_trid          TEXT COLLATE "C",
            cl_trid          TEXT COLLATE "C",
            objects_json     TEXT COLLATE "C" NOT NULL,
            reason           TEXT COLLATE "C",
            attempted_at     TEXT COLLATE "C" NOT NULL,
            recorded_at      TEXT COLLATE "C" NOT NULL,
            values_digest    TEXT COLLATE "C",
            leaf_hash        BYTEA NOT NULL
        );
        -- The encrypted values an entry sent, apart from the leaf (which holds their digest), so the
        -- retention purge can delete them and the tree still verifies.
        CREATE TABLE entry_values (
            entry_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES disclosures(id),
            values_ct  BYTEA NOT NULL
        );
        CREATE INDEX disclosures_recipient ON disclosures(recipient, recorded_at);
        CREATE INDEX disclosures_country ON disclosures(recipient_country, recorded_at);
        CREATE INDEX disclosures_category ON disclosures(category, recorded_at);
        CREATE INDEX disclosures_registration ON disclosures(registration_id);
        CREATE INDEX disclosures_subject ON disclosures(subject_id);
        CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('disclosures are append-only');
        CREATE TRIGGER disclosures_no_delete BEFORE DELETE ON disclosures
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('disclosures are append-only');
        CREATE TRIGGER disclosures_no_truncate BEFORE TRUNCATE ON disclosures
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only('disclosures are append-only');

        -- Complete subtree hashes (level 0 = leaves); born = leaf index whose append completed it.
        CREATE TABLE ledger_nodes (
            level  INTEGER NOT NULL,
            idx    BIGINT NOT NULL,
            born   BIGINT NOT NULL,
            hash   BYTEA NOT NULL,
            PRIMARY KEY (level, idx)
        );
        CREATE INDEX ledger_nodes_born ON ledger_nodes(born, level);
        CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('ledger nodes are append-only');
        CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('ledger nodes are append-only');
        CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only('ledger nodes are append-only');

        CREATE TABLE ledger_head (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            size     BIGINT NOT NULL,
            frontier BYTEA NOT NULL
        );
        INSERT INTO ledger_head (id, size, frontier) VALUES (1, 0, decode('010000000000000000', 'hex'));

        -- Staff reads of personal data (decrypted values, extracts): ids only, append-only.
        CREATE TABLE access_log (
            id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at          TEXT COLLATE "C" NOT NULL,
            actor       TEXT COLLATE "C" NOT NULL,
            action      TEXT COLLATE "C" NOT NULL,
            object_id   TEXT COLLATE "C" NOT NULL,
            subject_id  TEXT COLLATE "C"
        );
        CREATE INDEX access_log_subject ON access_log(subject_id, at);
        CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('the access log is append-only');
        CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('the access log is append-only');
        CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only('the access log is append-only');

        -- Data-subject requests (Art. 12-22) and every step taken on them.
        CREATE TABLE requests (
            id               TEXT COLLATE "C" PRIMARY KEY,
            kind             TEXT COLLATE "C" NOT NULL,
            channel          TEXT COLLATE "C" NOT NULL,
            identity_check   TEXT COLLATE "C" NOT NULL,
            verified_by      TEXT COLLATE "C" NOT NULL,
            opened_by        TEXT COLLATE "C" NOT NULL,
            opened_at        TEXT COLLATE "C" NOT NULL,
            deadline         TEXT COLLATE "C" NOT NULL,
            state            TEXT COLLATE "C" NOT NULL,
            subject_id       TEXT COLLATE "C",
            closed_at        TEXT COLLATE "C",
            data_json        TEXT COLLATE "C" NOT NULL DEFAULT '{}'
        );
        CREATE INDEX requests_state ON requests(state, deadline);
        CREATE TABLE request_events (
            id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_id  TEXT COLLATE "C" NOT NULL REFERENCES requests(id),
            at          TEXT COLLATE "C" NOT NULL,
            actor       TEXT COLLATE "C" NOT NULL,
            action      TEXT COLLATE "C" NOT NULL,
            detail_json TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX request_events_request ON request_events(request_id, id);
        CREATE TRIGGER request_events_no_update BEFORE UPDATE ON request_events
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('request events are append-only');
        CREATE TRIGGER request_events_no_delete BEFORE DELETE ON request_events
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('request events are append-only');
        CREATE TRIGGER request_events_no_truncate BEFORE TRUNCATE ON request_events
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only('request events are append-only');

        -- Restriction (Art. 18) and objection (Art. 21): further disclosures to the scope are refused.
        CREATE TABLE restrictions (
            id          TEXT COLLATE "C" PRIMARY KEY,
            subject_id  TEXT COLLATE "C" NOT NULL,
            kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('restriction','objection')),
            scope       TEXT COLLATE "C" NOT NULL,
            since       TEXT COLLATE "C" NOT NULL,
            lifted_at   TEXT COLLATE "C",
            request_id  TEXT COLLATE "C"
        );
        CREATE INDEX restrictions_subject ON restrictions(subject_id);

        CREATE TABLE checkpoints (
            size       BIGINT PRIMARY KEY,
            root       BYTEA NOT NULL,
            timestamp  TEXT COLLATE "C" NOT NULL,
            origin     TEXT COLLATE "C" NOT NULL,
            key_id     TEXT COLLATE "C" NOT NULL,
            signature  BYTEA NOT NULL
        );
        CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('checkpoints are append-only');
        CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
            FOR EACH ROW EXECUTE FUNCTION gateway_append_only('checkpoints are append-only');
        CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only('checkpoints are append-only');
        """,
    ),
)

LATEST = MIGRATIONS[-1][0]


async def migrate(conn: Any) -> int:
    """Bring the database on ``conn`` (an ``asyncpg.Connection``) up to date; returns its schema version.

    Holds a session-level advisory lock throughout, so concurrent callers wait for whoever got there
    first and then find nothing left to do.
    """
    await conn.execute("SELECT pg_advisory_lock($1::bigint)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        if current > LATEST:
            raise ConfigError(f"store schema version {current} is newer than this gateway ({LATEST})")
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            async with conn.transaction():
                await conn.execute(sql)  # no arguments: the simple protocol runs the whole script
                await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", version)
            current = version
        return current
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1::bigint)", MIGRATION_LOCK_KEY)
