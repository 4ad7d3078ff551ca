"""The one keyset-paging loop behind every stream a store offers.

Leaves, tree nodes, subject keys and filtered disclosures are all read the same way: ask for the rows
after the last key seen, hand the page on, repeat.  Keyset paging (``WHERE key > last ORDER BY key
LIMIT n``) rather than OFFSET or a cursor held open, so each page costs one index seek however deep
the walk is, no connection or lock is held between pages, and memory stays at one page.  Written
once here; each store supplies only its SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

K = TypeVar("K")
R = TypeVar("R")


async def keyset_pages(
    fetch: Callable[[K], Awaitable[Sequence[R]]],
    key: Callable[[R], K],
    start: K,
    *,
    size: int | None = None,
) -> AsyncIterator[Sequence[R]]:
    """Pages of ``fetch(after)``: first after ``start``, then after ``key`` of each page's last row.

    The walk ends at an empty page.  Given ``size`` (what ``fetch`` asks for), it also ends at a page
    shorter than that, saving the final empty round trip; without it, a walk over a table that is
    still being appended to keeps reading until it finds nothing more, as the tree streams do.
    """
    after = start
    while True:
        rows = await fetch(after)
        if not rows:
            return
        yield rows
        if size is not None and len(rows) < size:
            return
        after = key(rows[-1])
