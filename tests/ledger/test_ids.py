"""Ids that sort by creation time, in the shape of ``uuid4().hex``."""

from __future__ import annotations

import re
import time
import uuid

from gateway.ledger.ids import sortable_id


def test_shape_is_a_version_7_uuid() -> None:
    for _ in range(200):
        value = sortable_id()
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        u = uuid.UUID(value)
        assert u.version == 7 and u.variant == uuid.RFC_4122


def test_ids_follow_the_clock_and_do_not_repeat() -> None:
    first = sortable_id()
    time.sleep(0.002)
    later = [sortable_id() for _ in range(2000)]
    assert all(first < x for x in later)  # a later millisecond sorts after
    assert len(set(later)) == len(later)
    ms = int(first[:12], 16)
    assert abs(ms - time.time_ns() // 1_000_000) < 5_000
