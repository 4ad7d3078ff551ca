"""The privacy workbench's reads, written once for both stores: the disclosure log searched, sorted and
counted in SQL (joined with the registration for its domain and order reference), the third-country
transfers grouped by month, recipient and basis, and the access log filtered and paged.

Each store adds one small mixin (``sqlite/workbench.py``, ``postgres/workbench.py``) that only says how
to run a statement and which placeholder it binds with; the SQL text, the row shapes and the grouping are
here, so the two databases answer the same question the same way.  Every value is bound; only fixed
column names and sort keys chosen from a closed table are written into the text.

The log pages by OFFSET rather than by key: staff want page numbers and any column as the sort, and a
filtered log a person pages through is short.  Exports and the ledger's own walks keep the keyset
streams of ``DisclosureReads``.
"""

# Statements are built from fixed column names and sort keys; every value goes through ``bind``.
# ruff: noqa: S608
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.ledger.entry import DisclosureEntry
from gateway.store import rows as R
from gateway.store.base import THIRD_COUNTRY_CATEGORIES

#: The instrument a transfer rests on, in words, as ``gateway.http.pages.disclosures.instrument_label``
#: computes it in Python: the instrument; else the article ("Art. 49(1)(b) derogation" for a derogation);
#: else "" (EU/EEA, no personal data, blocked).
INSTRUMENT_LABEL_SQL = (
    "(CASE WHEN COALESCE(d.instrument, '') <> '' THEN d.instrument "
    "WHEN COALESCE(d.article, '') <> '' THEN (CASE WHEN d.category = 'derogation' "
    "THEN 'Art. ' || d.article || ' derogation' ELSE 'Art. ' || d.article END) ELSE '' END)"
)

#: Sort keys of the log, by the column a person clicks; the leaf index breaks ties (and is "time").
SORTS: Mapping[str, tuple[str, ...]] = {
    "time": ("d.leaf_index",),
    "domain": ("r.domain", "d.leaf_index"),
    "subject": ("d.subject_id", "d.leaf_index"),
    "recipient": ("d.recipient_name", "d.recipient", "d.leaf_index"),
    "country": ("d.recipient_country", "d.leaf_index"),
    "basis": ("d.category", INSTRUMENT_LABEL_SQL, "d.leaf_index"),
    "outcome": ("d.outcome", "d.leaf_index"),
}

_FROM = " FROM disclosures d "
_JOIN_REG = " LEFT JOIN registrations r ON r.id = d.registration_id"


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class LogSearch:
    """What the log page filters on.  Instants are the stored ISO text (``since`` inclusive, ``until``
    exclusive); ``instrument`` is the label in words, "" for none; ``subject_ids`` empty means anyone."""

    recipient: str | None = None
    country: str | None = None
    category: str | None = None
    outcome: str | None = None
    purpose: str | None = None
    instrument: str | None = None
    third_country: bool | None = None
    since: str | None = None
    until: str | None = None
    subject_ids: tuple[str, ...] = ()
    domain: str | None = None  # part of the domain name, any case
    order_ref: str | None = None  # the ordering system's reference, exactly
    sort: str = "time"
    descending: bool = True


@dataclass(frozen=True)
class LogRow:
    """One line of the log: the entry and what its registration says about it."""

    entry: DisclosureEntry
    domain: str | None
    order_ref: str | None


@dataclass(frozen=True)
class TransferCount:
    """Third-country entries of one month, recipient, basis and outcome."""

    month: str  # YYYY-MM (UTC)
    recipient: str
    recipient_name: str
    country: str
    category: str
    instrument: str
    outcome: str
    count: int


@dataclass(frozen=True)
class SubjectTransfers:
    """Third-country entries for one data subject, domain, recipient and basis (for "for whom?")."""

    subject_id: str | None
    domain: str | None
    recipient: str
    recipient_name: str
    country: str
    category: str
    instrument: str
    count: int
    blocked: int
    last_at: str


@dataclass(frozen=True)
class AccessSearch:
    """Filters of the access log ("who read what"); instants as stored ISO text."""

    actor: str | None = None
    action: str | None = None
    subject_id: str | None = None
    since: str | None = None
    until: str | None = None


def log_where(s: LogSearch, bind: R.Params) -> str:
    """The WHERE clause (with the registration joined as ``r``) for ``s``."""
    where: list[str] = []
    for column, value in (("d.recipient", s.recipient), ("d.recipient_country", s.country),
                          ("d.category", s.category), ("d.outcome", s.outcome), ("d.purpose", s.purpose),
                          ("r.order_ref", s.order_ref)):
        if value is not None:
            where.append(f"{column} = {bind(value)}")
    if s.instrument is not None:
        where.append(f"{INSTRUMENT_LABEL_SQL} = {bind(s.instrument)}")
    if s.third_country is not None:
        listed = ", ".join(bind(c) for c in THIRD_COUNTRY_CATEGORIES)
        where.append(f"d.category {'IN' if s.third_country else 'NOT IN'} ({listed})")
    if s.since is not None:
        where.append(f"d.recorded_at >= {bind(s.since)}")
    if s.until is not None:
        where.append(f"d.recorded_at < {bind(s.until)}")
    if s.subject_ids:
        where.append(f"d.subject_id IN ({', '.join(bind(x) for x in s.subject_ids)})")
    if s.domain is not None:
        where.append(f"LOWER(r.domain) LIKE {bind(_like(s.domain.lower()))} ESCAPE '\\'")
    return " WHERE " + " AND ".join(where) if where else ""


def _select_log() -> str:
    """``SELECT_DISCLOSURES`` (every stored column, the sealed values) plus the registration's domain and
    order reference."""
    base = R.SELECT_DISCLOSURES
    if _FROM not in base:
        raise RuntimeError("rows.SELECT_DISCLOSURES no longer reads 'FROM disclosures d'")
    head, tail = base.split(_FROM, 1)
    return f"{head}, r.domain AS wb_domain, r.order_ref AS wb_order_ref{_FROM}{tail}{_JOIN_REG}"


def log_page_sql(s: LogSearch, bind: R.Params, offset: int, limit: int) -> str:
    keys = SORTS.get(s.sort, SORTS["time"])
    direction = "DESC" if s.descending else "ASC"
    order = ", ".join(f"{k} {direction}" for k in keys)
    where = log_where(s, bind)
    return f"{_select_log()}{where} ORDER BY {order} LIMIT {bind(limit)} OFFSET {bind(offset)}"


def log_totals_sql(s: LogSearch, bind: R.Params) -> str:
    where = log_where(s, bind)
    return f"SELECT d.outcome AS outcome, COUNT(*) AS n FROM disclosures d{_JOIN_REG}{where} GROUP BY d.outcome"


def _third_country_range(bind: R.Params, since: str | None, until: str | None) -> str:
    where = [f"d.category IN ({', '.join(bind(c) for c in THIRD_COUNTRY_CATEGORIES)})"]
    if since is not None:
        where.append(f"d.recorded_at >= {bind(since)}")
    if until is not None:
        where.append(f"d.recorded_at < {bind(until)}")
    return " WHERE " + " AND ".join(where)


def transfer_counts_sql(bind: R.Params, since: str | None, until: str | None) -> str:
    label = INSTRUMENT_LABEL_SQL
    cols = "d.recipient, d.recipient_name, d.recipient_country, d.category"
    return (
        f"SELECT SUBSTR(d.recorded_at, 1, 7) AS month, {cols}, {label} AS label, d.outcome AS outcome, "
        f"COUNT(*) AS n FROM disclosures d{_third_country_range(bind, since, until)} "
        f"GROUP BY SUBSTR(d.recorded_at, 1, 7), {cols}, {label}, d.outcome ORDER BY month, d.recipient"
    )


def subject_transfers_sql(bind: R.Params, since: str | None, until: str | None, limit: int) -> str:
    label = INSTRUMENT_LABEL_SQL
    cols = "d.subject_id, r.domain, d.recipient, d.recipient_name, d.recipient_country, d.category"
    return (
        f"SELECT {cols}, {label} AS label, COUNT(*) AS n, "
        f"SUM(CASE WHEN d.outcome = 'blocked' THEN 1 ELSE 0 END) AS blocked, MAX(d.recorded_at) AS last_at "
        f"FROM disclosures d{_JOIN_REG}{_third_country_range(bind, since, until)} "
        f"GROUP BY {cols}, {label} ORDER BY MAX(d.recorded_at) DESC, r.domain, d.recipient LIMIT {bind(limit)}"
    )


def access_where(s: AccessSearch, bind: R.Params) -> str:
    where: list[str] = []
    for column, value in (("actor", s.actor), ("action", s.action), ("subject_id", s.subject_id)):
        if value is not None:
            where.append(f"{column} = {bind(value)}")
    if s.since is not None:
        where.append(f"at >= {bind(s.since)}")
    if s.until is not None:
        where.append(f"at < {bind(s.until)}")
    return " WHERE " + " AND ".join(where) if where else ""


def access_page_sql(s: AccessSearch, bind: R.Params, offset: int, limit: int) -> str:
    return (f"SELECT id, at, actor, action, object_id, subject_id FROM access_log{access_where(s, bind)} "
            f"ORDER BY id DESC LIMIT {bind(limit)} OFFSET {bind(offset)}")


def access_count_sql(s: AccessSearch, bind: R.Params) -> str:
    return f"SELECT COUNT(*) AS n FROM access_log{access_where(s, bind)}"


class WorkbenchReads:
    """The workbench's queries over a store that runs SQL; a store mixes in a subclass that supplies
    ``_wb_mark`` (its placeholder) and ``_wb_rows`` (run one statement, rows addressable by name)."""

    @staticmethod
    def _wb_mark(n: int) -> str:
        raise NotImplementedError

    async def _wb_rows(self, sql: str, values: Sequence[Any]) -> Sequence[Any]:
        raise NotImplementedError

    def _wb_bind(self) -> R.Params:
        return R.Params(self._wb_mark)

    async def log_search(self, s: LogSearch, *, offset: int = 0, limit: int = 50) -> list[LogRow]:
        """One page of the log for ``s``, sorted as it asks."""
        bind = self._wb_bind()
        sql = log_page_sql(s, bind, max(0, offset), max(1, limit))
        rows = await self._wb_rows(sql, bind.values)
        return [LogRow(DisclosureEntry.from_row(r), r["wb_domain"], r["wb_order_ref"]) for r in rows]

    async def log_totals(self, s: LogSearch) -> dict[str, int]:
        """How many entries match ``s``, by outcome."""
        bind = self._wb_bind()
        rows = await self._wb_rows(log_totals_sql(s, bind), bind.values)
        return {str(r["outcome"]): int(r["n"]) for r in rows}

    async def transfer_counts(self, since: str | None, until: str | None) -> list[TransferCount]:
        """Third-country entries recorded in [since, until), by month, recipient, basis and outcome."""
        bind = self._wb_bind()
        rows = await self._wb_rows(transfer_counts_sql(bind, since, until), bind.values)
        return [TransferCount(r["month"], r["recipient"], r["recipient_name"], r["recipient_country"], r["category"],
                              r["label"], r["outcome"], int(r["n"])) for r in rows]

    async def subject_transfers(
        self, since: str | None, until: str | None, *, limit: int = 500
    ) -> list[SubjectTransfers]:
        """Third-country entries in [since, until) per subject, domain, recipient and basis, latest first."""
        bind = self._wb_bind()
        rows = await self._wb_rows(subject_transfers_sql(bind, since, until, limit), bind.values)
        return [SubjectTransfers(r["subject_id"], r["domain"], r["recipient"], r["recipient_name"],
                                 r["recipient_country"], r["category"], r["label"], int(r["n"]), int(r["blocked"]),
                                 r["last_at"]) for r in rows]

    async def access_search(self, s: AccessSearch, *, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """One page of the access log for ``s``, newest first."""
        bind = self._wb_bind()
        rows = await self._wb_rows(access_page_sql(s, bind, max(0, offset), max(1, limit)), bind.values)
        return [dict(r) for r in rows]

    async def access_count(self, s: AccessSearch) -> int:
        bind = self._wb_bind()
        rows = await self._wb_rows(access_count_sql(s, bind), bind.values)
        return int(rows[0]["n"]) if rows else 0

    async def access_facets(self) -> tuple[list[str], list[str]]:
        """The people and the kinds of read the access log holds, for the filter's choices."""
        actors = await self._wb_rows("SELECT DISTINCT actor FROM access_log ORDER BY actor", ())
        actions = await self._wb_rows("SELECT DISTINCT action FROM access_log ORDER BY action", ())
        return [str(r["actor"]) for r in actors], [str(r["action"]) for r in actions]
