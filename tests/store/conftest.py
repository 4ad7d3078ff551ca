"""Store fixtures: a throwaway PostgreSQL cluster for the session, a fresh database per test, and a
``store`` fixture parametrized over both implementations, so every contract test runs against each.

The cluster is started from the PostgreSQL server binaries on this machine (``/usr/lib/postgresql/<v>/bin``,
the highest version; or ``initdb`` on PATH).  As root, it runs as the ``postgres`` OS user (PostgreSQL
refuses to run as root).  Without any PostgreSQL binaries the PostgreSQL half of the suite is skipped,
except under CI (``CI`` set), where that is a failure: CI installs PostgreSQL and must test it.

Also here: ``RawDB``, raw SQL access to the store's database that bypasses the store (for the append-only
and tamper tests), and small factories for entries, acceptances and checkpoints.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import hashlib
import os
import pwd
import queue
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from gateway.ledger.checkpoint import CheckpointSigner, SignedCheckpoint
from gateway.ledger.entry import DisclosureEntry
from gateway.store.base import Accepted, NewOutbox, NewSubject, Store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

T = TypeVar("T")

PG_SUPERUSER = "postgres"


# -- the throwaway cluster ----------------------------------------------------------------------------

def pg_bindir() -> Path | None:
    """The newest PostgreSQL server bin directory on this machine, or None."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(d)
        try:
            version = tuple(int(p) for p in path.parent.name.split("."))
        except ValueError:
            continue
        if (path / "initdb").exists() and (path / "pg_ctl").exists() and (path / "postgres").exists():
            found.append((version, path))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_sync(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop in its own thread (safe from sync fixtures)."""
    out: list[T] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(fn()))  # type: ignore[arg-type]
        except BaseException as e:
            err.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


class PgCluster:
    """A running throwaway cluster.  Databases for tests are copies of one migrated template, made ahead of
    need (and dropped after use) on a helper thread: CREATE DATABASE costs a few hundred milliseconds of
    fsync, which then overlaps with the tests instead of adding to them."""

    AHEAD = 3

    def __init__(self, bindir: Path, base: Path, port: int) -> None:
        self.bindir, self.base, self.port = bindir, base, port
        self.template: str | None = None
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._drops: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def dsn(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def _create(self, *, migrated: bool) -> str:
        name = f"t_{secrets.token_hex(6)}"
        template = f' TEMPLATE "{self.template}"' if migrated and self.template else ""
        run_sync(lambda: self.admin(f'CREATE DATABASE "{name}"{template}'))
        return name

    def _drop(self, name: str) -> None:
        run_sync(lambda: self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def start(self) -> None:
        """Migrate the template (once, with PostgresStore itself), then start making copies."""
        name = self._create(migrated=False)

        async def migrate() -> None:
            store = await PostgresStore.open(self.dsn(name))
            await store.close()

        run_sync(migrate)
        self.template = name
        self._thread = threading.Thread(target=self._work, name="pg-databases", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                victim = self._drops.get(timeout=0.05 if self._ready.full() else 0)
            except queue.Empty:
                victim = None
            try:
                if victim is not None:
                    self._drop(victim)
                elif not self._ready.full():
                    self._ready.put(self._create(migrated=True))
            except BaseException as e:  # hand it to the test that waits for a database
                self._ready.put(e)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def create_database(self, *, migrated: bool = False) -> str:
        """A new database: a copy of the migrated template, or (``migrated=False``) an empty one."""
        if not migrated or self._thread is None:
            return self._create(migrated=migrated)
        item = self._ready.get(timeout=120)
        if isinstance(item, BaseException):
            raise item
        return item

    def drop_database(self, name: str) -> None:
        self._drops.put(name)  # dropped on the helper thread; whatever is left goes with the cluster


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = pg_bindir()
    if bindir is None:
        message = "no PostgreSQL server binaries (initdb, pg_ctl) found: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="gw-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_SUPERUSER)
        except KeyError:
            pytest.fail("running as root but there is no 'postgres' OS user to run PostgreSQL as", pytrace=False)
        shutil.chown(base, PG_SUPERUSER, PG_SUPERUSER)
    data = base / "data"
    log = base / "server.log"
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync"]),
        check=True, capture_output=True, cwd=base,
    )
    port = 0
    for _attempt in range(3):  # another process may take the port between probing and binding it
        port = _free_port()
        options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100 "
                   "-c shared_buffers=32MB")
        started = subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                          "start"]),
            capture_output=True, cwd=base,
        )
        if started.returncode == 0:
            break
    else:
        text = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{started.stdout.decode()}{started.stderr.decode()}\n{text}")
    cluster = PgCluster(bindir, base, port)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database for this test, with the current schema (a copy of the migrated template)."""
    name = pg_cluster.create_database(migrated=True)
    try:
        yield pg_cluster.dsn(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def pg_empty_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database for this test: whoever opens it first runs the migrations."""
    name = pg_cluster.create_database()
    try:
        yield pg_cluster.dsn(name)
    finally:
        pg_cluster.drop_database(name)


# -- both stores ------------------------------------------------------------------------------------------

@dataclass
class StoreSpec:
    kind: str  # "sqlite" | "postgres"
    target: str  # file path or DSN

    async def open(self) -> Store:
        if self.kind == "sqlite":
            return SqliteStore(self.target)
        return await PostgresStore.open(self.target, min_size=1, max_size=4)

    async def raw(self) -> RawDB:
        if self.kind == "sqlite":
            return SqliteRaw(self.target)
        return PgRaw(await asyncpg.connect(self.target))


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "gateway.db"))
    return StoreSpec("postgres", request.getfixturevalue("pg_dsn"))


@pytest.fixture
async def store(store_spec: StoreSpec) -> AsyncIterator[Store]:
    s = await store_spec.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def raw(store_spec: StoreSpec, store: Store) -> AsyncIterator[RawDB]:
    """Raw SQL on the same database as ``store`` (opened after it, so the schema exists)."""
    r = await store_spec.raw()
    try:
        yield r
    finally:
        await r.close()


class RawDB:
    """Plain SQL with ``?`` placeholders on either database, bypassing the store."""

    kind: str

    async def execute(self, sql: str, *args: Any) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def tamper(self, table: str, sql: str, *args: Any) -> None:
        """Run ``sql`` with the append-only triggers on ``table`` out of the way, then restore them."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteRaw(RawDB):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row

    async def execute(self, sql: str, *args: Any) -> None:
        self.conn.execute(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    async def tamper(self, table: str, sql: str, *args: Any) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            triggers = [r[0] for r in c.execute(
                "SELECT sql FROM sqlite_master WHERE type='trigger' AND tbl_name=?", (table,)
            )]
            for name in [r[0] for r in c.execute(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name=?", (table,)
            )]:
                c.execute(f'DROP TRIGGER "{name}"')
            c.execute(sql, args)
            for ddl in triggers:
                c.execute(ddl)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    async def close(self) -> None:
        self.conn.close()


def _dollar(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))


class PgRaw(RawDB):
    kind = "postgres"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(_dollar(sql), *args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.conn.fetch(_dollar(sql), *args)]

    async def tamper(self, table: str, sql: str, *args: Any) -> None:
        # DISABLE TRIGGER ALL (superuser) also drops foreign-key checks: a raw edit may break them too.
        async with self.conn.transaction():
            await self.conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            await self.conn.execute(_dollar(sql), *args)
            await self.conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")

    async def close(self) -> None:
        await self.conn.close()


# -- factories ----------------------------------------------------------------------------------------------

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)

RECIPIENTS = (
    ("iis", "Internetstiftelsen i Sverige", "SE", "eea", None, None),
    ("eurid", "EURid vzw", "BE", "eea", None, None),
    ("verisign", "VeriSign, Inc.", "US", "adequacy", "45", "EU-US Data Privacy Framework"),
    ("escrow-ch", "Escrow Zürich AG", "CH", "adequacy", "45", None),
    ("partner-in", "Partner India Pvt", "IN", "safeguard", "46(2)(c)", "SCC 2021/914 module 2"),
    ("reseller-br", "Revenda Ltda", "BR", "blocked", None, None),
)
OUTCOMES = ("delivered", "failed", "blocked", "refused")


def iso(t: dt.datetime) -> str:
    """As gateway.clock.iso (not imported: the worker processes start faster without it)."""
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ts(minutes: float) -> str:
    return iso(T0 + dt.timedelta(minutes=minutes))


def make_entry(i: int, *, tag: str = "", **overrides: Any) -> DisclosureEntry:
    """A varied but deterministic entry: nullable columns are set in some entries and NULL in others."""
    rid, name, country, category, article, instrument = RECIPIENTS[i % len(RECIPIENTS)]
    sent = i % 3 != 1
    fields: dict[str, Any] = dict(
        id=f"ent-{tag}{i:04d}", registration_id=f"reg-{tag}{i // 3:04d}", recipient=rid, recipient_name=name,
        recipient_country=country, category=category, article=article, instrument=instrument,
        purpose="domain_registration", outcome=OUTCOMES[i % len(OUTCOMES)],
        fields=("name", "email", "address") if sent else (), withheld=("phone",) if i % 2 else (),
        objects={"contact": f"GW{i:06d}", "domain": f"exempel{i}.se"} if sent else {},
        attempted_at=ts(i), recorded_at=ts(i + 0.5), retryable=i % 5 == 1,
        payload_digest="sha256:" + hashlib.sha256(f"payload{i}".encode()).hexdigest() if sent else None,
        result_code="1000" if sent else None, sv_trid=f"SV-{i}" if sent else None, cl_trid=f"CL-{i}" if sent else None,
        reason=None if sent else "restriction: Art. 18 (ö)", subject_id=f"subj-{i % 3}" if i % 4 else None,
        values_ct=hashlib.sha256(f"values{i}".encode()).digest() * 2 if sent else None,
    )
    fields.update(overrides)
    return DisclosureEntry(**fields)


def make_accepted(n: int, *, key: str | None = None, recipients: tuple[str, ...] = ("iis", "verisign"),
                  entries: list[DisclosureEntry] | None = None, subject: NewSubject | None = None,
                  subject_id: str | None = None, links: tuple[tuple[str, str], ...] = ()) -> Accepted:
    reg_id = f"reg-acc-{n:04d}"
    sid = subject.id if subject is not None else subject_id
    return Accepted(
        registration={"id": reg_id, "order_ref": f"ORD-{n}", "domain": f"exempel{n}.se", "tld": "se",
                      "status": "accepted", "plan": [{"recipient": r} for r in recipients], "subject_id": sid},
        idempotency=("shop", key or f"key-{n}", f"hash-{n}"),
        status=202,
        response={"id": reg_id, "status": "accepted", "links": {"self": f"/v1/registrations/{reg_id}"}},
        outbox=[NewOutbox(recipient=r, payload_ct=f"ct-{n}-{r}".encode(), payload_digest=f"sha256:{n}{r}",
                          transfer={"category": "eea"}, fields={"released": ["name"]}) for r in recipients],
        entries=entries or [],
        subject=subject,
        subject_links=links,
    )


async def add_checkpoint(store: Store, signer: CheckpointSigner, minutes: float = 0) -> SignedCheckpoint:
    """Sign and store a checkpoint of the current head, the way the gateway does."""
    from gateway.services.ledger import Ledger

    ledger = Ledger(store, None, None, signer)  # type: ignore[arg-type]  # checkpoint() needs neither
    return await ledger.checkpoint(T0 + dt.timedelta(minutes=minutes))


async def build_ledger(store: Store, signer: CheckpointSigner, n: int, *, checkpoint_every: int = 5,
                       batch: int = 3) -> list[DisclosureEntry]:
    """``n`` entries appended in small batches, with a checkpoint every ``checkpoint_every`` entries."""
    entries = [make_entry(i) for i in range(n)]
    done = 0
    while done < n:
        await store.append(entries[done:done + batch])
        done = min(n, done + batch)
        if done % checkpoint_every < batch:
            await add_checkpoint(store, signer, done)
    await add_checkpoint(store, signer, n + 1)
    return entries
