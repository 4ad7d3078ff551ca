"""Casework on data-subject requests: whom a request is about, the subject's current values (the
rectification form starts from them), and which requests are near their Art. 12(3) deadline.

The gateway keeps no plain copy of a registrant: what it knows of a person is what it sent, sealed under
the person's data key in the disclosure log.  "Today's values" are therefore those values folded in log
order (a later delivery or correction wins), skipping values a policy transformed on the way out (an
``[SE]`` orgno, an e-mail reduced to its domain), which are not the person's own values.

Everything here but :func:`read_current_values` is pure, so the policy is tested without a store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import SubjectErased
from gateway.ledger.entry import DisclosureEntry
from gateway.policy.schema import RecipientPolicy
from gateway.rights.deadlines import ANSWER_MONTHS, MAX_EXTENSION_MONTHS, add_months, day_off, days_left, near_deadline
from gateway.services.ledger import Ledger
from gateway.store.base import DisclosureFilter, Store

#: The request kinds and the actions that fit each (besides closing and extending, which fit all).
KIND_ACTIONS: Mapping[str, frozenset[str]] = {
    "access": frozenset({"extract"}),
    "rectification": frozenset({"rectify"}),
    "erasure": frozenset({"erase"}),
    "restriction": frozenset({"restrict", "lift"}),
    "objection": frozenset({"object", "lift"}),
}
#: At most this many of a subject's log entries are decrypted to find today's values.
MAX_ENTRIES = 500
#: The reminder list: open requests due within this many days, or overdue.
REMINDER_DAYS = 7
#: The longest internal note.
NOTE_LIMIT = 2000


def actions_for(kind: str) -> frozenset[str]:
    """The actions on the person's data that fit a request of ``kind`` (none for an unknown kind)."""
    return KIND_ACTIONS.get(kind, frozenset())


def fold_values(
    entries: Iterable[tuple[DisclosureEntry, Mapping[str, Any] | None]],
    recipients: Mapping[str, RecipientPolicy],
) -> dict[str, Any]:
    """The subject's current values from ``(entry, its decrypted values)`` in log order: later values win;
    a value a recipient's policy transforms (or a recipient no longer configured) is not the person's own
    and is skipped; ``None`` values (a field removed) remove it."""
    out: dict[str, Any] = {}
    for entry, values in entries:
        if not values:
            continue
        policy = recipients.get(entry.recipient)
        for name, value in values.items():
            rule = policy.fields.get(name) if policy is not None else None
            if rule is None or rule.transform is not None:
                continue
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
    return out


def transformed_only(
    entries: Iterable[tuple[DisclosureEntry, Mapping[str, Any] | None]],
    recipients: Mapping[str, RecipientPolicy], folded: Mapping[str, Any],
) -> list[str]:
    """Fields recipients hold only in a transformed form (the national ID as .se's orgno): the form cannot
    show them, and staff must be told so, or a correction would tell those recipients they were removed."""
    out = set()
    for entry, values in entries:
        policy = recipients.get(entry.recipient)
        for name, value in (values or {}).items():
            rule = policy.fields.get(name) if policy is not None else None
            if value is not None and name not in folded and rule is not None and rule.transform is not None:
                out.add(name)
    return sorted(out)


@dataclass(frozen=True)
class CurrentValues:
    """A subject's values as far as the log shows them, and the fields held only transformed."""

    values: dict[str, Any]
    transformed_only: list[str]


def form_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Current values as the rectification form's fields (``_registrant_fields.html``) take them."""
    names = {"kind": "kind", "name": "name", "organisation": "organisation", "national_id_scheme": "id_scheme",
             "national_id": "id_value", "city": "city", "postal_code": "postal_code", "country": "country",
             "email": "email", "phone": "phone", "language": "language", "citizenship": "citizenship"}
    out = {field: str(values[key]) for key, field in names.items() if isinstance(values.get(key), str)}
    if "id_value" not in out:  # the scheme goes with the number: alone, the form could not be sent
        out.pop("id_scheme", None)
    street = values.get("street")
    if isinstance(street, list | tuple):
        out["street"] = "\n".join(str(line) for line in street)
    elif isinstance(street, str):
        out["street"] = street
    return out


#: Where a rectification form field's validation error belongs: the model's location → the form's field.
_ERROR_FIELDS = {"address": "street", "national_id": "id_value"}
FORM_FIELDS = ("kind", "name", "organisation", "id_scheme", "id_value", "street", "city", "postal_code", "country",
               "email", "phone", "language", "citizenship")


def field_of(loc: Iterable[Any]) -> str:
    """The form field a validation error's ``loc`` names (``["address", "city"]`` → ``city``); "" if none."""
    parts = [str(p) for p in loc if not str(p).isdigit()]
    if not parts:
        return ""
    if parts[0] == "address" and len(parts) > 1:
        return parts[1] if parts[1] in FORM_FIELDS else "street"
    if parts[0] == "national_id":
        return "id_scheme" if parts[-1] == "scheme" else "id_value"
    return parts[0] if parts[0] in FORM_FIELDS else _ERROR_FIELDS.get(parts[0], "")


def error_message(msg: str) -> str:
    """A validation message as a field-level text: pydantic's "Value error, " prefix dropped."""
    text = msg.removeprefix("Value error, ").strip()
    return text[:1].upper() + text[1:] if text else text


@dataclass(frozen=True)
class DeadlineView:
    """A deadline as the pages show it: the date, days left, and the nominal date it was moved from
    (with why that day was off: "Lördag", "Juldagen", ...) when it fell on a weekend or holiday."""

    deadline: dt.date
    days_left: int
    moved_from: dt.date | None
    day_off: str | None


def deadline_view(opened: dt.date, deadline: dt.date, today: dt.date, *, extended: bool) -> DeadlineView:
    """How ``deadline`` came about: one month from ``opened`` (three once extended), moved to the next
    working day when that fell on a day off."""
    nominal = add_months(opened, ANSWER_MONTHS + (MAX_EXTENSION_MONTHS if extended else 0))
    moved = nominal != deadline and day_off(nominal) is not None
    return DeadlineView(deadline, days_left(deadline, today), nominal if moved else None,
                        day_off(nominal) if moved else None)


def reminders(rows: Iterable[Mapping[str, Any]], today: dt.date, *, within_days: int = REMINDER_DAYS
              ) -> list[Mapping[str, Any]]:
    """Open requests due within ``within_days`` or overdue, soonest deadline first."""
    due = [r for r in rows if r.get("state") == "open"
           and near_deadline(dt.date.fromisoformat(str(r["deadline"])), today, within_days=within_days)]
    return sorted(due, key=lambda r: (str(r["deadline"]), str(r["opened_at"])))


async def read_current_values(store: Store, ledger: Ledger, recipients: Mapping[str, RecipientPolicy],
                              subject_id: str) -> CurrentValues | None:
    """Decrypt the subject's entries (at most ``MAX_ENTRIES``) and fold them; None once the data key is
    erased.  The caller records the read in the access log."""
    pairs: list[tuple[DisclosureEntry, Mapping[str, Any] | None]] = []
    try:
        async for e in store.iter_disclosures(DisclosureFilter(subject_id=subject_id), page=100):
            if len(pairs) >= MAX_ENTRIES:
                break
            if e.values_ct is not None:
                pairs.append((e, await ledger.entry_values(e)))
    except SubjectErased:
        return None
    folded = fold_values(pairs, recipients)
    return CurrentValues(folded, transformed_only(pairs, recipients, folded))
