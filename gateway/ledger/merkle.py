"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing over SHA-256.

We follow the RFC bit for bit rather than inventing a tree of our own: a registrant, a
regulator or an auditor can then check our inclusion and consistency proofs with any
off-the-shelf CT / transparency-log verifier, and the published CT test vectors pin our
implementation down.

Storage model.  The ledger keeps the hash of every *complete aligned* subtree, addressed
``(level, index)``: level 0 index ``i`` is leaf ``i``; level ``k`` index ``i`` covers leaves
``[i * 2**k, (i + 1) * 2**k)``.  Those nodes never change once written (append-only), so a
store can insert them and forget them.  The tree's right edge, which does change, is the
:class:`Frontier`: one hash per set bit of the size.  Every root and proof the RFC defines is
a right-to-left fold of such aligned nodes, which is why proofs here cost O(log n) lookups and
never read old leaves.

Nothing in this module does I/O; node lookups go through a caller-supplied
:data:`NodeSource`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "Node",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``get(level, index)`` returns the stored hash of a complete aligned subtree.  It should
#: raise (e.g. ``KeyError``) for a node it does not hold, never invent one.
NodeSource = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """The 0x00 prefix separates leaves from interior nodes (second-preimage resistance)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node; the 0x01 prefix keeps it from ever equalling a leaf hash."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class Node(NamedTuple):
    """A complete aligned subtree, exactly what a store persists and a :data:`NodeSource` returns."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index: nodes are addressed (level, index)
    hash: bytes


def _split(n: int) -> int:
    """RFC 9162's k: the largest power of two strictly smaller than ``n`` (``n >= 2``).

    Not the midpoint: a midpoint split builds a different, non-interoperable tree for every
    size that is not a power of two, and nothing would flag it.
    """
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect subtrees (largest, leftmost first) the way the RFC's unbalanced tree does.

    RFC MTH splits at the largest power of two below n, so the leftmost perfect subtree is the
    left child of the root and the rest is the right child, recursively: folding right to left
    reproduces that shape exactly.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class Frontier:
    """The right edge of an append-only tree: one perfect-subtree hash per set bit of ``size``.

    Kept small (at most 64 hashes) so a store can hold the whole head in one row, and immutable
    inside (a tuple) so :meth:`copy` is O(1): a writer can append to a copy and only swap it in
    once the new nodes are durably stored.
    """

    __slots__ = ("_hashes", "_size")

    _VERSION = 1

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        edge = tuple(hashes)
        if size < 0:
            raise ValueError("size must be non-negative")
        if len(edge) != size.bit_count():
            raise ValueError("a frontier holds exactly one hash per set bit of its size")
        for h in edge:
            _check_hash(h, "frontier hash")
        self._size = size
        self._hashes: tuple[bytes, ...] = edge

    @classmethod
    def empty(cls) -> Frontier:
        return cls()

    @classmethod
    def from_source(cls, get: NodeSource, size: int) -> Frontier:
        """Rebuild the head from stored nodes, e.g. to cross-check a persisted frontier."""
        return cls(size, (get(level, start >> level) for level, start in _perfect_ranges(0, size)))

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree hashes, largest (leftmost) first."""
        return self._hashes

    def copy(self) -> Frontier:
        clone = Frontier.__new__(Frontier)
        clone._size = self._size
        clone._hashes = self._hashes
        return clone

    __copy__ = copy

    def __deepcopy__(self, memo: object) -> Frontier:
        return self.copy()

    def append(self, leaf: bytes) -> list[Node]:
        """Add one leaf hash; return every complete aligned subtree this append completed.

        The returned nodes (the leaf itself first, then each parent it completed, bottom-up)
        are the only new rows a store ever has to write for this leaf; together with the nodes
        written before they are everything :func:`inclusion_proof` and
        :func:`consistency_proof` will ask for.
        """
        _check_hash(leaf, "leaf hash")
        return self.append_subtree(0, leaf)

    def append_subtree(self, level: int, subtree: bytes) -> list[Node]:
        """Add a complete subtree of ``2**level`` leaves, given by its hash; return every complete aligned
        subtree this completed: the added one first, then each parent it completed, bottom-up.

        The same as appending its leaves one by one, for a caller that hashed those leaves elsewhere (a
        verifier splitting the leaves over processes by aligned range): the size must be a multiple of
        ``2**level``, so the subtree is aligned and the carries above it are the ones the leaves would
        have made.  ``append_subtree(0, h)`` is ``append(h)``."""
        _check_hash(subtree, "subtree hash")
        if level < 0 or self._size & ((1 << level) - 1):
            raise ValueError("a subtree must start at a multiple of its width")
        position = self._size
        width = 1 << level
        created = [Node(level, position >> level, subtree)]
        stack = list(self._hashes)
        acc = subtree
        while (position >> level) & 1:
            acc = node_hash(stack.pop(), acc)
            level += 1
            created.append(Node(level, position >> level, acc))
        stack.append(acc)
        self._hashes = tuple(stack)
        self._size = position + width
        return created

    def root(self) -> bytes:
        """MTH of the whole tree (RFC 9162 §2.1.1)."""
        return _fold(self._hashes)

    def to_bytes(self) -> bytes:
        """``version(1) || size(8, big-endian) || hashes``: fixed layout, safe to persist."""
        return bytes([self._VERSION]) + self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Frontier:
        if len(blob) < 9 or blob[0] != cls._VERSION:
            raise ValueError("not a serialised frontier")
        size = int.from_bytes(blob[1:9], "big")
        body = blob[9:]
        if len(body) != size.bit_count() * HASH_SIZE:
            raise ValueError("serialised frontier has the wrong length for its size")
        return cls(size, (body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __hash__(self) -> int:
        return hash((self._size, self._hashes))

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()[:16]}…)"


def _perfect_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose [start, end) into complete aligned subtrees, largest first, as (level, start).

    Only valid for ranges that are subtrees in the RFC recursion, i.e. ``start`` is a multiple
    of the smallest power of two >= ``end - start``; then every piece is aligned.
    """
    n = end - start
    if n < 0:
        raise ValueError("range end precedes start")
    if n:
        span = 1 << (n - 1).bit_length()
        if start % span:
            raise ValueError("range is not a subtree of the RFC 9162 tree")
    pieces: list[tuple[int, int]] = []
    pos = start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            pieces.append((level, pos))
            pos += 1 << level
    return pieces


def subtree_hash(get: NodeSource, start: int, end: int) -> bytes:
    """MTH of leaves [start, end) as the RFC recursion sees that subtree.

    Every range the RFC's PATH and SUBPROOF recursions produce starts at a multiple of a power
    of two at least its width; such a range is a fold of at most log2(n) stored aligned nodes.
    Other ranges raise ``ValueError``: their MTH is not derivable from aligned nodes and no
    RFC proof needs it.
    """
    return _fold([get(level, pos >> level) for level, pos in _perfect_ranges(start, end)])


def inclusion_proof(get: NodeSource, index: int, tree_size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, leaf-side sibling first.

    Walking down from the root, at most one sibling is not a perfect subtree (the first right
    sibling, before the walk turns left into a perfect half), so the whole proof costs O(log n)
    lookups.
    """
    if not 0 <= index < tree_size:
        raise ValueError("leaf index out of range for tree size")
    siblings: list[tuple[int, int]] = []
    start, end = 0, tree_size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            siblings.append((mid, end))
            end = mid
        else:
            siblings.append((start, mid))
            start = mid
    return [subtree_hash(get, s, e) for s, e in reversed(siblings)]


def consistency_proof(get: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1.

    Empty for ``old_size == new_size`` and for ``old_size == 0`` (every tree extends the empty
    tree; the RFC defines proofs only for 0 < m < n).
    """
    if not 0 <= old_size <= new_size:
        raise ValueError("need 0 <= old_size <= new_size")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end = 0, new_size
    whole = True  # SUBPROOF's b: are we still on the path of the old tree's own root?
    while old_size != end:
        mid = start + _split(end - start)
        if old_size <= mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start = mid
            whole = False
    if not whole:
        # The old tree is not itself a subtree here, so the verifier needs this node's hash.
        ranges.append((start, end))
    return [subtree_hash(get, s, e) for s, e in reversed(ranges)]


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step; any malformed input is simply ``False``."""
    if not _all_hashes(leaf, root, *proof):
        return False
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # fn == sn: skip levels where the right edge has no sibling
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, plus the two cases the RFC leaves to the caller.

    ``old_size == new_size`` holds only with an empty proof and equal roots; ``old_size == 0``
    holds only with an empty proof and the empty-tree root.  Anything else must run the RFC
    algorithm, which rejects an empty proof.
    """
    if not _all_hashes(old_root, new_root, *proof):
        return False
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:  # fn == sn: skip levels where the right edge has no sibling
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


def _all_hashes(*values: object) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC's recursive MTH over in-memory leaf hashes: O(n), for tests and small trees."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))
