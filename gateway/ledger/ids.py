"""Row ids that sort by creation time (the UUIDv7 layout of RFC 9562, as 32 hex digits).

Why: a random id (uuid4) as a B-tree key sends every insert to a random leaf page, so an append rewrites a
page somewhere in the middle of each id index: most of the WAL pages a ledger append wrote were such
index pages.  An id whose high bits are the millisecond clock lands next to the previous one, on the last
page.  74 random bits remain, so ids stay unguessable and collisions stay out of reach; the creation
time they reveal is already on the row (``recorded_at``, ``created_at``).
"""

from __future__ import annotations

import os
import time


def sortable_id() -> str:
    """A new id: 48 bits of Unix milliseconds, the version (7), 12 random bits, the variant, 62 random
    bits; 32 lowercase hex digits, the same shape as ``uuid4().hex`` so every pattern that accepts one
    accepts it."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | ((rand >> 62) & 0xFFF) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    return f"{value:032x}"
