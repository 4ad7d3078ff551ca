"""Art. 12(3) time limits: pure date arithmetic.

A period "of one month" runs to the same day of the next month; when that month is shorter, to its
last day (Regulation (EEC, Euratom) No 1182/71, Art. 3(2)(c): opened 31 January → 28/29 February).
The controller may extend by two further months, with reasons, but must tell the subject within
the first month — so an extension is accepted only up to the original deadline, and only once.
"""

from __future__ import annotations

import calendar
import datetime as dt

ANSWER_MONTHS = 1
MAX_EXTENSION_MONTHS = 2


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day ``months`` later, clamped to the end of the target month."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day.day, last))


def deadline_for(opened: dt.date) -> dt.date:
    """The answer is due one month after the request arrived."""
    return add_months(opened, ANSWER_MONTHS)


def extended_deadline(opened: dt.date) -> dt.date:
    """The latest deadline an extension can give: two further months (three from opening)."""
    return add_months(opened, ANSWER_MONTHS + MAX_EXTENSION_MONTHS)


def extension_refusal(opened: dt.date, today: dt.date, *, already_extended: bool) -> str | None:
    """Why an extension is not allowed today, or None if it is."""
    if already_extended:
        return "the deadline was already extended; Art. 12(3) allows two further months at most"
    if today > deadline_for(opened):
        return "an extension must be notified within one month of receipt of the request"
    return None


def days_left(deadline: dt.date, today: dt.date) -> int:
    """Whole days until the deadline (0 on the day itself, negative once overdue)."""
    return (deadline - today).days
