"""The schema both stores create, written once: the same tables, columns, keys and indexes in either database.

A row must mean the same in SQLite and PostgreSQL (the leaf bytes hashed into the tree are derived from
it), so the table definitions are shared text and a :class:`Dialect` fills in only what the databases
spell differently: column types for text, blobs and 64-bit integers, an auto-numbered key, a blob
literal, and the triggers that make the ledger's tables append-only.  Migration SQL beyond that, and
how a migration is applied and recorded, stays with each store (``sqlite/migrations.py``,
``postgres/migrations.py``).

A released migration never changes: ``schema_v1`` renders, for each dialect, exactly the script first
shipped (in SQLite, the very statement text kept in ``sqlite_master``).  That includes one quirk:
``outbox.change_id`` is plain ``TEXT`` in both dialects, so in PostgreSQL it lacks the "C" collation of
every other text column.  A later change to the schema is a new migration, not an edit here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import ConfigError


@dataclass(frozen=True)
class Dialect:
    """How one database spells the parts of the shared schema that differ."""

    text: str  # a text column; PostgreSQL pins the byte-wise "C" collation so ordering matches SQLite
    blob: str
    bigint: str  # leaf indexes, node coordinates, tree sizes
    serial: str  # an auto-numbered primary key column
    empty_frontier: str  # a literal of the empty tree's frontier (``Frontier.empty().to_bytes()``)
    routines: str  # whatever the append-only triggers call, created before the first guarded table
    append_only: Callable[[str, str], str]  # (table, message) -> triggers refusing UPDATE and DELETE


def refuse_newer(current: int, latest: int) -> None:
    """A database written by a newer gateway is refused rather than guessed at."""
    if current > latest:
        raise ConfigError(f"store schema version {current} is newer than this gateway ({latest})")


def schema_v1(d: Dialect) -> str:
    """Migration 1 in dialect ``d``: every table the gateway has."""
    return f"""
        CREATE TABLE registrations (
            id            {d.text} PRIMARY KEY,
            client        {d.text} NOT NULL,
            order_ref     {d.text} NOT NULL,
            domain        {d.text} NOT NULL,
            tld           {d.text} NOT NULL,
            subject_id    {d.text},
            status        {d.text} NOT NULL
                          CHECK (status IN ('accepted','delivering','delivered','failed','blocked')),
            plan_json     {d.text} NOT NULL,
            created_at    {d.text} NOT NULL,
            updated_at    {d.text} NOT NULL
        );
        CREATE INDEX registrations_client ON registrations(client, created_at);
        CREATE INDEX registrations_subject ON registrations(subject_id);

        CREATE TABLE idempotency (
            client          {d.text} NOT NULL,
            key             {d.text} NOT NULL,
            request_hash    {d.text} NOT NULL,
            registration_id {d.text} NOT NULL REFERENCES registrations(id),
            status          INTEGER NOT NULL,
            response_json   {d.text} NOT NULL,
            created_at      {d.text} NOT NULL,
            PRIMARY KEY (client, key)
        );

        -- Data subjects: a random id, the data key wrapped by the KEK; shredding drops the key.
        CREATE TABLE subjects (
            id          {d.text} PRIMARY KEY,
            kid         {d.text},
            wrapped     {d.blob},
            created_at  {d.text} NOT NULL,
            shredded_at {d.text}
        );
        -- Blind index: HMAC digests of normalised identifiers, never the identifiers.
        CREATE TABLE subject_index (
            kind        {d.text} NOT NULL,
            digest      {d.text} NOT NULL,
            subject_id  {d.text} NOT NULL REFERENCES subjects(id),
            PRIMARY KEY (kind, digest, subject_id)
        );

        -- One row per (registration, recipient) to deliver. payload_ct holds the policy-released
        -- commands only, sealed under the subject's data key.
        CREATE TABLE outbox (
            id              {d.serial},
            registration_id {d.text} NOT NULL REFERENCES registrations(id),
            recipient       {d.text} NOT NULL,
            subject_id      {d.text},
            purpose         {d.text} NOT NULL,
            required        INTEGER NOT NULL DEFAULT 1,
            -- batch rows (escrow) are sent by a periodic job, never claimed by the delivery worker
            batch           INTEGER NOT NULL DEFAULT 0,
            state           {d.text} NOT NULL CHECK (state IN ('pending','in_flight','done','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            payload_ct      {d.blob} NOT NULL,
            payload_digest  {d.text} NOT NULL,
            transfer_json   {d.text} NOT NULL,
            fields_json     {d.text} NOT NULL,
            next_attempt_at {d.text} NOT NULL,
            last_code       {d.text},
            updated_at      {d.text} NOT NULL,
            -- '' for the registration's own delivery; a change id for each later update pushed
            change_id       TEXT NOT NULL DEFAULT '',
            UNIQUE (registration_id, recipient, change_id)
        );
        CREATE INDEX outbox_due ON outbox(batch, state, next_attempt_at);

        {d.routines}
        -- The ledger's leaves. Append-only: the triggers make UPDATE and DELETE fail for every SQL path.
        CREATE TABLE disclosures (
            leaf_index       {d.bigint} PRIMARY KEY,
            id               {d.text} NOT NULL UNIQUE,
            registration_id  {d.text} NOT NULL,
            subject_id       {d.text},
            recipient        {d.text} NOT NULL,
            recipient_name   {d.text} NOT NULL,
            recipient_country {d.text} NOT NULL,
            category         {d.text} NOT NULL,
            article          {d.text},
            instrument       {d.text},
            purpose          {d.text} NOT NULL,
            outcome          {d.text} NOT NULL,
            retryable        INTEGER NOT NULL DEFAULT 0,
            fields_json      {d.text} NOT NULL,
            withheld_json    {d.text} NOT NULL,
            payload_digest   {d.text},
            result_code      {d.text},
            sv_trid          {d.text},
            cl_trid          {d.text},
            objects_json     {d.text} NOT NULL,
            reason           {d.text},
            attempted_at     {d.text} NOT NULL,
            recorded_at      {d.text} NOT NULL,
            values_digest    {d.text},
            leaf_hash        {d.blob} NOT NULL
        );
        -- The encrypted values an entry sent, apart from the leaf (which holds their digest), so the
        -- retention purge can delete them and the tree still verifies.
        CREATE TABLE entry_values (
            entry_id   {d.text} PRIMARY KEY REFERENCES disclosures(id),
            values_ct  {d.blob} NOT NULL
        );
        CREATE INDEX disclosures_recipient ON disclosures(recipient, recorded_at);
        CREATE INDEX disclosures_country ON disclosures(recipient_country, recorded_at);
        CREATE INDEX disclosures_category ON disclosures(category, recorded_at);
        CREATE INDEX disclosures_registration ON disclosures(registration_id);
        CREATE INDEX disclosures_subject ON disclosures(subject_id);
        {d.append_only('disclosures', 'disclosures are append-only')}

        -- Complete subtree hashes (level 0 = leaves); born = leaf index whose append completed it.
        CREATE TABLE ledger_nodes (
            level  INTEGER NOT NULL,
            idx    {d.bigint} NOT NULL,
            born   {d.bigint} NOT NULL,
            hash   {d.blob} NOT NULL,
            PRIMARY KEY (level, idx)
        );
        CREATE INDEX ledger_nodes_born ON ledger_nodes(born, level);
        {d.append_only('ledger_nodes', 'ledger nodes are append-only')}

        CREATE TABLE ledger_head (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            size     {d.bigint} NOT NULL,
            frontier {d.blob} NOT NULL
        );
        INSERT INTO ledger_head (id, size, frontier) VALUES (1, 0, {d.empty_frontier});

        -- Staff reads of personal data (decrypted values, extracts): ids only, append-only.
        CREATE TABLE access_log (
            id          {d.serial},
            at          {d.text} NOT NULL,
            actor       {d.text} NOT NULL,
            action      {d.text} NOT NULL,
            object_id   {d.text} NOT NULL,
            subject_id  {d.text}
        );
        CREATE INDEX access_log_subject ON access_log(subject_id, at);
        {d.append_only('access_log', 'the access log is append-only')}

        -- Data-subject requests (Art. 12-22) and every step taken on them.
        CREATE TABLE requests (
            id               {d.text} PRIMARY KEY,
            kind             {d.text} NOT NULL,
            channel          {d.text} NOT NULL,
            identity_check   {d.text} NOT NULL,
            verified_by      {d.text} NOT NULL,
            opened_by        {d.text} NOT NULL,
            opened_at        {d.text} NOT NULL,
            deadline         {d.text} NOT NULL,
            state            {d.text} NOT NULL,
            subject_id       {d.text},
            closed_at        {d.text},
            data_json        {d.text} NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX requests_state ON requests(state, deadline);
        CREATE TABLE request_events (
            id          {d.serial},
            request_id  {d.text} NOT NULL REFERENCES requests(id),
            at          {d.text} NOT NULL,
            actor       {d.text} NOT NULL,
            action      {d.text} NOT NULL,
            detail_json {d.text} NOT NULL
        );
        CREATE INDEX request_events_request ON request_events(request_id, id);
        {d.append_only('request_events', 'request events are append-only')}

        -- Restriction (Art. 18) and objection (Art. 21): further disclosures to the scope are refused.
        CREATE TABLE restrictions (
            id          {d.text} PRIMARY KEY,
            subject_id  {d.text} NOT NULL,
            kind        {d.text} NOT NULL CHECK (kind IN ('restriction','objection')),
            scope       {d.text} NOT NULL,
            since       {d.text} NOT NULL,
            lifted_at   {d.text},
            request_id  {d.text}
        );
        CREATE INDEX restrictions_subject ON restrictions(subject_id);

        CREATE TABLE checkpoints (
            size       {d.bigint} PRIMARY KEY,
            root       {d.blob} NOT NULL,
            timestamp  {d.text} NOT NULL,
            origin     {d.text} NOT NULL,
            key_id     {d.text} NOT NULL,
            signature  {d.blob} NOT NULL
        );
        {d.append_only('checkpoints', 'checkpoints are append-only')}
        """  # noqa: S608 - only the dialect's fixed spellings are interpolated


def schema_v2(d: Dialect) -> str:
    """Migration 2 in dialect ``d``: how each subject's records were joined.

    ``subjects.basis`` says whether a subject is every registration with one strong identifier
    (``strong_id``) or a single holder record without one (``record``).  Rows from before stay NULL: they
    were made when a shared e-mail or national ID number alone merged records, so nothing is merged into
    them any more, and a registrant change reported through one of their registrations reaches that
    registration only.  The column is nullable and has no default, so adding it rewrites no row."""
    return f"""
        ALTER TABLE subjects ADD COLUMN basis {d.text} CHECK (basis IN ('strong_id', 'record'));
        """


def schema_v3(d: Dialect) -> str:
    """Migration 3 in dialect ``d``: webhooks for the ordering system.

    ``webhooks`` holds each client's callback subscriptions.  ``secret`` is the signing secret as is
    (``whsec_…``): HMAC needs the key itself on every send, so it cannot be hashed; it signs
    notifications that carry no personal data, and the database is as protected as the sealed values
    beside it.  A deleted subscription keeps its row (``deleted_at``) so its events stay explained.

    ``webhook_events`` is a durable outbox of notifications: one row per (event, subscription), written
    in the same transaction as the registration state change it reports, sent until the receiver answers
    2xx (``delivered``) or the retries are used up (``failed``).  ``next_attempt_at`` is both the
    backoff and the lease of a claimed row, so a sender that dies mid-send is simply retried."""
    return f"""
        CREATE TABLE webhooks (
            id          {d.text} PRIMARY KEY,
            client      {d.text} NOT NULL,
            url         {d.text} NOT NULL,
            events_json {d.text} NOT NULL,
            secret      {d.text} NOT NULL,
            created_at  {d.text} NOT NULL,
            deleted_at  {d.text}
        );
        CREATE INDEX webhooks_client ON webhooks(client, created_at);

        CREATE TABLE webhook_events (
            id              {d.serial},
            event_id        {d.text} NOT NULL,
            webhook_id      {d.text} NOT NULL REFERENCES webhooks(id),
            registration_id {d.text} NOT NULL,
            type            {d.text} NOT NULL,
            body_json       {d.text} NOT NULL,
            state           {d.text} NOT NULL CHECK (state IN ('pending','delivered','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at {d.text} NOT NULL,
            last_status     {d.text},
            created_at      {d.text} NOT NULL,
            updated_at      {d.text} NOT NULL,
            UNIQUE (event_id, webhook_id)
        );
        CREATE INDEX webhook_events_due ON webhook_events(state, next_attempt_at);
        CREATE INDEX webhook_events_hook ON webhook_events(webhook_id, id);
        """


def schema_v4(d: Dialect) -> str:
    """Migration 4 in dialect ``d``: the request that queued each outbox row.

    ``outbox.request_id`` is the ``X-Request-ID`` of the API request whose acceptance (a registration, a
    registrant change) queued the row, so the delivery worker binds it on the lines of that delivery in
    whichever process, and after whichever restart, makes it.  It is an operational correlation id, not
    personal data, and no part of the payload, its digest or the ledger leaf.  Rows from before stay
    NULL (as do rows queued outside a request); the column has no default, so adding it rewrites no row."""
    return f"""
        ALTER TABLE outbox ADD COLUMN request_id {d.text};
        """


#: Every state an outbox row can be in (schema 5).  ``needs_attention``: parked, waiting for staff to retry
#: or cancel it (a permanent refusal, or transient failures past the recipient's deadline); ``cancelled``:
#: staff gave up on it.  ``failed`` is what schema 1-4 wrote for both and is never written any more.
OUTBOX_STATES = ("pending", "in_flight", "done", "failed", "needs_attention", "cancelled")


def schema_v5(d: Dialect, widen_states: str) -> str:
    """Migration 5 in dialect ``d``: fenced claims, per-command progress and parking.

    - ``claim_token``: a fresh token per claim.  Only the claim holding the row's current token may record
      an outcome (``finish``/``record_step`` write nothing otherwise), so a worker whose lease ran out while
      its registry was slow can no longer log a delivery another worker also logs.
    - ``lease_until``: when the claim lapses unless its worker renews it (a heartbeat while the work runs);
      a dead worker's rows are taken over as soon as it passes, not after a fixed recovery interval.
    - ``progress_json``: what the registry already holds from earlier steps of this row (contacts created
      and their registry ids), written in the same transaction as those steps' disclosure entries, so a
      retry after a crash neither repeats nor forgets a command that carried personal data.
    - ``parked_reason`` and ``deadline_at``: why a row waits for staff, and until when transient failures
      are retried (set at the first failure from the recipient's deadline; cleared by a staff retry).

    - ``disclosures.command``: the command that carried an entry's data (``gateway.ledger.entry``: in the
      leaf only when set, so older leaves keep their hashes).

    ``widen_states`` is the dialect's way to let ``outbox.state`` take the new states (PostgreSQL alters
    the CHECK constraint; SQLite cannot, and rebuilds the table)."""
    return f"""
        ALTER TABLE outbox ADD COLUMN claim_token {d.text};
        ALTER TABLE outbox ADD COLUMN lease_until {d.text};
        ALTER TABLE outbox ADD COLUMN progress_json {d.text};
        ALTER TABLE outbox ADD COLUMN parked_reason {d.text};
        ALTER TABLE outbox ADD COLUMN deadline_at {d.text};
        ALTER TABLE disclosures ADD COLUMN command {d.text};
        {widen_states}
        CREATE INDEX outbox_lease ON outbox(state, lease_until);
        """


def schema_v6(d: Dialect) -> str:
    """Migration 6 in dialect ``d``: the domain's lifecycle after its registration.

    - ``registrations.kind``: ``registration`` or ``transfer`` (a domain transferred in); ``expires_at``: the
      expiry the registry last confirmed (creation, renewal); ``ended_at`` and ``end_reason``
      (``deleted``, ``transferred_out``, ``expired``): when our role as its registrar ended.  The retention
      clock of our copy of the holder's data runs from ``ended_at``, not from each entry's time.
    - ``registration_events``: what happened to a registration after acceptance, from the API (renewal,
      transfer out, deletion) or a registry notice (transfer completed or away, deletion, expiry, a contact
      changed by the registry); ids, codes and dates only, never personal data.
    - ``poll_messages``: registry poll messages whose effect is durable, by registry and message id, so a
      message read again after a crash (before its acknowledgement reached the registry) is applied once."""
    return f"""
        ALTER TABLE registrations ADD COLUMN kind {d.text} NOT NULL DEFAULT 'registration';
        ALTER TABLE registrations ADD COLUMN expires_at {d.text};
        ALTER TABLE registrations ADD COLUMN ended_at {d.text};
        ALTER TABLE registrations ADD COLUMN end_reason {d.text};
        CREATE INDEX registrations_domain ON registrations(domain, ended_at);
        CREATE TABLE registration_events (
            id              {d.serial},
            registration_id {d.text} NOT NULL REFERENCES registrations(id),
            at              {d.text} NOT NULL,
            kind            {d.text} NOT NULL,
            source          {d.text} NOT NULL,
            detail_json     {d.text} NOT NULL
        );
        CREATE INDEX registration_events_reg ON registration_events(registration_id, id);
        CREATE TABLE poll_messages (
            registry        {d.text} NOT NULL,
            msg_id          {d.text} NOT NULL,
            applied_at      {d.text} NOT NULL,
            kind            {d.text} NOT NULL,
            registration_id {d.text},
            PRIMARY KEY (registry, msg_id)
        );
        """


def schema_v7(d: Dialect, without_rowid: str, rename_keys: str) -> str:
    """Migration 7 in dialect ``d``: ledger tables keyed in the order rows arrive, so an append writes few pages.

    Issue 9: one append wrote 17 WAL pages in SQLite where the raw row takes 1.7, because three of its
    B-trees were keyed at random or held twice.  Both tables are rebuilt with their rows as they are
    (the leaves, and so every leaf hash, root and signed checkpoint, are untouched):

    - ``ledger_nodes`` is keyed by ``(born, level)``, the order appends create nodes in (``born`` is the
      leaf whose append completed the node, ``gateway.store.base.node_born``), so every append adds its
      nodes at the right edge of one B-tree.  A node is still looked up by ``(level, idx)``: its ``born``
      follows from them, so the lookup binds the computed key.  The separate ``ledger_nodes_born`` index
      is gone (the key is that order now), and SQLite stores the table ``WITHOUT ROWID``: the key is the
      table, not a rowid table beside a second tree for the key.  ``idx`` stays as a column (a few bytes)
      so a row still says where it sits without arithmetic.
    - ``entry_values`` is keyed by ``leaf_index`` instead of the entry's random id: in SQLite it becomes
      the rowid itself (appended at the end), where the text key meant a rowid table plus an index
      written at a random page on every insert.

    ``without_rowid`` is the dialect's table option (SQLite's ``WITHOUT ROWID``, empty in PostgreSQL,
    where the heap plus the primary key is already what it is); ``rename_keys`` renames whatever
    constraints kept the copies' names (PostgreSQL's; SQLite's automatic indexes follow the table)."""
    return f"""
        CREATE TABLE ledger_nodes_v7 (
            level  INTEGER NOT NULL,
            idx    {d.bigint} NOT NULL,
            born   {d.bigint} NOT NULL,
            hash   {d.blob} NOT NULL,
            PRIMARY KEY (born, level)
        ){without_rowid};
        INSERT INTO ledger_nodes_v7 (level, idx, born, hash)
            SELECT level, idx, born, hash FROM ledger_nodes ORDER BY born, level;
        DROP TABLE ledger_nodes;
        ALTER TABLE ledger_nodes_v7 RENAME TO ledger_nodes;
        {d.append_only('ledger_nodes', 'ledger nodes are append-only')}

        CREATE TABLE entry_values_v7 (
            leaf_index {d.bigint} PRIMARY KEY REFERENCES disclosures(leaf_index),
            values_ct  {d.blob} NOT NULL
        );
        INSERT INTO entry_values_v7 (leaf_index, values_ct)
            SELECT d.leaf_index, v.values_ct FROM entry_values v JOIN disclosures d ON d.id = v.entry_id
            ORDER BY d.leaf_index;
        DROP TABLE entry_values;
        ALTER TABLE entry_values_v7 RENAME TO entry_values;
        {rename_keys}
        """  # noqa: S608 - only the dialect's fixed spellings are interpolated


STAFF_ROLES = ("privacy", "auditor")
STAFF_LANGS = ("sv", "en")


def schema_v8(d: Dialect) -> str:
    """Migration 8 in dialect ``d``: named staff accounts and their sessions, kept in the store so that every
    gateway instance sees the same log-ins and any of them can end one.

    - ``staff_accounts``: one row per person (``name`` is the log-in name, never reused for another person);
      ``password_hash`` an argon2id hash (NULL: the account logs in through OpenID Connect only);
      ``oidc_subject`` the identity provider's ``sub`` an admin linked to it; ``disabled_at`` ends its use
      (and every session of it) without deleting the name the logs attribute actions to.
    - ``staff_sessions``: ``id`` is the SHA-256 of the random cookie value, so a copy of this table logs no
      one in; a session ends at ``expires_at``, when it is revoked, or when its account is disabled.
    - ``login_failures``: failed log-ins by key (hashes of the user name and of the client address) for
      throttling; pruned as they age out of the window.
    - ``requests.assignee``: the staff account a data-subject request is assigned to."""
    roles = ", ".join(f"'{r}'" for r in STAFF_ROLES)
    langs = ", ".join(f"'{lang}'" for lang in STAFF_LANGS)
    return f"""
        CREATE TABLE staff_accounts (
            name            {d.text} PRIMARY KEY,
            display_name    {d.text} NOT NULL,
            password_hash   {d.text},
            role            {d.text} NOT NULL CHECK (role IN ({roles})),
            is_admin        INTEGER NOT NULL DEFAULT 0,
            lang            {d.text} NOT NULL DEFAULT 'sv' CHECK (lang IN ({langs})),
            created_at      {d.text} NOT NULL,
            disabled_at     {d.text},
            oidc_subject    {d.text} UNIQUE
        );
        CREATE TABLE staff_sessions (
            id              {d.text} PRIMARY KEY,
            account         {d.text} NOT NULL REFERENCES staff_accounts(name),
            created_at      {d.text} NOT NULL,
            last_seen_at    {d.text} NOT NULL,
            expires_at      {d.text} NOT NULL,
            revoked_at      {d.text},
            user_agent      {d.text}
        );
        CREATE INDEX staff_sessions_account ON staff_sessions(account, revoked_at);
        CREATE TABLE login_failures (
            id              {d.serial},
            key             {d.text} NOT NULL,
            at              {d.text} NOT NULL
        );
        CREATE INDEX login_failures_key ON login_failures(key, at);
        ALTER TABLE requests ADD COLUMN assignee {d.text};
        """


def schema_v9(d: Dialect) -> str:
    """Migration 9 in dialect ``d``: the registrant's recorded language (``Registrant.language``, ISO 639-1)
    on each registration, so an Art. 15 letter defaults to the language the person ordered in.  NULL for
    registrations made before it (the letter then falls back on what the disclosed values say)."""
    return f"""
        ALTER TABLE registrations ADD COLUMN language {d.text};
    """
