"""Query strings, validated by one typed model per route.

A route that reads its query string declares a :class:`QueryModel` subclass and calls
:func:`parse_query` (``q = parse_query(MyQuery, request.query)``).  The field types below are shared
by the JSON API and the staff pages, so the two can no longer disagree about what a recipient id, a
cursor or a timestamp looks like (they used to keep two regex tables that did).

Why not ``str.isdigit()`` and ``int()``: ``isdigit`` is true for superscripts ("²") that ``int``
refuses, and ``int`` accepts Arabic-Indic digits, underscores and 4,300-digit numbers that no
cursor needs.  Numbers here are ASCII digits only, at most 19 of them.  Timestamps are checked to
stay inside the years 1-9999 *after* conversion to UTC, so ``9999-12-31T23:59:59-01:00`` is refused
instead of overflowing later.

Errors are :class:`~gateway.errors.QueryInvalid` problems with ``["query", name]`` paths and rule
names; a rejected value is never quoted, and an unknown parameter's name only when it is a plain
identifier.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

from multidict import MultiMapping
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from gateway.clock import iso
from gateway.errors import QueryInvalid
from gateway.models import visible_text
from gateway.policy.schema import TransferCategory
from gateway.store.base import DisclosureFilter

__all__ = [
    "Category", "Country", "Day", "DisclosureListQuery", "Flag", "Hex32", "Instant", "Instrument", "Limit",
    "LogFilterQuery", "Outcome", "Purpose", "QueryModel", "RecipientId", "Seq", "parse_query",
]

_ASCII_INT = re.compile(r"[0-9]{1,19}")
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _ascii_int(value: Any) -> Any:
    if isinstance(value, str):
        if not _ASCII_INT.fullmatch(value):
            raise PydanticCustomError("int_parsing", "must be a whole number written in ASCII digits")
        return int(value)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "must be 'true' or 'false'")
        return value == "true"
    return value


def _instant(value: Any) -> Any:
    """An ISO 8601 date or date-time (naive means UTC), as an aware UTC datetime."""
    if not isinstance(value, str):
        return value
    if not _INSTANT.fullmatch(value):
        raise PydanticCustomError("datetime_parsing", "must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z")
    try:
        t = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError("datetime_parsing", "must be a valid ISO 8601 date-time") from None
    if t.tzinfo is None:
        return t.replace(tzinfo=dt.UTC)
    try:
        return t.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        raise PydanticCustomError("datetime_range", "must fall within the years 1-9999 in UTC") from None


def _day(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not _DAY.fullmatch(value):
        raise PydanticCustomError("date_parsing", "must be a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_parsing", "must be a valid calendar date") from None


def _instrument(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return visible_text(value)
        except ValueError:
            raise PydanticCustomError("string_characters", "must be visible text") from None
    return value


#: A recipient policy's id.
RecipientId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")]
#: ISO 3166-1 alpha-2, upper case.
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Category = TransferCategory
Outcome = Literal["delivered", "possibly_delivered", "refused", "deleted", "failed", "blocked"]
#: A registration, subject or entry id.
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Purpose = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
#: A transfer instrument's label as shown on the pages: visible text only.
Instrument = Annotated[str, Field(min_length=1, max_length=300), BeforeValidator(_instrument)]
#: ``true`` or ``false``, nothing else ("1", "yes" and "on" are refused, not guessed).
Flag = Annotated[bool, BeforeValidator(_flag)]
#: A leaf index, keyset cursor or tree size: 0 … 2**62, ASCII digits.
Seq = Annotated[int, BeforeValidator(_ascii_int), Field(ge=0, le=2**62)]
#: A page size.
Limit = Annotated[int, BeforeValidator(_ascii_int), Field(ge=1, le=1000)]
#: An instant, aware and in UTC, within the years 1-9999 once converted.
Instant = Annotated[dt.datetime, BeforeValidator(_instant)]
#: A calendar day (the pages' date inputs).
Day = Annotated[dt.date, BeforeValidator(_day)]


class QueryModel(BaseModel):
    """The base of every route's query model: unknown parameters refused, values never echoed.

    ``blank_means_absent``: an HTML form submits every input, empty ones as ``name=``; the pages set
    it so an empty (or blank) value counts as not given, and values are stripped.  The API keeps it
    off: ``?country=`` there is a mistake worth a 422.  A field with an alias (``from`` is a keyword)
    is read under its alias only."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    blank_means_absent: ClassVar[bool] = False


Q = TypeVar("Q", bound=QueryModel)


def _is_sequence(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation) in (list, tuple)


def parse_query(model: type[Q], query: Mapping[str, str] | MultiMapping[str]) -> Q:
    """``query`` (e.g. ``request.query``) as ``model``, or a :class:`QueryInvalid` problem.

    A name given twice is refused unless its field is a list or tuple (then every value counts), so a
    second ``?limit=`` cannot slip past the first one's check."""
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for key in dict.fromkeys(query):  # each name once, in order
        if isinstance(query, MultiMapping):
            values = list(query.getall(key))
        else:
            values = [query[key]]
        if model.blank_means_absent:
            values = [v.strip() for v in values if v.strip()]
            if not values:
                continue
        field = fields.get(key)
        if field is not None and _is_sequence(field.annotation):
            data[key] = values
        elif len(values) > 1:
            where = ["query", key] if field is not None or _SAFE_NAME.fullmatch(key) else ["query"]
            errors.append({"loc": where, "type": "multiple_values", "msg": "given more than once"})
        else:
            data[key] = values[0]
    if not errors:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False, include_context=False):
                loc = [str(p)[:64] for p in e["loc"]]
                if loc and loc[0] not in fields and not _SAFE_NAME.fullmatch(loc[0]):
                    loc = loc[1:]  # an unknown parameter's name is input: name it only if harmless
                msg = "unknown query parameter" if e["type"] == "extra_forbidden" else e["msg"]
                errors.append({"loc": ["query", *loc], "type": e["type"], "msg": msg})
    first = errors[0]["loc"][1] if len(errors[0]["loc"]) > 1 else None
    detail = f"query parameter '{first}' is not valid" if first else "a query parameter is not valid"
    raise QueryInvalid(detail, errors=errors)


# -- the routes' models -----------------------------------------------------------------------------


class DisclosureListQuery(QueryModel):
    """``GET /v1/disclosures``: the filters, the page size and the keyset cursor."""

    recipient: RecipientId | None = None
    country: Country | None = None
    category: Category | None = None
    outcome: Outcome | None = None
    registration_id: Hex32 | None = None
    subject_id: Hex32 | None = None
    third_country: Flag | None = None
    since: Instant | None = None
    until: Instant | None = None
    limit: Limit = 100
    after: Seq | None = None

    def store_filter(self) -> DisclosureFilter:
        return DisclosureFilter(
            recipient=self.recipient, country=self.country,
            category=None if self.category is None else self.category.value, outcome=self.outcome,
            registration_id=self.registration_id, subject_id=self.subject_id, third_country=self.third_country,
            since=None if self.since is None else iso(self.since),
            until=None if self.until is None else iso(self.until),
            after_seq=-1 if self.after is None else self.after, limit=self.limit,
        )


class LogFilterQuery(QueryModel):
    """The staff pages' disclosure log (``/ui/disclosures``, its CSV export and its filter form): the
    API's filters where they overlap, days instead of instants (date inputs; ``until`` is inclusive),
    and the filters only the pages have.  ``subject`` (the typed identifier, or ``unmatched``) is the
    page's own business and not part of this model; a form's ``csrf`` is ignored with it."""

    model_config = ConfigDict(extra="ignore")
    blank_means_absent: ClassVar[bool] = True

    recipient: RecipientId | None = None
    country: Country | None = None
    category: Category | None = None
    outcome: Outcome | None = None
    purpose: Purpose | None = None
    third_country: Flag | None = None
    instrument: Instrument | None = None
    since: Day | None = None
    until: Day | None = None
    subject_id: Annotated[tuple[Hex32, ...], Field(max_length=20)] = ()
    after: Seq | None = None
