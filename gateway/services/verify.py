"""Ledger verification split over processes by leaf-index range: near the cost of hashing each leaf once.

How the work splits.  The leaves are cut into aligned chunks of ``2**level`` leaves (the last may be
shorter).  A chunk's leaves are one complete subtree of the RFC 9162 tree, and since schema 7 keys the
stored nodes by the leaf whose append completed them (``born``), the nodes of a chunk are one key range
too.  So a process can hash a chunk's leaves from their stored bytes (``stored_leaf_bytes``: no decode,
no re-encode), check each leaf hash and values digest, rebuild the chunk's subtree and compare every
stored node inside it, knowing nothing of the other chunks.  What comes back is a handful of hashes per
chunk: its subtree hash (for the last, partial chunk its frontier), the stored nodes above it that its
last leaf completed, and its frontier at each checkpoint size inside it.  The parent joins the chunks in
order (``Frontier.append_subtree``), which recomputes the nodes above them, and checks those, every
checkpoint's signature and root, and the head.

Each process opens its own read connection (the SQLite file, or the PostgreSQL DSN) and reads its chunk
``batch`` leaves at a time with the nodes born with them, so memory stays flat at any size.  The first
chunk reads without a lower bound and the last without an upper one, so every stored row is seen by
exactly one process: a stray index below 0 or a row beyond the head is found like any other.

Like the one-process fast pass it only ever says "all good": anything that does not check out, and any
process that fails, gives None, and the caller runs the exact decoding pass, whose findings (which leaf,
which column, in which words) read as they always have.

The processes come from a fork server (``multiprocessing``'s "forkserver"): forked from a clean process
that imported this module once, never from the caller, whose threads (asyncio's, a store's) a fork would
copy mid-step.  As with any ``multiprocessing`` start method but "fork", a script that calls this must
keep its top level import-safe (``if __name__ == "__main__":``); ``gateway`` and ``python -m gateway``
are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import multiprocessing
import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.ledger.entry import STORED_COLUMNS, stored_leaf_bytes
from gateway.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash
from gateway.store import rows as R
from gateway.store.base import LedgerStore, StoredCheckpoint, node_born

#: Leaves per chunk (a power of two): 16,384 leaves is a few hundred milliseconds of hashing, small
#: enough for the progress bar to move and for the chunks to share out evenly over the processes.
CHUNK_LEVEL = 14
#: Leaves read per query inside a chunk (and about twice as many nodes).
BATCH = 4096

_N = len(STORED_COLUMNS)
_VALUES_DIGEST = STORED_COLUMNS.index("values_digest")
_PURPOSE = STORED_COLUMNS.index("purpose")
_RECORDED = STORED_COLUMNS.index("recorded_at")

#: When an entry's sealed values may first be purged, from its purpose and ``recorded_at`` (see
#: ``gateway.services.ledger.RetentionRule``); None when its purpose is never purged.
Rule = Callable[[str, dt.datetime], "dt.datetime | None"]


@dataclass(frozen=True)
class Source:
    """Where a process opens its own read connection: a SQLite file or a PostgreSQL DSN."""

    kind: Literal["sqlite", "postgres"]
    target: str

    @classmethod
    def of(cls, store: object) -> Source | None:
        """The store's database, if it says where it is (a SQLite file; a PostgreSQL store's ``dsn``)."""
        path = getattr(store, "path", None)
        if isinstance(path, str) and path != ":memory:" and type(store).__name__ == "SqliteStore":
            return cls("sqlite", path)
        dsn = getattr(store, "dsn", None)
        if isinstance(dsn, str) and type(store).__name__ == "PostgresStore":
            return cls("postgres", dsn)
        return None


@dataclass(frozen=True)
class PurposeRule:
    """A retention rule as a table, purpose -> when its values may first be purged from ``recorded_at``.

    Picklable whenever its functions are (bound methods of configuration models are), so each verifying
    process can apply the very rule the retention job follows, not a copy of its arithmetic."""

    expires: Mapping[str, Callable[[dt.datetime], dt.datetime]]

    def __call__(self, purpose: str, recorded_at: dt.datetime) -> dt.datetime | None:
        until = self.expires.get(purpose)
        return None if until is None else until(recorded_at)


def shippable(rule: Rule | None) -> bool:
    """Whether ``rule`` can be sent to another process (a closure cannot)."""
    try:
        pickle.dumps(rule)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def purged_too_early(purpose: Any, recorded_at: Any, rule: Rule, now: dt.datetime) -> bool:
    """True unless a retention purge can explain an entry's missing values (its period had run out by
    ``now``); also when ``recorded_at`` is not a readable ISO 8601 time or the purpose is never purged."""
    if not isinstance(recorded_at, str) or not isinstance(purpose, str):
        return True
    try:
        t = dt.datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    except ValueError:
        return True
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    until = rule(purpose, t)
    return until is None or now < until


# -- one chunk, in its own process --------------------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    """Leaves ``[lo, hi)``; ``first``/``last``: read without a lower/upper bound.  ``checkpoints``: the
    checkpoint sizes ``s`` with ``lo < s <= hi``, whose frontier the chunk reports."""

    lo: int
    hi: int
    level: int
    first: bool
    last: bool
    checkpoints: tuple[int, ...] = ()

    def ranges(self, batch: int) -> Iterator[tuple[int, int, bool, bool]]:
        """``(a, b, lower, upper)`` reads covering the chunk; ``lower``/``upper``: whether that side is bound."""
        a = self.lo
        while True:
            b = min(a + batch, self.hi)
            yield a, b, not (self.first and a == self.lo), not (self.last and b == self.hi)
            if b >= self.hi:
                return
            a = b


@dataclass(frozen=True)
class Job:
    source: Source
    chunk: Chunk
    batch: int
    retention: Rule | None
    now: dt.datetime


#: A stored tree node: ``(level, idx, born, hash)``.
NodeRow = tuple[int, int, int, bytes]


@dataclass(frozen=True)
class ChunkResult:
    """What the parent needs of a checked chunk: its frontier (one hash when whole), the stored nodes its
    last leaf completed above it ``(level, idx, born, hash)``, and its frontier at each checkpoint size."""

    hashes: tuple[bytes, ...]
    upper: tuple[NodeRow, ...]
    checkpoints: tuple[tuple[int, tuple[bytes, ...]], ...] = field(default=())


class ChunkCheck:
    """Checks a chunk's rows as they are read, range by range; pure (no I/O), so both databases share it.

    The chunk's subtree is rebuilt on a plain stack of hashes, the way ``Frontier.append`` does it (the
    nodes one leaf completes all have that leaf as ``born`` and index ``leaf >> level``), without an
    object per node: this loop runs once per leaf and is most of the verifier's own time."""

    def __init__(self, chunk: Chunk, retention: Rule | None, now: dt.datetime) -> None:
        self.chunk = chunk
        self.retention = retention
        self.now = now
        self.count = 0  # leaves checked so far
        self.stack: list[bytes] = []  # the chunk's frontier: one hash per set bit of ``count``, largest first
        self.upper: list[NodeRow] = []
        self.cps: list[tuple[int, tuple[bytes, ...]]] = []
        self._next_cps = iter(chunk.checkpoints)
        self._next_cp = next(self._next_cps, None)
        self._whole_end = chunk.lo + (1 << chunk.level) - 1  # the leaf that completes a whole chunk

    def feed(self, leaves: Sequence[Sequence[Any]], nodes: Iterable[Sequence[Any]]) -> bool:
        """Leaf rows ``[a, b)`` and the node rows born in ``[a, b)``, both in key order; False at the first
        thing that does not check out."""
        lo, hi, stack, sha256 = self.chunk.lo, self.chunk.hi, self.stack, hashlib.sha256
        k = self.count
        stored = iter(nodes)
        for r in leaves:
            idx = lo + k
            if type(r[0]) is not int or r[0] != idx or idx >= hi:
                return False
            acc = leaf_hash(stored_leaf_bytes(r[:_N]))
            if r[_N] != acc:
                return False
            ct = r[_N + 1]
            if ct is not None:
                if "sha256:" + sha256(ct).hexdigest() != r[_VALUES_DIGEST]:
                    return False
            elif (r[_VALUES_DIGEST] is not None and self.retention is not None
                  and purged_too_early(r[_PURPOSE], r[_RECORDED], self.retention, self.now)):
                return False
            level = 0
            while True:  # the nodes this leaf completes, bottom-up: (level, idx >> level, born=idx, hash)
                row = next(stored, None)
                if row is None or row[3] != acc or row[0] != level or row[1] != idx >> level or row[2] != idx:
                    return False
                if not (k >> level) & 1:
                    break
                acc = node_hash(stack.pop(), acc)
                level += 1
            stack.append(acc)
            k += 1
            self.count = k
            if idx == self._whole_end:  # what is left was born here above the chunk: the parent checks it
                self.upper.extend((row[0], row[1], row[2], bytes(row[3])) for row in stored)
            if self._next_cp is not None and self._next_cp == idx + 1:
                self.cps.append((idx + 1, tuple(stack)))
                self._next_cp = next(self._next_cps, None)
        return next(stored, None) is None

    def result(self) -> ChunkResult | None:
        if self.count != self.chunk.hi - self.chunk.lo or self._next_cp is not None:
            return None
        return ChunkResult(tuple(self.stack), tuple(self.upper), tuple(self.cps))


def _bind(a: int, b: int, lower: bool, upper: bool) -> list[int]:
    return [*([a] if lower else []), *([b] if upper else [])]


def _sqlite_chunk(job: Job) -> ChunkResult | None:
    check = ChunkCheck(job.chunk, job.retention, job.now)
    conn = sqlite3.connect(job.source.target, timeout=60)
    try:
        conn.execute("PRAGMA query_only=1")
        for a, b, lower, upper in job.chunk.ranges(job.batch):
            args = _bind(a, b, lower, upper)
            leaves = conn.execute(R.leaf_range_sql(R.qmark, lower=lower, upper=upper), args).fetchall()
            nodes = conn.execute(R.node_range_sql(R.qmark, lower=lower, upper=upper), args).fetchall()
            if not check.feed(leaves, nodes):
                return None
        return check.result()
    finally:
        conn.close()


async def _postgres_chunk(job: Job) -> ChunkResult | None:
    import asyncpg  # type: ignore[import-untyped]  # only in processes reading PostgreSQL

    check = ChunkCheck(job.chunk, job.retention, job.now)
    conn = await asyncpg.connect(job.source.target, server_settings={"application_name": "registrant-gateway-verify"})
    try:
        for a, b, lower, upper in job.chunk.ranges(job.batch):
            args = _bind(a, b, lower, upper)
            leaves = await conn.fetch(R.leaf_range_sql(R.dollar, lower=lower, upper=upper), *args)
            nodes = await conn.fetch(R.node_range_sql(R.dollar, lower=lower, upper=upper), *args)
            if not check.feed([tuple(r) for r in leaves], [tuple(r) for r in nodes]):
                return None
        return check.result()
    finally:
        await conn.close()


def check_chunk(job: Job) -> ChunkResult | None:
    """Run in a worker process: one chunk checked on a connection of its own; None at the first doubt,
    including any failure to read (the exact pass then meets the same rows and names what is wrong)."""
    gc.disable()  # a chunk makes no reference cycles; collections would only rescan its rows
    try:
        if job.source.kind == "sqlite":
            return _sqlite_chunk(job)
        return asyncio.run(_postgres_chunk(job))
    except Exception:  # any failure here is a doubt for the exact pass to resolve
        return None
    finally:
        gc.enable()


# -- the parent --------------------------------------------------------------------------------------------

def plan(size: int, checkpoint_sizes: Sequence[int], level: int) -> list[Chunk]:
    """Aligned chunks of ``2**level`` leaves covering ``[0, size)`` (one empty chunk for an empty ledger),
    each with the checkpoint sizes that fall in it."""
    width = 1 << level
    starts = list(range(0, size, width)) or [0]
    return [Chunk(lo, min(lo + width, size), level, lo == 0, lo == starts[-1],
                  tuple(s for s in checkpoint_sizes if lo < s <= min(lo + width, size)))
            for lo in starts]


def _levels(count: int) -> list[int]:
    """The levels of the perfect subtrees making up ``count`` leaves, largest first."""
    return [lv for lv in range(count.bit_length() - 1, -1, -1) if count >> lv & 1]


def _joined(frontier: Frontier, lo: int, hashes: Sequence[bytes], count: int) -> list[NodeRow] | None:
    """Append a chunk's frontier (``count`` leaves from ``lo``) to ``frontier``; the nodes above the chunk
    this completed, as stored rows, or None when the hashes do not fit the count."""
    levels = _levels(count)
    if len(levels) != len(hashes) or frontier.size != lo:
        return None
    above: list[NodeRow] = []
    for lv, h in zip(levels, hashes, strict=True):
        created = frontier.append_subtree(lv, h)[1:]
        above.extend((n.level, n.index, node_born(n.level, n.index), n.hash) for n in created)
    return above


async def verify_parallel(
    store: LedgerStore, source: Source, checkpoint_ok: Callable[[StoredCheckpoint, bytes], bool], *, jobs: int,
    progress: Callable[[int, int], None] | None = None, retention: Rule | None = None,
    now: dt.datetime | None = None, level: int = CHUNK_LEVEL, batch: int = BATCH, preload: Sequence[str] = (),
) -> tuple[int, int] | None:
    """(entries, checkpoints) when the whole ledger checks out, None at the first doubt.

    ``checkpoint_ok(cp, root)``: whether a stored checkpoint is validly signed and names ``root``.
    ``retention`` must be picklable (see :func:`shippable`).  ``preload``: modules the worker processes
    import once, before they fork (what unpickling ``retention`` needs), so no process pays for them again."""
    now = now or dt.datetime.now(dt.UTC)
    head = await store.head()
    cps = await store.checkpoints()
    size = head.size
    by_size = {cp.size: cp for cp in cps}
    if len(by_size) != len(cps) or any(not 0 <= s <= size for s in by_size):
        return None
    if 0 in by_size and not checkpoint_ok(by_size[0], EMPTY_ROOT):
        return None
    chunks = plan(size, sorted(by_size), level)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *preload])
    loop = asyncio.get_running_loop()
    done = 0

    def ticker(count: int) -> Callable[[asyncio.Future[ChunkResult | None]], None]:
        def tick(future: asyncio.Future[ChunkResult | None]) -> None:
            nonlocal done
            if not future.cancelled():
                done += count
                if progress is not None:
                    progress(done, size)

        return tick

    pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(chunks))), mp_context=context)
    futures: list[asyncio.Future[ChunkResult | None]] = []
    try:
        for chunk in chunks:
            future = loop.run_in_executor(pool, check_chunk, Job(source, chunk, batch, retention, now))
            future.add_done_callback(ticker(chunk.hi - chunk.lo))
            futures.append(future)
        frontier = Frontier.empty()
        for chunk, future in zip(chunks, futures, strict=True):
            result = await future
            if result is None:
                return None
            for s, hashes in result.checkpoints:
                at = frontier.copy()
                if _joined(at, chunk.lo, hashes, s - chunk.lo) is None or not checkpoint_ok(by_size[s], at.root()):
                    return None
            if _joined(frontier, chunk.lo, result.hashes, chunk.hi - chunk.lo) != list(result.upper):
                return None
        if frontier != head:
            return None
        return size, len(cps)
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
