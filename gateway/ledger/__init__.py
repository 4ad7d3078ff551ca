"""Pure core of the tamper-evident, encrypted disclosure ledger.

Every disclosure of a registrant's personal data is recorded as a leaf of an RFC 9162 Merkle
tree (:mod:`.merkle`) whose heads are signed (:mod:`.checkpoint`), so nobody — including us —
can quietly drop or rewrite a record.  The personal data inside records is sealed under
per-subject keys (:mod:`.keys`) so that erasure is possible by destroying a key, without
breaking the tree.  Nothing in this package touches a database; storage lives elsewhere.
"""

from gateway.errors import DecryptionFailed
from gateway.ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    SignedCheckpoint,
    load_or_create_signing_key,
    verify_checkpoint,
)
from gateway.ledger.keys import BlindIndexer, KeyRing, WrappedKey, new_data_key, open_sealed, rewrap, seal, unwrap, wrap
from gateway.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    Node,
    NodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "BlindIndexer",
    "Checkpoint",
    "CheckpointSigner",
    "DecryptionFailed",
    "Frontier",
    "KeyRing",
    "Node",
    "NodeSource",
    "SignedCheckpoint",
    "WrappedKey",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "load_or_create_signing_key",
    "new_data_key",
    "node_hash",
    "open_sealed",
    "rewrap",
    "root_of",
    "seal",
    "subtree_hash",
    "unwrap",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "wrap",
]
