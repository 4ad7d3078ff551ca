"""Art. 12(3) time limits: pure date arithmetic.

A period "of one month" runs to the same day of the next month; when that month is shorter, to its
last day (Regulation (EEC, Euratom) No 1182/71, Art. 3(2)(c): opened 31 January → 28/29 February).
The controller may extend by two further months, with reasons, but must tell the subject within
the first month — so an extension is accepted only up to the original deadline, and only once.

A deadline that falls on a Saturday, a Sunday or a Swedish public holiday moves to the next working day:
Regulation 1182/71, Art. 3(4), and in Swedish law Lag (1930:173) om beräkning av lagstadgad tid, § 2, which
also counts midsummer eve, Christmas eve and New Year's eve as such days.  The public holidays come from the
``holidays`` library (Sweden, without its "every Sunday" entries); the three eves are added here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools

import holidays

ANSWER_MONTHS = 1
MAX_EXTENSION_MONTHS = 2


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day ``months`` later, clamped to the end of the target month."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day.day, last))


@functools.cache
def _swedish_days_off(year: int) -> dict[dt.date, str]:
    days: dict[dt.date, str] = dict(holidays.country_holidays("SE", years=year, include_sundays=False, language="sv"))
    midsummer = next(d for d, name in days.items() if d.month == 6 and "midsommar" in name.lower())
    days[midsummer - dt.timedelta(days=1)] = "Midsommarafton"
    days[dt.date(year, 12, 24)] = "Julafton"
    days[dt.date(year, 12, 31)] = "Nyårsafton"
    return days


def day_off(day: dt.date) -> str | None:
    """Why ``day`` is no working day in Sweden ("Lördag", "Söndag", the holiday's Swedish name), or None."""
    if day.weekday() == 5:
        return "Lördag"
    if day.weekday() == 6:
        return "Söndag"
    return _swedish_days_off(day.year).get(day)


def next_working_day(day: dt.date) -> dt.date:
    """``day`` itself when it is a working day, else the first working day after it."""
    while day_off(day) is not None:
        day += dt.timedelta(days=1)
    return day


def deadline_for(opened: dt.date) -> dt.date:
    """The answer is due one month after the request arrived (moved off a weekend or holiday)."""
    return next_working_day(add_months(opened, ANSWER_MONTHS))


def extended_deadline(opened: dt.date) -> dt.date:
    """The latest deadline an extension can give: two further months (three from opening), moved off a
    weekend or holiday."""
    return next_working_day(add_months(opened, ANSWER_MONTHS + MAX_EXTENSION_MONTHS))


def near_deadline(deadline: dt.date, today: dt.date, *, within_days: int = 7) -> bool:
    """For the reminder list: due within ``within_days`` (or overdue)."""
    return days_left(deadline, today) <= within_days


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
