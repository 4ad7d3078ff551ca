"""The ledger as the rest of the gateway sees it: subjects, sealing, checkpoints, proofs, verification.

Pure pieces (Merkle hashing, key wrapping, checkpoint signatures) live in their own modules; this one
joins them to the store roles it needs (:class:`LedgerBackend`): the tree, the subjects' keys and the
access log, never the outbox or the rights case files.  Data keys are cached unwrapped in memory only
for the process lifetime, and a shredded subject's key is dropped from the cache at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import DecryptionFailed, LedgerCorrupt, NotFound, SubjectErased
from gateway.ledger.checkpoint import Checkpoint, CheckpointSigner, SignedCheckpoint, verify_checkpoint
from gateway.ledger.entry import DisclosureEntry, leaf_bytes
from gateway.ledger.keys import BlindIndexer, KeyRing, WrappedKey, new_data_key, open_sealed, rewrap, seal, unwrap, wrap
from gateway.ledger.merkle import Frontier, NodeSource, consistency_proof, inclusion_proof, leaf_hash
from gateway.models import Registrant
from gateway.store.base import AccessLogStore, LedgerStore, NewSubject, StoredCheckpoint, SubjectStore, node_born

ORIGIN = "registrant-gateway/disclosure-ledger"


class LedgerBackend(LedgerStore, SubjectStore, AccessLogStore, Protocol):
    """The store roles the Ledger service uses: the tree and checkpoints (``LedgerStore``), subjects and
    their wrapped keys (``SubjectStore``), and the access log its reads of personal data are written to
    (``AccessLogStore``).  Any ``Store`` is one; a test double needs only these."""


def identifiers(reg: Registrant) -> list[tuple[str, str]]:
    """What a data subject may later give us to be found: e-mail and national ID."""
    out: list[tuple[str, str]] = [("email", reg.email)]
    if reg.national_id is not None:
        out.append(("national_id", reg.national_id.value))
    return out


@dataclass(frozen=True)
class SubjectRef:
    id: str
    dek: bytes
    links: tuple[tuple[str, str], ...]  # identifiers to add to the subject's blind index


async def _collect(get_coords: Callable[[NodeSource], object], store: LedgerStore) -> dict[tuple[int, int], bytes]:
    """Run a proof algorithm once to learn which nodes it reads, then fetch them in one go."""
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return b"\x00" * 32

    get_coords(record)
    return await store.nodes(wanted)


class Ledger:
    def __init__(self, store: LedgerBackend, ring: KeyRing, indexer: BlindIndexer, signer: CheckpointSigner) -> None:
        self.store = store
        self.ring = ring
        self.indexer = indexer
        self.signer = signer
        self._deks: dict[str, bytes] = {}

    # -- subjects and sealing ------------------------------------------------------------------------

    def digests(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(kind, self.indexer.index(kind, value)) for kind, value in pairs]  # type: ignore[arg-type]

    async def subject_for(self, reg: Registrant) -> SubjectRef:
        """The subject these identifiers belong to, or a new one with a fresh data key."""
        digests = self.digests(identifiers(reg))
        for sid in await self.store.find_subjects(digests):
            dek = await self.dek(sid)
            if dek is not None:  # an erased subject starts afresh: old keys stay destroyed
                return SubjectRef(sid, dek, tuple(digests))
        sid = uuid.uuid4().hex
        dek = new_data_key()
        wrapped = wrap(self.ring, dek, sid)
        claimed = await self.store.claim_subject(NewSubject(sid, wrapped.kid, wrapped.blob, tuple(digests)),
                                                 dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
        if claimed != sid:  # a concurrent request created this person first: use theirs
            existing = await self.dek(claimed)
            if existing is not None:
                return SubjectRef(claimed, existing, tuple(digests))
        self._deks[sid] = dek
        return SubjectRef(sid, dek, ())

    async def dek(self, subject_id: str) -> bytes | None:
        if subject_id in self._deks:
            return self._deks[subject_id]
        key = await self.store.subject_key(subject_id)
        if key is None or key.wrapped is None or key.kid is None:
            return None
        dek = unwrap(self.ring, WrappedKey(key.kid, key.wrapped), subject_id)
        self._deks[subject_id] = dek
        return dek

    @staticmethod
    def seal_json(dek: bytes, data: Any, aad: str) -> bytes:
        return seal(dek, json.dumps(data, sort_keys=True, ensure_ascii=False).encode(), aad.encode())

    async def open_json(self, subject_id: str | None, blob: bytes, aad: str) -> Any:
        if subject_id is None:
            raise SubjectErased()
        dek = await self.dek(subject_id)
        if dek is None:
            raise SubjectErased()
        return json.loads(open_sealed(dek, blob, aad.encode()))

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
        self._deks.pop(subject_id, None)
        return await self.store.shred_subject(subject_id, now)

    async def rotate(self, new_ring: KeyRing) -> int:
        """Re-wrap every live data key under ``new_ring``'s active KEK; entries are untouched."""
        count = 0
        async for key in self.store.subject_keys():
            if key.wrapped is None or key.kid is None:
                continue
            fresh = rewrap(new_ring, WrappedKey(key.kid, key.wrapped), key.subject_id)
            await self.store.replace_wrapped_key(key.subject_id, fresh.kid, fresh.blob)
            count += 1
        self.ring = new_ring
        return count

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

    # -- verification -------------------------------------------------------------------------------

    async def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        return await verify_store(self.store, self.signer.public_key, progress)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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


async def verify_store(
    store: LedgerStore, public_key: Any, progress: Callable[[int, int], None] | None = None, batch: int = 2000
) -> VerifyReport:
    try:
        return await _verify_store(store, public_key, progress, batch)
    except (ValueError, TypeError, KeyError) as exc:  # a row that no longer parses is corruption too
        return VerifyReport(False, -1, 0, f"unreadable ledger data ({type(exc).__name__})")


async def _verify_store(
    store: LedgerStore, public_key: Any, progress: Callable[[int, int], None] | None, batch: int
) -> VerifyReport:
    """Stream every leaf and node, recompute the tree, check every checkpoint's root and signature.

    Memory stays flat: only the frontier (log n hashes) and one batch of rows are held.  The first
    mismatch is reported by leaf index and entry id.
    """
    head = await store.head()
    cps = await store.checkpoints()
    cp_iter = iter(cps)
    next_cp = next(cp_iter, None)
    frontier = Frontier.empty()
    nodes = _pull(store.stream_nodes(batch))
    checked_cps = 0

    async def check_cps() -> VerifyReport | None:
        nonlocal next_cp, checked_cps
        while next_cp is not None and next_cp.size == frontier.size:
            signed = Ledger.from_stored(next_cp)
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
    async for entry in _pull(store.stream_leaves(batch)):
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
    "DecryptionFailed", "Ledger", "LedgerBackend", "LedgerCorrupt", "SubjectErased", "VerifyReport", "verify_store",
]
