"""Time as the gateway writes it: aware UTC, and one ISO 8601 form (microseconds, ``Z``) for every
stored timestamp, so stored strings sort in time order on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
