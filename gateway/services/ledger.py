"""The ledger as the rest of the gateway sees it: subjects, sealing, checkpoints, proofs, verification.

Pure pieces (Merkle hashing, key wrapping, checkpoint signatures) live in their own modules; this one
joins them to the store roles it needs (:class:`LedgerBackend`): the tree, the subjects' keys and the
access log, never the outbox or the rights case files.

Who a subject is (``gateway.identity``): one holder, found again only by a strong identifier (a national
ID with its scheme and issuing country); a registrant without one is a holder record of its own.  Every
other identifier (e-mail, phone, name and address, the bare ID number) is stored as a blind-index link
for staff to find candidates by, and never merges anything.

Data keys are not cached: every unwrap reads the wrapped key from the store, so an erasure committed by
any process is in force for every process at once.  (A cache would need a read per use to stay correct
- a shred generation - which costs the same round trip as reading the key by its primary key, and
unwrapping 32 bytes is negligible beside it.)
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from gateway.errors import (
    DecryptionFailed,
    LedgerCorrupt,
    LedgerInconsistent,
    NotFound,
    ProofUnavailable,
    SubjectErased,
    SubjectRaced,
)
from gateway.identity import identity_keys, strong_identifier
from gateway.ledger.checkpoint import Checkpoint, CheckpointSigner, SignedCheckpoint, verify_checkpoint
from gateway.ledger.entry import STORED_COLUMNS, DisclosureEntry, EntryUnreadable, leaf_bytes, stored_leaf_bytes
from gateway.ledger.ids import sortable_id
from gateway.ledger.keys import (
    BlindIndexer,
    KeyRing,
    KeyRingFile,
    WrappedKey,
    new_data_key,
    open_sealed,
    rewrap,
    seal,
    unwrap,
    wrap,
)
from gateway.ledger.merkle import (
    Frontier,
    NodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
)
from gateway.models import Registrant
from gateway.services.verify import Source, shippable, verify_parallel
from gateway.store.base import (
    AccessLogStore,
    LedgerStore,
    NewSubject,
    StoredCheckpoint,
    SubjectKey,
    SubjectStore,
    node_born,
)

ORIGIN = "registrant-gateway/disclosure-ledger"


class LedgerBackend(LedgerStore, SubjectStore, AccessLogStore, Protocol):
    """The store roles the Ledger service uses: the tree and checkpoints (``LedgerStore``), subjects and
    their wrapped keys (``SubjectStore``), and the access log its reads of personal data are written to
    (``AccessLogStore``).  Any ``Store`` is one; a test double needs only these."""


@dataclass(frozen=True)
class SubjectRef:
    """The holder a registration is filed under, with its data key.

    ``links`` are blind-index links to add to an existing subject; ``new`` is a holder record that does
    not exist yet and is written in the registration's own transaction (``Accepted.subject``), so a
    registration that loses an idempotency race leaves no subject behind."""

    id: str
    dek: bytes
    links: tuple[tuple[str, str], ...]  # identifiers to add to the subject's blind index
    new: NewSubject | None = None


async def _collect(get_coords: Callable[[NodeSource], object], store: LedgerStore) -> dict[tuple[int, int], bytes]:
    """Run a proof algorithm once to learn which nodes it reads, then fetch them in one go."""
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return b"\x00" * 32

    get_coords(record)
    return await store.nodes(wanted)


class Ledger:
    def __init__(
        self, store: LedgerBackend, ring: KeyRing, indexer: BlindIndexer, signer: CheckpointSigner, *,
        ring_file: Path | None = None,
    ) -> None:
        """``ring_file``: where ``ring`` was read from, for a process that must follow rotations (the
        server): new data keys are then wrapped under the file's active key as it is at that moment, and
        keys re-wrapped by a rotation elsewhere still open.  Without it the ring is fixed (``GATEWAY_KEK``,
        tests, one-shot commands)."""
        self.store = store
        self._ring = ring
        self.ring_file = KeyRingFile(ring_file, ring) if ring_file is not None else None
        self.indexer = indexer
        self.signer = signer

    @property
    def ring(self) -> KeyRing:
        return self.ring_file.ring if self.ring_file is not None else self._ring

    @ring.setter
    def ring(self, ring: KeyRing) -> None:
        self._ring = ring
        if self.ring_file is not None:
            self.ring_file.adopt(ring)

    def reload_ring(self, *, force: bool = False) -> bool:
        """Pick up a rotated ring file now (``force``: read it even if its stat looks unchanged); True when
        the ring changed.  :class:`ConfigError` if the file cannot be used; False for a fixed ring."""
        if self.ring_file is None:
            return False
        return self.ring_file.reload() if force else self.ring_file.refresh()

    # -- subjects and sealing ------------------------------------------------------------------------

    def digests(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(kind, self.indexer.index(kind, value)) for kind, value in pairs]  # type: ignore[arg-type]

    def identity_links(self, reg: Registrant) -> list[tuple[str, str]]:
        """The (kind, digest) blind-index links of a registrant: every key of ``identity_keys``.  A weak
        key that normalises to nothing is left out (it could only ever match other empty values)."""
        links: list[tuple[str, str]] = []
        for kind, value in identity_keys(reg):
            try:
                links.append((kind, self.indexer.index(kind, value)))
            except ValueError:
                if kind == "strong_id":
                    raise
        return links

    async def subject_for(self, reg: Registrant) -> SubjectRef:
        """The holder this registration belongs to: the live subject with the same strong identifier, or
        a new one with a fresh data key.

        Only the strong identifier is looked up.  Two registrations with different strong identifiers never
        share a subject whatever else they share, and a registrant without one becomes a holder record of
        its own (``SubjectRef.new``): an e-mail, phone or address is no evidence of being the same person
        (families, companies and resellers share them), and merging on it is how one person's data reached
        another's extract, change and erasure.  A subject made before schema 2 carries no ``strong_id``
        link, so it is never merged into; see ``SubjectBasis``.  An erased subject is never reused: its
        holder starts afresh under a new key."""
        links = tuple(self.identity_links(reg))
        strong = strong_identifier(reg)
        if strong is None:
            sid, dek, wrapped = self._new_key()
            return SubjectRef(sid, dek, (), NewSubject(sid, wrapped.kid, wrapped.blob, links))
        merge_on = self.indexer.index("strong_id", strong[1])
        for found in await self.store.find_subjects([("strong_id", merge_on)]):
            live = await self.dek(found)
            if live is not None:  # an erased subject starts afresh: old keys stay destroyed
                return SubjectRef(found, live, links)
        for _attempt in range(3):
            sid, dek, wrapped = self._new_key()
            claimed = await self.store.claim_subject(
                NewSubject(sid, wrapped.kid, wrapped.blob, links, merge_on=merge_on),
                dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
            if claimed == sid:
                return SubjectRef(sid, dek, ())
            existing = await self.dek(claimed)  # a concurrent request made this holder first: use theirs
            if existing is not None:
                return SubjectRef(claimed, existing, links)
            # ... and it was erased in between: claim again (a live one, or ours)
        raise SubjectErased()

    def identity_of(self, reg: Registrant) -> tuple[tuple[tuple[str, str], ...], str | None]:
        """Pure: a registrant's blind-index links and the digest of its strong identifier (what a holder
        is found by, ``merge_on``), or None without one: the accept path reads the holder with it."""
        links = tuple(self.identity_links(reg))
        strong = strong_identifier(reg)
        return links, None if strong is None else self.indexer.index("strong_id", strong[1])

    def subject_from_read(
        self, holder: SubjectKey | None, links: tuple[tuple[str, str], ...], merge_on: str | None, *,
        last: bool = False,
    ) -> SubjectRef:
        """The holder a registration is filed under, from what the accept path's one store call read
        (``AcceptContext.holder``, found by ``merge_on``): the same answer as :meth:`subject_for`, with no
        read of its own, because a store may call it inside its write transaction.

        The holder's data key is unwrapped from the wrapped key read with it.  If the ring (re-read) lacks
        its kid, a rotation re-wrapped the row and retired that kid after the read: ``SubjectRaced`` makes
        the caller read again (on its ``last`` attempt, ``DecryptionFailed`` as from :meth:`dek`).  A
        holder erased in between, or none, gives a new subject (``SubjectRef.new``) carrying ``merge_on``:
        ``Store.accept`` then refuses it with ``SubjectRaced`` if a concurrent request made a live holder
        of the same identifier first, and the caller reads again and files under that one."""
        if merge_on is not None and holder is not None and holder.wrapped is not None and holder.kid is not None:
            ring = self._ring_for(holder.kid)
            if holder.kid not in ring.keys and not last:
                raise SubjectRaced()
            return SubjectRef(holder.subject_id,
                              unwrap(ring, WrappedKey(holder.kid, holder.wrapped), holder.subject_id), links)
        sid, dek, wrapped = self._new_key()
        return SubjectRef(sid, dek, (), NewSubject(sid, wrapped.kid, wrapped.blob, links, merge_on=merge_on))

    def _new_key(self) -> tuple[str, bytes, WrappedKey]:
        """A fresh subject id and data key, wrapped under the active KEK of the ring file as it is now
        (fails closed with ``KeyRingUnavailable``): never under a key a rotation may have retired."""
        ring = self.ring_file.for_wrap() if self.ring_file is not None else self._ring
        sid = sortable_id()
        dek = new_data_key()
        return sid, dek, wrap(ring, dek, sid)

    def _ring_for(self, kid: str) -> KeyRing:
        return self.ring_file.for_unwrap(kid) if self.ring_file is not None else self._ring

    async def dek(self, subject_id: str) -> bytes | None:
        """The subject's data key, read from the store on every call (no cache: see the module), or None
        once it has been shredded by any process.

        A kid the ring (re-read) lacks may mean the row was read just before a rotation re-wrapped it and
        retired that kid, so the row is read once more before giving up with ``DecryptionFailed``."""
        wrapped = await self._wrapped_key(subject_id)
        if wrapped is not None and wrapped.kid not in self._ring_for(wrapped.kid).keys:
            wrapped = await self._wrapped_key(subject_id)
        return None if wrapped is None else unwrap(self._ring_for(wrapped.kid), wrapped, subject_id)

    async def _wrapped_key(self, subject_id: str) -> WrappedKey | None:
        key = await self.store.subject_key(subject_id)
        if key is None or key.wrapped is None or key.kid is None:
            return None
        return WrappedKey(key.kid, key.wrapped)

    @staticmethod
    def seal_json(dek: bytes, data: Any, aad: str) -> bytes:
        """``data`` as JSON (keys sorted, UTF-8), sealed under ``dek`` and bound to ``aad``."""
        return seal(dek, orjson.dumps(data, option=orjson.OPT_SORT_KEYS), aad.encode())

    @staticmethod
    def seal_bytes(dek: bytes, data: bytes, aad: str) -> bytes:
        """Already encoded JSON, sealed as :meth:`seal_json` seals (``OutboxContent.encoded``: encoded once)."""
        return seal(dek, data, aad.encode())

    async def open_json(self, subject_id: str | None, blob: bytes, aad: str) -> Any:
        if subject_id is None:
            raise SubjectErased()
        dek = await self.dek(subject_id)
        if dek is None:
            raise SubjectErased()
        return orjson.loads(open_sealed(dek, blob, aad.encode()))

    async def entry_values(self, entry: DisclosureEntry) -> dict[str, Any] | None:
        """The values an entry sent, or None if it sent none; raises SubjectErased after erasure."""
        if entry.values_ct is None:
            return None
        values: dict[str, Any] = await self.open_json(entry.subject_id, entry.values_ct, f"entry:{entry.id}")
        return values

    async def record_access(self, actor: str, action: str, object_id: str, subject_id: str | None) -> None:
        """Reading personal data is itself processing: who read what, when (ids only)."""
        await self.store.record_access(actor, action, object_id, subject_id,
                                       dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))

    async def shred(self, subject_id: str, now: str) -> bool:
        """Destroy the subject's data key in the store: no process holds a copy to forget."""
        return await self.store.shred_subject(subject_id, now)

    async def rotate(
        self, new_ring: KeyRing, *, progress: Callable[[int, int | None], None] | None = None
    ) -> int:
        """Re-wrap every live data key under ``new_ring``'s active KEK; entries are untouched.

        ``progress(done, None)`` is called after each re-wrapped key (the total is not known in advance)."""
        count = 0
        async for key in self.store.subject_keys():
            if key.wrapped is None or key.kid is None:
                continue
            fresh = rewrap(new_ring, WrappedKey(key.kid, key.wrapped), key.subject_id)
            await self.store.replace_wrapped_key(key.subject_id, fresh.kid, fresh.blob)
            count += 1
            if progress is not None:
                progress(count, None)
        self.ring = new_ring
        return count

    # -- retiring a key-encryption key --------------------------------------------------------------

    async def wrapped_key_counts(self) -> dict[str, int]:
        """Live data keys per KEK id, counted by the store (not inferred from a rotation having run)."""
        return await self.store.wrapped_key_counts()

    async def rewrap_kid(
        self, ring: KeyRing, kid: str, *, progress: Callable[[int, int | None], None] | None = None
    ) -> tuple[int, int]:
        """Move every live data key still wrapped under ``kid`` to ``ring``'s active KEK: (moved, failed).

        ``failed`` counts rows that do not open under ``kid`` (corrupt or tampered): they are left as they
        are, so the store still counts them and retiring ``kid`` is refused."""
        moved = failed = 0
        async for key in self.store.subject_keys():
            if key.wrapped is None or key.kid != kid:
                continue
            try:
                fresh = rewrap(ring, WrappedKey(kid, key.wrapped), key.subject_id)
            except DecryptionFailed:
                failed += 1
                continue
            await self.store.replace_wrapped_key(key.subject_id, fresh.kid, fresh.blob)
            moved += 1
            if progress is not None:
                progress(moved, None)
        return moved, failed

    async def drain_kid(
        self, ring: KeyRing, kid: str, *, rounds: int = 3,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[int, int]:
        """Re-wrap ``kid``'s data keys until the store counts none, at most ``rounds`` sweeps: (moved,
        remaining).  A sweep can miss a key made during it (a process still holding an older ring), which
        the next sweep or the final count catches."""
        if kid == ring.active or kid not in ring.keys:
            raise ValueError("a key to drain must be in the ring and not its active key")
        moved = 0
        remaining = (await self.wrapped_key_counts()).get(kid, 0)
        for _ in range(rounds):
            if remaining == 0:
                break
            done, _failed = await self.rewrap_kid(ring, kid, progress=progress)
            moved += done
            remaining = (await self.wrapped_key_counts()).get(kid, 0)
        return moved, remaining

    async def retire(
        self, path: Path, kid: str, *, grace_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> RetireOutcome:
        """Remove ``kid`` from the ring file at ``path`` only once the store holds no data key wrapped under it.

        A running gateway wraps under its ring file's active key as read just before the wrap, so after a
        rotation only a wrap whose read came before the new key was saved can still use ``kid``; ``grace_s``
        is how long such an in-flight registration may take.  Steps: drain (re-wrap what the store still
        has under ``kid``), wait ``grace_s``, drain and count again (refuse, ring untouched, if any remain),
        save the ring without ``kid``, then drain once more while ``kid`` is still held here, and put it back
        in the file (refuse) if any key under it is left.  ``ValueError`` for the active or an unknown kid.
        The caller holds :func:`ring_lock`."""
        ring = KeyRing.from_file(path)
        if kid == ring.active:
            raise ValueError(f"{kid} is the active key; rotate first")
        if kid not in ring.keys:
            raise ValueError(f"no key {kid} in the ring")
        moved, _ = await self.drain_kid(ring, kid, progress=progress)
        await sleep(grace_s)
        ring = KeyRing.from_file(path)  # the newest active key (the lock keeps other rotations out)
        more, remaining = await self.drain_kid(ring, kid, progress=progress)
        moved += more
        if remaining:
            return RetireOutcome(kid, False, moved, remaining)
        ring.without_key(kid).save(path)
        self.ring = ring.without_key(kid)
        more, remaining = await self.drain_kid(ring, kid, progress=progress)
        moved += more
        if remaining:
            ring.save(path)  # keep every key that a stored data key still needs
            self.ring = ring
            return RetireOutcome(kid, False, moved, remaining)
        return RetireOutcome(kid, True, moved, 0)

    # -- checkpoints and proofs ---------------------------------------------------------------------

    async def checkpoint(self, now: dt.datetime | None = None) -> SignedCheckpoint:
        head = await self.store.head()
        existing = await self.store.checkpoint(head.size)
        if existing is not None:
            return self.from_stored(existing)
        cp = Checkpoint(ORIGIN, head.size, head.root(), now or dt.datetime.now(dt.UTC))
        signed = self.signer.sign(cp)
        await self.store.add_checkpoint(StoredCheckpoint(
            size=cp.size, root=cp.root, timestamp=signed.to_json()["timestamp"],  # type: ignore[arg-type]
            key_id=signed.key_id, signature=signed.signature, origin=cp.origin,
        ))
        # another process may have checkpointed the same size first: the stored one is the one
        stored = await self.store.checkpoint(cp.size)
        return self.from_stored(stored) if stored is not None else signed

    @staticmethod
    def from_stored(s: StoredCheckpoint) -> SignedCheckpoint:
        return SignedCheckpoint.from_json({
            "origin": s.origin, "size": s.size, "root": _b64(s.root), "timestamp": s.timestamp,
            "key_id": s.key_id, "signature": _b64(s.signature),
        })

    async def latest_checkpoint(self) -> SignedCheckpoint | None:
        cps = await self.store.checkpoints()
        return self.from_stored(cps[-1]) if cps else None

    async def inclusion(self, entry: DisclosureEntry, tree_size: int) -> list[bytes]:
        assert entry.leaf_index is not None
        if not 0 <= entry.leaf_index < tree_size:
            raise NotFound("entry is not in a tree of that size")
        nodes = await _collect(lambda g: inclusion_proof(g, entry.leaf_index or 0, tree_size), self.store)
        return inclusion_proof(lambda lv, ix: nodes[(lv, ix)], entry.leaf_index, tree_size)

    async def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        nodes = await _collect(lambda g: consistency_proof(g, old_size, new_size), self.store)
        return consistency_proof(lambda lv, ix: nodes[(lv, ix)], old_size, new_size)

    async def root_at(self, size: int) -> bytes:
        """The root of the stored tree's first ``size`` leaves, from its aligned nodes (no checkpoint needed).

        ``KeyError`` if the store lacks a node for it, e.g. ``size`` is beyond the head."""
        nodes = await _collect(lambda g: Frontier.from_source(g, size), self.store)
        return Frontier.from_source(lambda lv, ix: nodes[(lv, ix)], size).root()

    async def prove_extends(self, size: int, root: bytes) -> HeadProof:
        """The rollback check: prove that the tree an auditor holds (``size``, ``root``, from any checkpoint
        we ever signed, stored or not) is a prefix of the current head, signed now.

        Works from the tree's nodes, not from stored checkpoints, so deleting checkpoint rows cannot
        hide a rewrite from whoever kept one.  Raises :class:`LedgerInconsistent` (a refutation the
        auditor can keep) when the head is smaller than ``size`` or the tree at ``size`` has another
        root, and :class:`ProofUnavailable` when the stored tree cannot produce a proof that verifies
        against its own signed head: never a success that proves nothing."""
        head = await self.checkpoint()
        head_size = head.checkpoint.size
        if size > head_size:
            raise LedgerInconsistent(
                f"the ledger holds {head_size} entries, fewer than the {size} of the checkpoint",
                reason="beyond_head", size=size, head_size=head_size, server_root=None,
            )
        try:
            ours = await self.root_at(size)
            proof = await self.consistency(size, head_size)
        except (KeyError, ValueError):
            raise ProofUnavailable(f"the stored tree lacks nodes for a proof from size {size} to "
                                   f"{head_size}") from None
        if not verify_consistency(size, head_size, ours, head.checkpoint.root, proof):
            raise ProofUnavailable(f"the stored tree at size {size} does not extend to the signed head "
                                   f"at size {head_size}")
        if ours != root:
            raise LedgerInconsistent(
                f"the ledger's tree at size {size} has another root than the checkpoint",
                reason="root_mismatch", size=size, head_size=head_size, server_root=_b64(ours),
            )
        return HeadProof(size, root, head, proof)

    # -- verification -------------------------------------------------------------------------------

    async def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        return await verify_store(self.store, self.signer.public_key, progress)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class RetireOutcome:
    """What :meth:`Ledger.retire` did: ``retired`` only if the store counted no data key under ``kid``."""

    kid: str
    retired: bool
    moved: int  # data keys re-wrapped under the active key on the way (stragglers included)
    remaining: int  # data keys still wrapped under ``kid`` when it refused


@dataclass(frozen=True)
class HeadProof:
    """A consistency proof from an auditor's tree (``size``, ``root``) to ``head``, signed now."""

    size: int
    root: bytes
    head: SignedCheckpoint
    proof: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {"from": {"size": self.size, "root": _b64(self.root)}, "to": self.head.to_json(),
                "proof": [_b64(p) for p in self.proof]}


@dataclass
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    problem: str | None = None
    bad_leaf_index: int | None = None
    bad_entry_id: str | None = None


async def _pull(it: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    async for batch in it:
        for item in batch:
            yield item


#: When the values an entry sent may first be purged, from its purpose and ``recorded_at``; None when its
#: purpose is never purged.  The composition root builds it from ``config/retention.yaml``, the same rule
#: the retention job follows, so the verifier can tell a purge from values that vanished too early.
RetentionRule = Callable[[str, dt.datetime], dt.datetime | None]


async def verify_store(
    store: LedgerStore, public_key: Any, progress: Callable[[int, int], None] | None = None, batch: int = 2000,
    *, retention: RetentionRule | None = None, now: dt.datetime | None = None, jobs: int = 1,
    source: Source | None = None, preload: Sequence[str] = (),
) -> VerifyReport:
    """Verify everything the store holds; see :func:`_verify_store`.

    With ``retention``, an entry whose sealed values are gone although its purpose's period had not run
    out by ``now`` (default: the current time) is a finding: the retention job cannot have deleted them,
    so someone else did.  Without it, a missing ciphertext is taken for a purge (all that can be said
    without knowing the periods).

    A fast pass answers first when all is well: with ``jobs`` > 1, that many processes each hash a range
    of the leaves read from ``source`` (default: where the store says it is; ``preload``: modules they
    need to unpickle ``retention``), see :mod:`gateway.services.verify`; else, or without a source or
    with a rule that cannot be sent to another process, one process (:func:`_verify_fast`).  At the first
    doubt the exact pass runs, so findings read the same whichever fast pass ran."""
    now = now or dt.datetime.now(dt.UTC)
    where = source or Source.of(store)
    if jobs > 1 and where is not None and shippable(retention):
        try:
            counts = await verify_parallel(store, where, _checkpoint_check(public_key), jobs=jobs, progress=progress,
                                           retention=retention, now=now, preload=preload)
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, IndexError):  # e.g. a broken pool
            counts = None
        if counts is not None:
            return VerifyReport(True, *counts)
    else:
        try:
            fast = await _verify_fast(store, public_key, progress, batch, retention, now)
        except (ValueError, TypeError, KeyError, IndexError):
            fast = None
        if fast is not None:
            return fast
    try:
        return await _verify_store(store, public_key, progress, batch, retention, now)
    except EntryUnreadable as exc:  # raised before the row reached the loop (e.g. while reading a batch)
        return VerifyReport(False, -1, 0, f"entry at leaf {exc.leaf_index} cannot be decoded (column "
                            f"{exc.column})", exc.leaf_index, exc.entry_id)
    except (ValueError, TypeError, KeyError) as exc:  # a row that no longer parses is corruption too
        return VerifyReport(False, -1, 0, f"unreadable ledger data ({type(exc).__name__})")


def _checkpoint_check(public_key: Any) -> Callable[[StoredCheckpoint, bytes], bool]:
    """Whether a stored checkpoint reads, is signed by ``public_key`` and names the given root."""

    def ok(cp: StoredCheckpoint, root: bytes) -> bool:
        try:
            signed = Ledger.from_stored(cp)
        except (ValueError, TypeError):
            return False
        return verify_checkpoint(signed, public_key) and signed.checkpoint.root == root

    return ok


def _recorded(entry: DisclosureEntry) -> dt.datetime:
    """``recorded_at`` as an aware UTC time (ValueError if it is not an ISO 8601 timestamp)."""
    if not isinstance(entry.recorded_at, str):
        raise ValueError("recorded_at is not text")
    t = dt.datetime.fromisoformat(entry.recorded_at.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _early_purge(entry: DisclosureEntry, retention: RetentionRule, now: dt.datetime) -> str | None:
    """Why the missing values of a purged-looking entry cannot be a retention purge, or None if they can."""
    idx = entry.leaf_index
    try:
        recorded = _recorded(entry)
    except ValueError:
        return f"entry at leaf {idx}: sealed values are gone and recorded_at cannot be read"
    until = retention(entry.purpose, recorded)
    if until is None:
        return f"entry at leaf {idx}: sealed values are gone, but its purpose is never purged"
    if now < until:
        return (f"entry at leaf {idx}: sealed values vanished before its retention date "
                f"({until.date().isoformat()}); not a retention purge")
    return None


_N_STORED = len(STORED_COLUMNS)
_VALUES_DIGEST = STORED_COLUMNS.index("values_digest")
_PURPOSE = STORED_COLUMNS.index("purpose")


async def _verify_fast(
    store: LedgerStore, public_key: Any, progress: Callable[[int, int], None] | None, batch: int,
    retention: RetentionRule | None, now: dt.datetime,
) -> VerifyReport | None:
    """The whole check of :func:`_verify_store` over raw stored rows, or None at the first doubt.

    Each leaf is hashed from the columns exactly as stored (:func:`stored_leaf_bytes`), with no entry
    built and no JSON decoded, and the node pages are walked without an async step per node: near
    the cost of reading the rows and hashing them once.  It only ever says "all good": at the first
    thing that does not check out it returns None and the caller runs :func:`_verify_store`, whose
    findings (which leaf, which column, in which words) are then exactly as they always were.

    Raw hashing vouches for the stored text itself, so it is stricter than re-encoding decoded JSON:
    a row whose JSON columns were re-spaced fails here and is judged by the exact pass.  A row that
    would not decode yet hashes to a leaf hash that the nodes, head and signed checkpoints all agree
    with cannot come from ``append`` (which writes decodable rows only)."""
    stream_rows = getattr(store, "stream_leaf_rows", None)
    if stream_rows is None:  # a test double with the decoded stream only
        return None
    head = await store.head()
    cps = await store.checkpoints()
    cp_iter = iter(cps)
    next_cp = next(cp_iter, None)
    checked = 0
    frontier = Frontier.empty()

    def cps_ok() -> bool:
        nonlocal next_cp, checked
        while next_cp is not None and next_cp.size == frontier.size:
            signed = Ledger.from_stored(next_cp)
            if not verify_checkpoint(signed, public_key) or signed.checkpoint.root != frontier.root():
                return False
            checked += 1
            next_cp = next(cp_iter, None)
        return True

    if not cps_ok():
        return None
    node_pages = aiter(store.stream_nodes(batch))
    page: Iterator[tuple[int, int, int, bytes]] = iter(())
    sha256 = hashlib.sha256
    n = _N_STORED
    async for rows in stream_rows(batch):
        for r in rows:
            idx = frontier.size
            leaf_index = r[0]
            if type(leaf_index) is not int or leaf_index != idx:
                return None
            lh = leaf_hash(stored_leaf_bytes(r[:n]))
            if r[n] != lh:
                return None
            ct = r[n + 1]
            if ct is not None:
                if "sha256:" + sha256(ct).hexdigest() != r[_VALUES_DIGEST]:
                    return None
            elif r[_VALUES_DIGEST] is not None and retention is not None:
                entry = DisclosureEntry.from_row(dict(zip((*STORED_COLUMNS, "leaf_hash", "values_ct"), r,
                                                          strict=True)))
                if _early_purge(entry, retention, now) is not None:
                    return None
            for node in frontier.append(lh):
                stored = next(page, None)
                if stored is None:
                    more = await anext(node_pages, None)
                    if more is None:
                        return None
                    page = iter(more)
                    stored = next(page, None)
                if (stored is None or stored[0] != node.level or stored[1] != node.index
                        or stored[2] != node_born(node.level, node.index) or stored[3] != node.hash):
                    return None
            if progress is not None and frontier.size % 10_000 == 0:
                progress(frontier.size, head.size)
            if next_cp is not None and next_cp.size == frontier.size and not cps_ok():
                return None
    if next(page, None) is not None or await anext(node_pages, None) is not None:
        return None
    if frontier != head or next_cp is not None:
        return None
    if progress is not None:
        progress(frontier.size, head.size)
    return VerifyReport(True, frontier.size, checked)


async def _verify_store(
    store: LedgerStore, public_key: Any, progress: Callable[[int, int], None] | None, batch: int,
    retention: RetentionRule | None, now: dt.datetime,
) -> VerifyReport:
    """Stream every leaf and node, recompute the tree, check every checkpoint's root and signature.

    Memory stays flat: only the frontier (log n hashes) and one batch of rows are held.  The first
    mismatch is reported by leaf index and entry id.  A row that cannot be decoded is named too; as
    rows are decoded a batch at a time, a decodable but bad row earlier in the same batch is then
    reported only after the undecodable one is fixed.
    """
    try:
        head = await store.head()
    except ValueError:
        return VerifyReport(False, -1, 0, "ledger head cannot be read")
    cps = await store.checkpoints()
    cp_iter = iter(cps)
    next_cp = next(cp_iter, None)
    frontier = Frontier.empty()
    nodes = _pull(store.stream_nodes(batch))
    checked_cps = 0

    async def check_cps() -> VerifyReport | None:
        nonlocal next_cp, checked_cps
        while next_cp is not None and next_cp.size == frontier.size:
            try:
                signed = Ledger.from_stored(next_cp)
            except (ValueError, TypeError):
                return VerifyReport(False, frontier.size, checked_cps, f"checkpoint at size {next_cp.size}: "
                                    "cannot be read")
            if not verify_checkpoint(signed, public_key):
                return VerifyReport(False, frontier.size, checked_cps, f"checkpoint at size {next_cp.size}: "
                                    "bad signature")
            if signed.checkpoint.root != frontier.root():
                return VerifyReport(False, frontier.size, checked_cps, f"checkpoint at size {next_cp.size}: "
                                    "root does not match the entries")
            checked_cps += 1
            next_cp = next(cp_iter, None)
        return None

    if (bad := await check_cps()) is not None:
        return bad
    leaves = _pull(store.stream_leaves(batch))
    while True:
        try:
            entry = await anext(leaves, None)
        except EntryUnreadable as exc:
            where = exc.leaf_index if exc.leaf_index is not None else frontier.size
            return VerifyReport(False, frontier.size, checked_cps, f"entry at leaf {where} cannot be decoded "
                                f"(column {exc.column})", where, exc.entry_id)
        if entry is None:
            break
        idx = frontier.size
        if entry.leaf_index != idx:
            return VerifyReport(False, idx, checked_cps, f"gap or reorder at leaf {idx}", idx, entry.id)
        try:
            lh = leaf_hash(leaf_bytes(entry.row(idx)))
        except (ValueError, TypeError):
            return VerifyReport(False, idx, checked_cps, f"entry at leaf {idx} cannot be read", idx, entry.id)
        if entry.leaf_hash != lh:
            return VerifyReport(False, idx, checked_cps, f"entry at leaf {idx} does not match its hash", idx,
                                entry.id)
        if entry.values_ct is not None and entry.values_digest != entry.stored_values_digest:
            return VerifyReport(False, idx, checked_cps, f"encrypted values of leaf {idx} do not match the digest "
                                "in its leaf", idx, entry.id)
        if entry.values_purged and retention is not None and (why := _early_purge(entry, retention, now)):
            return VerifyReport(False, idx, checked_cps, why, idx, entry.id)
        for n in frontier.append(lh):
            stored = await anext(nodes, None)
            expect = (n.level, n.index, node_born(n.level, n.index))
            if stored is None or tuple(stored[:3]) != expect or stored[3] != n.hash:
                return VerifyReport(False, idx, checked_cps,
                                    f"tree node (level {n.level}, index {n.index}) does not match the entries",
                                    idx, entry.id)
        if progress is not None and frontier.size % 10_000 == 0:
            progress(frontier.size, head.size)
        if (bad := await check_cps()) is not None:
            return bad
    if await anext(nodes, None) is not None:
        return VerifyReport(False, frontier.size, checked_cps, "tree nodes beyond the last entry")
    if frontier != head:
        return VerifyReport(False, frontier.size, checked_cps, "ledger head does not match the entries")
    if next_cp is not None:
        return VerifyReport(False, frontier.size, checked_cps, f"checkpoint at size {next_cp.size} is beyond "
                            "the entries")
    if progress is not None:
        progress(frontier.size, head.size)
    return VerifyReport(True, frontier.size, checked_cps)


__all__ = [
    "DecryptionFailed", "HeadProof", "Ledger", "LedgerBackend", "LedgerCorrupt", "RetentionRule", "RetireOutcome",
    "SubjectErased", "VerifyReport", "verify_store",
]
