"""What one ledger append writes to SQLite's WAL (issue 9, schema 7): the ledger's own B-trees are
appended at their right edge, one page each, and the ones schema 6 had beside them are gone."""

from __future__ import annotations

from pathlib import Path

from tests.ledger.wal_pages import ledger_frames_by_tree, raw_frames


async def test_an_append_writes_one_page_of_each_ledger_tree(tmp_path: Path) -> None:
    n = 200
    trees = await ledger_frames_by_tree(tmp_path, warmup=2048, n=n)
    # schema 6 wrote about 8 pages here: nodes in a rowid table with its key and a born index beside it,
    # values in a rowid table with an index on the random entry id
    assert "ledger_nodes_born" not in trees and "sqlite_autoindex_entry_values_1" not in trees
    assert trees["ledger_nodes"] < 1.6 and trees["entry_values"] < 1.3 and trees["ledger_head"] <= 1.0
    assert trees["ledger_nodes"] + trees["entry_values"] + trees["ledger_head"] < 3.8, trees
    # the rest is the leaf row and the disclosures' own indexes (some keyed by random ids)
    total = sum(trees.values())
    assert total < 14, trees  # schema 6: 16.8
    assert raw_frames(tmp_path, warmup=2048, n=n) < 2
