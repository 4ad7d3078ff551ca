"""The fast verifier (issue 9): leaves hashed from the raw stored columns, on SQLite and PostgreSQL.

1. ``stored_leaf_bytes`` (orjson over the stored values) gives exactly ``leaf_bytes`` for any row:
   unicode and control characters, NULLs, the optional ``command`` set and unset, purged values, and
   the odd values (blobs, bools, huge integers) that must take the exact encoder.
2. ``stream_leaf_rows`` returns every stored column of every leaf in order, as the decoded stream does.
3. On an intact ledger the fast pass itself gives the answer, the same as the exact pass; on a
   tampered one it steps aside and the exact pass gives the answer it always gave.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import STORED_COLUMNS, DisclosureEntry, leaf_bytes, stored_leaf_bytes
from gateway.services.ledger import _verify_fast, _verify_store, verify_store
from gateway.store.base import Store
from tests.store.conftest import RawDB, build_ledger

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # any code point but surrogates
maybe = st.none() | text
names = st.lists(text, max_size=4).map(tuple)


@st.composite
def entries(draw: st.DrawFn) -> tuple[DisclosureEntry, int]:
    values_ct = draw(st.none() | st.binary(min_size=1, max_size=16))
    entry = DisclosureEntry(
        id=draw(text), registration_id=draw(text), recipient=draw(text), recipient_name=draw(text),
        recipient_country=draw(text), category=draw(text), article=draw(maybe), instrument=draw(maybe),
        purpose=draw(text), outcome=draw(text), fields=draw(names), withheld=draw(names),
        objects=draw(st.dictionaries(text, text, max_size=3)), attempted_at=draw(text), recorded_at=draw(text),
        retryable=draw(st.booleans()), payload_digest=draw(maybe), result_code=draw(maybe), sv_trid=draw(maybe),
        cl_trid=draw(maybe), reason=draw(maybe), subject_id=draw(maybe), values_ct=values_ct,
        command=draw(maybe),
        # read back, purged: a stored digest and a leaf hash but no ciphertext any more
        leaf_hash=b"h" * 32 if values_ct is None and draw(st.booleans()) else None,
        stored_values_digest=draw(maybe) if values_ct is None else None,
    )
    return entry, draw(st.integers(0, 2**40))


@settings(max_examples=300, deadline=None)
@given(entries())
def test_stored_leaf_bytes_equal_leaf_bytes(case: tuple[DisclosureEntry, int]) -> None:
    entry, index = case
    row = entry.row(index)
    assert stored_leaf_bytes(tuple(row[c] for c in STORED_COLUMNS)) == leaf_bytes(row)


odd = st.booleans() | st.binary(max_size=8) | st.integers(2**64, 2**70) | st.floats(allow_nan=False) | maybe


@settings(max_examples=200, deadline=None)
@given(st.lists(odd, min_size=len(STORED_COLUMNS), max_size=len(STORED_COLUMNS)))
def test_odd_values_take_the_exact_encoder(values: list[Any]) -> None:
    assert stored_leaf_bytes(values) == leaf_bytes(dict(zip(STORED_COLUMNS, values, strict=True)))


async def test_leaf_rows_are_the_stored_columns(store: Store) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, 9, checkpoint_every=4, batch=2)
    decoded = [e async for page in store.stream_leaves(2) for e in page]
    raw = [r async for page in store.stream_leaf_rows(2) for r in page]
    assert [r[0] for r in raw] == list(range(9))
    for entry, r in zip(decoded, raw, strict=True):
        assert r[len(STORED_COLUMNS)] == entry.leaf_hash
        assert r[len(STORED_COLUMNS) + 1] == entry.values_ct
        assert stored_leaf_bytes(r[:len(STORED_COLUMNS)]) == leaf_bytes(entry.row(r[0]))


async def test_fast_pass_answers_an_intact_ledger(store: Store) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, 23, checkpoint_every=5, batch=3)
    seen: list[tuple[int, int]] = []
    fast = await _verify_fast(store, signer.public_key, lambda a, b: seen.append((a, b)), 4, None, NOW)
    exact = await _verify_store(store, signer.public_key, None, 4, None, NOW)
    assert fast is not None and fast.ok
    assert fast == exact
    assert seen[-1] == (23, 23)


async def test_respaced_json_steps_aside_to_the_exact_pass(store: Store, raw: RawDB) -> None:
    """Decoded and re-encoded, ``["a"]`` and ``["a"] `` are one value; stored, they are not."""
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, 6, checkpoint_every=3, batch=2)
    (row,) = await raw.fetch("SELECT fields_json FROM disclosures WHERE leaf_index=?", 4)
    await raw.tamper("disclosures", "UPDATE disclosures SET fields_json=? WHERE leaf_index=?",
                     row["fields_json"] + " ", 4)
    assert await _verify_fast(store, signer.public_key, None, 4, None, NOW) is None
    report = await verify_store(store, signer.public_key, batch=4, now=NOW)
    # the exact pass decodes and re-encodes, so the same value verifies: the answer is as it always was
    assert report.ok
    assert report == await _verify_store(store, signer.public_key, None, 4, None, NOW)


async def test_a_tampered_leaf_is_named_as_before(store: Store, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    entries_ = await build_ledger(store, signer, 8, checkpoint_every=4, batch=2)
    await raw.tamper("disclosures", "UPDATE disclosures SET purpose=? WHERE leaf_index=?", "marketing", 5)
    assert await _verify_fast(store, signer.public_key, None, 4, None, NOW) is None
    report = await verify_store(store, signer.public_key, batch=4, now=NOW)
    assert not report.ok
    assert (report.bad_leaf_index, report.bad_entry_id) == (5, entries_[5].id)
    assert report.problem == "entry at leaf 5 does not match its hash"
