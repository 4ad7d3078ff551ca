"""RFC 9162 Merkle tree: the module against an independent reference and published CT vectors.

The reference below is written straight from the RFC's recursive definitions over plain lists
(MTH, PATH, SUBPROOF) and shares no code with ``gateway.ledger.merkle`` beyond hashlib, so a
shared misreading would have to be made twice.
"""

from __future__ import annotations

import copy
import hashlib

import pytest

from gateway.ledger import merkle as m

# --------------------------------------------------------------------------------------------
# Independent reference (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1)


def ref_leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def ref_node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH over leaf *hashes* (the leaf hashing is done once, up front)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = ref_k(len(d))
    return ref_node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(i: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if i < k:
        return [*ref_path(i, d[:k]), ref_mth(d[k:])]
    return [*ref_path(i - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(mm: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if mm == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if mm <= k:
        return [*ref_subproof(mm, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(mm - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(mm: int, d: list[bytes]) -> list[bytes]:
    if mm in (0, len(d)):
        return []
    return ref_subproof(mm, d, True)


def ref_nodes(d: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete aligned subtree of the tree over ``d``, by brute force."""
    out: dict[tuple[int, int], bytes] = {}
    level = 0
    while (1 << level) <= len(d):
        w = 1 << level
        for i in range(len(d) // w):
            out[(level, i)] = ref_mth(d[i * w : (i + 1) * w])
        level += 1
    return out


# --------------------------------------------------------------------------------------------
# Fixtures

MAX = 64
LEAVES = [ref_leaf(i.to_bytes(2, "big") + b"leaf") for i in range(200)]
ROOTS = [ref_mth(LEAVES[:n]) for n in range(MAX + 1)]


class Source:
    """A NodeSource over the nodes a Frontier emitted: the shape a real store has."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        f = m.Frontier.empty()
        for lh in leaves:
            for node in f.append(lh):
                assert (node.level, node.index) not in self.nodes
                self.nodes[(node.level, node.index)] = node.hash
        self.frontier = f
        self.lookups = 0

    def __call__(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.nodes[(level, index)]


SRC = Source(LEAVES[:MAX])


# --------------------------------------------------------------------------------------------
# Known vectors

CT_DATA = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
# Published in certificate-transparency-go / Trillian / transparency-dev merkle testonly, roots
# for sizes 1..8; confirmed against several independent copies.
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [  # (0-based leaf index, tree size, proof)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (
        2,
        8,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_empty_root() -> None:
    assert m.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert m.root_of([]) == m.EMPTY_ROOT
    assert m.Frontier.empty().root() == m.EMPTY_ROOT


def test_hash_prefixes() -> None:
    assert m.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = m.leaf_hash(b"a"), m.leaf_hash(b"b")
    assert m.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert m.node_hash(a, b) != m.node_hash(b, a)


def test_ct_vectors() -> None:
    leaves = [m.leaf_hash(d) for d in CT_DATA]
    src = Source(leaves)
    f = m.Frontier.empty()
    for n in range(1, 9):
        f.append(leaves[n - 1])
        assert m.root_of(leaves[:n]).hex() == CT_ROOTS[n - 1]
        assert f.root().hex() == CT_ROOTS[n - 1]
        assert m.subtree_hash(src, 0, n).hex() == CT_ROOTS[n - 1]
    for index, size, proof in CT_INCLUSION:
        assert [p.hex() for p in m.inclusion_proof(src, index, size)] == proof
        assert m.verify_inclusion(
            leaves[index], index, size, [bytes.fromhex(p) for p in proof], bytes.fromhex(CT_ROOTS[size - 1])
        )
    for old, new, proof in CT_CONSISTENCY:
        assert [p.hex() for p in m.consistency_proof(src, old, new)] == proof
        assert m.verify_consistency(
            old,
            new,
            bytes.fromhex(CT_ROOTS[old - 1]),
            bytes.fromhex(CT_ROOTS[new - 1]),
            [bytes.fromhex(p) for p in proof],
        )


# --------------------------------------------------------------------------------------------
# Exhaustive agreement with the reference


def test_roots_match_reference() -> None:
    for n in range(MAX + 1):
        assert m.root_of(LEAVES[:n]) == ROOTS[n]
        assert m.subtree_hash(SRC, 0, n) == ROOTS[n]


def test_inclusion_proofs_match_reference_and_verify() -> None:
    for n in range(1, MAX + 1):
        for i in range(n):
            SRC.lookups = 0
            proof = m.inclusion_proof(SRC, i, n)
            assert proof == ref_path(i, LEAVES[:n]), (i, n)
            assert SRC.lookups <= 2 * n.bit_length(), (i, n, SRC.lookups)
            assert m.verify_inclusion(LEAVES[i], i, n, proof, ROOTS[n])


def test_consistency_proofs_match_reference_and_verify() -> None:
    for n in range(0, MAX + 1):
        for old in range(0, n + 1):
            SRC.lookups = 0
            proof = m.consistency_proof(SRC, old, n)
            assert proof == ref_proof(old, LEAVES[:n]), (old, n)
            assert SRC.lookups <= 2 * n.bit_length() + 1, (old, n, SRC.lookups)
            assert m.verify_consistency(old, n, ROOTS[old], ROOTS[n], proof), (old, n)


def test_subtree_hash_rejects_ranges_outside_the_rfc_recursion() -> None:
    with pytest.raises(ValueError):
        m.subtree_hash(SRC, 1, 3)  # width 2, not aligned
    with pytest.raises(ValueError):
        m.subtree_hash(SRC, 4, 3)
    assert m.subtree_hash(SRC, 8, 13) == ref_mth(LEAVES[8:13])


def test_proof_generation_rejects_bad_arguments() -> None:
    for i, n in [(0, 0), (5, 5), (-1, 5)]:
        with pytest.raises(ValueError):
            m.inclusion_proof(SRC, i, n)
    for old, new in [(5, 4), (-1, 3)]:
        with pytest.raises(ValueError):
            m.consistency_proof(SRC, old, new)


# --------------------------------------------------------------------------------------------
# Verifiers reject everything else


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_tampered_inclusion_fails() -> None:
    junk = hashlib.sha256(b"junk").digest()
    for n in range(1, 33):
        for i in range(n):
            proof = ref_path(i, LEAVES[:n])
            root = ROOTS[n]
            leaf = LEAVES[i]
            assert not m.verify_inclusion(_flip(leaf), i, n, proof, root)
            assert not m.verify_inclusion(leaf, i, n, proof, _flip(root))
            assert not m.verify_inclusion(leaf, i, n, [*proof, junk], root)
            assert not m.verify_inclusion(leaf, i, n + 1, proof, ROOTS[n + 1])
            assert not m.verify_inclusion(leaf, n, n, proof, root)
            assert not m.verify_inclusion(leaf, -1, n, proof, root)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j])
                assert not m.verify_inclusion(leaf, i, n, bad, root)
            if proof:
                assert not m.verify_inclusion(leaf, i, n, proof[:-1], root)
                assert not m.verify_inclusion(leaf, i, n, [*proof[:-1], proof[-1][:31]], root)
            for j in range(n):
                if j != i:
                    assert not m.verify_inclusion(leaf, j, n, proof, root), (i, j, n)
            for other in range(i + 1, MAX + 1):
                # Claiming another size fails against that size's signed root.  (Against the
                # *same* root it can pass when both sizes give the leaf the same path shape,
                # e.g. leaf 0 in sizes 3 and 4; the size comes from the signed head, so that
                # is harmless and inherent to RFC 9162.)
                if other != n:
                    assert not m.verify_inclusion(leaf, i, other, proof, ROOTS[other]), (i, n, other)


def test_tampered_consistency_fails() -> None:
    junk = hashlib.sha256(b"junk").digest()
    for n in range(1, 33):
        for old in range(1, n):
            proof = ref_proof(old, LEAVES[:n])
            assert not m.verify_consistency(old, n, _flip(ROOTS[old]), ROOTS[n], proof)
            assert not m.verify_consistency(old, n, ROOTS[old], _flip(ROOTS[n]), proof)
            assert not m.verify_consistency(old, n, ROOTS[old], ROOTS[n], [])
            assert not m.verify_consistency(old, n, ROOTS[old], ROOTS[n], [*proof, junk])
            assert not m.verify_consistency(old, n, ROOTS[old], ROOTS[n], proof[:-1])
            assert not m.verify_consistency(n, old, ROOTS[n], ROOTS[old], proof)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j])
                assert not m.verify_consistency(old, n, ROOTS[old], ROOTS[n], bad)
            for other in range(1, n):
                if other != old:
                    assert not m.verify_consistency(other, n, ROOTS[other], ROOTS[n], proof), (old, other, n)
            if n + 1 <= MAX:
                assert not m.verify_consistency(old, n + 1, ROOTS[old], ROOTS[n + 1], proof)


def test_consistency_degenerate_cases() -> None:
    assert m.verify_consistency(4, 4, ROOTS[4], ROOTS[4], [])
    assert not m.verify_consistency(4, 4, ROOTS[4], ROOTS[5], [])
    assert not m.verify_consistency(4, 4, ROOTS[4], ROOTS[4], [ROOTS[1]])
    assert m.verify_consistency(0, 8, m.EMPTY_ROOT, ROOTS[8], [])
    assert not m.verify_consistency(0, 8, ROOTS[1], ROOTS[8], [])
    assert not m.verify_consistency(0, 8, m.EMPTY_ROOT, ROOTS[8], [ROOTS[8]])
    assert not m.verify_consistency(3, 8, ROOTS[3][:31], ROOTS[8], ref_proof(3, LEAVES[:8]))


# --------------------------------------------------------------------------------------------
# Frontier


def test_frontier_matches_reference_for_sizes_0_to_200() -> None:
    f = m.Frontier.empty()
    assert f.size == 0
    expected_nodes: dict[tuple[int, int], bytes] = {}
    for n in range(1, len(LEAVES) + 1):
        before = set(ref_nodes(LEAVES[: n - 1])) if n <= 65 else None
        created = f.append(LEAVES[n - 1])
        assert f.size == n
        assert f.root() == ref_mth(LEAVES[:n]) == m.root_of(LEAVES[:n])
        assert created[0] == m.Node(0, n - 1, LEAVES[n - 1])
        for node in created:
            expected_nodes[(node.level, node.index)] = node.hash
        if before is not None:
            full = ref_nodes(LEAVES[:n])
            # Exactly the complete subtrees that did not exist before this append, bottom-up.
            assert [(c.level, c.index) for c in created] == sorted(set(full) - before)
            assert all(full[(c.level, c.index)] == c.hash for c in created)
    assert expected_nodes == ref_nodes(LEAVES)


def test_frontier_round_trip_and_copy() -> None:
    f = m.Frontier.empty()
    assert m.Frontier.from_bytes(f.to_bytes()) == f
    assert f.to_bytes() == bytes.fromhex("010000000000000000")
    for n, lh in enumerate(LEAVES[:100], start=1):
        f.append(lh)
        blob = f.to_bytes()
        g = m.Frontier.from_bytes(blob)
        assert g == f and g.size == n and g.root() == f.root()
        assert len(blob) == 9 + 32 * n.bit_count()
    assert m.Frontier.from_source(Source(LEAVES[:100]), 100) == f

    snapshot = f.copy()
    also = copy.copy(f)
    deep = copy.deepcopy(f)
    f.append(LEAVES[100])
    assert snapshot.size == also.size == deep.size == 100
    assert snapshot.root() == ref_mth(LEAVES[:100])
    assert f.root() == ref_mth(LEAVES[:101])


def test_frontier_rejects_malformed_input() -> None:
    f = m.Frontier.empty()
    for lh in LEAVES[:5]:
        f.append(lh)
    blob = f.to_bytes()
    for bad in [b"", blob[:-1], blob + b"\x00", b"\x02" + blob[1:], blob[:1] + (7).to_bytes(8, "big") + blob[9:]]:
        with pytest.raises(ValueError):
            m.Frontier.from_bytes(bad)
    with pytest.raises(ValueError):
        f.append(b"short")
    with pytest.raises(ValueError):
        m.Frontier(3, [LEAVES[0]])


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_append_subtree_is_appending_its_leaves(level: int) -> None:
    """A verifier hashing aligned ranges elsewhere joins their subtree hashes: the same nodes, carries and
    root as appending every leaf, for any number of whole ranges followed by any tail of single leaves."""
    width = 1 << level
    for ranges in range(0, 11):
        for tail in range(0, width):
            n = ranges * width + tail
            if n > len(LEAVES):
                continue
            one_by_one, joined = m.Frontier.empty(), m.Frontier.empty()
            leaf_nodes: list[m.Node] = []
            for h in LEAVES[:n]:
                leaf_nodes.extend(one_by_one.append(h))
            upper: list[m.Node] = []
            for r in range(ranges):
                piece = LEAVES[r * width:(r + 1) * width]
                created = joined.append_subtree(level, m.root_of(piece))
                assert created[0] == m.Node(level, r, m.root_of(piece))
                upper.extend(created)
            for h in LEAVES[ranges * width:n]:
                upper.extend(joined.append(h))
            assert joined == one_by_one and joined.root() == m.root_of(LEAVES[:n])
            # every node at or above the subtrees' level, as appending the leaves made them
            assert [c for c in upper if c.level >= level] == [c for c in leaf_nodes if c.level >= level]


def test_append_subtree_refuses_a_misaligned_subtree() -> None:
    f = m.Frontier.empty()
    f.append(LEAVES[0])
    with pytest.raises(ValueError, match="multiple of its width"):
        f.append_subtree(1, LEAVES[1])
    with pytest.raises(ValueError, match="32 bytes"):
        f.append_subtree(0, b"short")
    assert f.size == 1
