"""The append path's fast leaf (``DisclosureEntry.stored_row`` + ``stored_leaf_bytes``) is the leaf the
verifier's exact pass derives (``row`` + ``leaf_bytes``): one byte apart and every later proof fails."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.entry import STORED_COLUMNS, DisclosureEntry, leaf_bytes
from gateway.ledger.merkle import Frontier, leaf_hash
from gateway.store.rows import tree_rows

_text = st.text(alphabet=string.printable + "åäöŁłżźćńś€\u2028\"\\", max_size=30)
_opt = st.none() | _text


@st.composite
def entries(draw: st.DrawFn) -> DisclosureEntry:
    return DisclosureEntry(
        id=draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        registration_id=draw(_text), recipient=draw(_text), recipient_name=draw(_text),
        recipient_country=draw(_text), category=draw(_text), article=draw(_opt), instrument=draw(_opt),
        purpose=draw(_text), outcome=draw(st.sampled_from(["delivered", "blocked", "refused"])),
        retryable=draw(st.booleans()), fields=tuple(draw(st.lists(_text, max_size=4))),
        withheld=tuple(draw(st.lists(_text, max_size=3))),
        objects=draw(st.dictionaries(_text, _text, max_size=3)), attempted_at=draw(_text),
        recorded_at=draw(_text), payload_digest=draw(_opt), result_code=draw(_opt), sv_trid=draw(_opt),
        cl_trid=draw(_opt), reason=draw(_opt), subject_id=draw(_opt),
        values_ct=draw(st.none() | st.binary(min_size=1, max_size=40)), command=draw(_opt),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(entries(), min_size=1, max_size=5))
def test_tree_rows_hash_the_exact_leaf(batch: list[DisclosureEntry]) -> None:
    fast, slow = Frontier.empty(), Frontier.empty()
    rows = tree_rows(fast, batch)
    for i, (entry, stored) in enumerate(zip(batch, rows.leaves, strict=True)):
        row = entry.row(i)
        assert stored[:-1] == tuple(row[c] for c in STORED_COLUMNS)
        expected = leaf_hash(leaf_bytes(row))
        assert stored[-1] == expected
        slow.append(expected)
    assert fast.root() == slow.root() and fast.size == slow.size == len(batch)
