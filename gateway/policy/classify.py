"""Chapter V classification of one transfer: a pure function of (recipient, facts, time).

The order of the checks is the order of the GDPR: no personal data → nothing to ground;
EU/EEA → no Chapter V; Art. 45 adequacy in force on the transfer date; Art. 46/47 safeguard in
force; Art. 49 derogation for this purpose; otherwise blocked.  Facts are evaluated at the
transfer time, so a decision that expired (or a contract that ended) blocks even if the config
still lists it.  The delivery worker asks again at the moment of sending (``classify_at_send``): a
registration accepted inside a decision's window and sent after it ends must not go out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.policy.schema import Jurisdictions, RecipientPolicy, TransferCategory


@dataclass(frozen=True)
class TransferDecision:
    category: TransferCategory
    country: str
    article: str | None
    instrument: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    reason: str
    confirmed: bool = True

    @property
    def allowed(self) -> bool:
        return self.category is not TransferCategory.BLOCKED

    @property
    def third_country(self) -> bool:
        return self.category not in (TransferCategory.EEA, TransferCategory.NO_PERSONAL_DATA)

    def as_dict(self) -> dict[str, object]:
        return {
            "category": self.category.value,
            "country": self.country,
            "article": self.article,
            "instrument": self.instrument,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "reason": self.reason,
            "confirmed": self.confirmed,
        }


def classify_transfer(
    recipient: RecipientPolicy,
    jurisdictions: Jurisdictions,
    at: dt.datetime,
    purpose: str,
    *,
    carries_personal_data: bool = True,
) -> TransferDecision:
    if at.tzinfo is None:
        raise ValueError("transfer time must be timezone-aware")
    on = at.astimezone(dt.UTC).date()
    country = recipient.country

    if not carries_personal_data:
        return TransferDecision(
            TransferCategory.NO_PERSONAL_DATA, country, None, None, None, None,
            "policy releases no personal data to this recipient",
        )
    if country in jurisdictions.eea:
        return TransferDecision(
            TransferCategory.EEA, country, None, None, None, None, "recipient established in the EU/EEA"
        )
    for decision in jurisdictions.adequacy:
        if decision.country == country and decision.in_force(on):
            return TransferDecision(
                TransferCategory.ADEQUACY, country, "45", decision.decision, decision.adopted,
                decision.valid_until, f"adequacy decision in force on {on.isoformat()}",
                confirmed=decision.confirmed and recipient.confirmed,
            )
    for safeguard in recipient.safeguards:
        if safeguard.in_force(on):
            return TransferDecision(
                TransferCategory.SAFEGUARD, country, safeguard.article, safeguard.instrument,
                safeguard.signed, safeguard.valid_until, f"Art. {safeguard.article} safeguard in force",
                confirmed=safeguard.confirmed,
            )
    derog = recipient.derogation
    if derog is not None and purpose in derog.purposes:
        return TransferDecision(
            TransferCategory.DEROGATION, country, derog.article, None, None, None, derog.justification,
            confirmed=derog.confirmed,
        )
    return TransferDecision(
        TransferCategory.BLOCKED, country, None, None, None, None, _blocked_reason(recipient, jurisdictions, on)
    )


def classify_at_send(
    recipient: RecipientPolicy,
    jurisdictions: Jurisdictions,
    at: dt.datetime,
    purpose: str,
    *,
    carries_personal_data: bool = True,
) -> TransferDecision:
    """The Chapter V basis at the moment of sending, for the delivery worker.

    The decision stored with an outbox row was taken at acceptance; a registration accepted the day
    before an adequacy decision or a contract ends and sent after it has no basis any more.  So the
    worker asks again with the send time: the same checks as :func:`classify_transfer`, the same
    ``TransferDecision`` (``allowed``, ``reason``, ``as_dict()`` for the disclosure entry), taken at
    ``at``.  A blocked answer means nothing may be sent; its reason names what ended and when."""
    return classify_transfer(
        recipient, jurisdictions, at, purpose, carries_personal_data=carries_personal_data
    )


def _blocked_reason(recipient: RecipientPolicy, jurisdictions: Jurisdictions, on: dt.date) -> str:
    """Why nothing grounds the transfer on ``on``, naming the decision or safeguard that ended (the
    latest) or has not begun (the next), so staff see at once whether a renewal is missing."""
    day = on.isoformat()
    decisions = [d for d in jurisdictions.adequacy if d.country == recipient.country]
    notes = _window_notes(
        [(f"adequacy decision {d.decision}", d.adopted, d.valid_until) for d in decisions], on
    ) + _window_notes(
        [(f"Art. {s.article} safeguard {s.instrument}", s.signed, s.valid_until) for s in recipient.safeguards], on
    )
    detail = f" ({'; '.join(notes)})" if notes else ""
    if decisions:
        return f"adequacy decision not in force on {day}{detail} and no safeguard or derogation"
    if recipient.safeguards:
        return f"no adequacy decision, and no safeguard in force on {day}{detail} nor a derogation"
    return "third country without adequacy decision, safeguard or derogation"


def _window_notes(windows: list[tuple[str, dt.date, dt.date | None]], on: dt.date) -> list[str]:
    ended = [(name, end) for name, _, end in windows if end is not None and end < on]
    future = [(name, start) for name, start, _ in windows if start > on]
    notes = []
    if ended:
        name, end = max(ended, key=lambda w: w[1])
        notes.append(f"{name} ended on {end.isoformat()}")
    if future:
        name, start = min(future, key=lambda w: w[1])
        notes.append(f"{name} starts only on {start.isoformat()}")
    return notes
