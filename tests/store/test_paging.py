"""The one keyset-paging loop (gateway/store/paging.py), on its own: which pages it asks for and when it stops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from gateway.store.paging import keyset_pages

ROWS = [(k, f"row-{k}") for k in range(0, 30, 3)]  # keys 0, 3, ..., 27


Row = tuple[int, str]


def source(size: int) -> tuple[list[int], Callable[[int], Awaitable[Sequence[Row]]]]:
    """A keyset-paged table: rows with a key greater than ``after``, ``size`` at a time; and its log of reads."""
    asked: list[int] = []

    async def fetch(after: int) -> Sequence[Row]:
        asked.append(after)
        return [r for r in ROWS if r[0] > after][:size]

    return asked, fetch


async def walk(size: int, *, stop_short: bool, start: int = -1) -> tuple[list[list[int]], list[int]]:
    asked, fetch = source(size)
    pages = keyset_pages(fetch, lambda r: r[0], start, size=size if stop_short else None)
    return [[k for k, _ in page] async for page in pages], asked


@pytest.mark.parametrize("stop_short", [False, True])
async def test_pages_follow_the_last_key_of_each_page(stop_short: bool) -> None:
    pages, asked = await walk(4, stop_short=stop_short)
    assert pages == [[0, 3, 6, 9], [12, 15, 18, 21], [24, 27]]
    # without ``size`` the walk only ends at an empty page; with it, a short page is the last
    assert asked == ([-1, 9, 21] if stop_short else [-1, 9, 21, 27])


@pytest.mark.parametrize("stop_short", [False, True])
async def test_a_full_last_page_needs_one_empty_read(stop_short: bool) -> None:
    pages, asked = await walk(5, stop_short=stop_short)
    assert pages == [[0, 3, 6, 9, 12], [15, 18, 21, 24, 27]]
    assert asked == [-1, 12, 27]


async def test_the_walk_starts_after_start_and_may_find_nothing() -> None:
    assert await walk(4, stop_short=False, start=20) == ([[21, 24, 27]], [20, 27])
    assert await walk(4, stop_short=True, start=27) == ([], [27])


async def test_rows_added_behind_the_walk_are_picked_up_until_it_ends() -> None:
    """A table still being appended to: the next page starts from the last key seen, not a count."""
    table = [1, 2, 3]

    async def fetch(after: int) -> Sequence[int]:
        if after == 2:  # appended while the walk is under way
            table.extend([4, 5])
        return [k for k in table if k > after][:2]

    pages = [list(p) async for p in keyset_pages(fetch, lambda k: k, 0)]
    assert pages == [[1, 2], [3, 4], [5]]
