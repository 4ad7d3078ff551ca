"""Chapter V classification of one transfer: a pure function of (recipient, facts, time).

The order of the checks is the order of the GDPR: no personal data → nothing to ground;
EU/EEA → no Chapter V; Art. 45 adequacy in force on the transfer date; Art. 46/47 safeguard in
force; Art. 49 derogation for this purpose; otherwise blocked.  Facts are evaluated at the
transfer time, so a decision that expired (or a contract that ended) blocks even if the config
still lists it.
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
    expired = [d.decision for d in jurisdictions.adequacy if d.country == country]
    reason = (
        f"adequacy decision not in force on {on.isoformat()} and no safeguard or derogation"
        if expired
        else "third country without adequacy decision, safeguard or derogation"
    )
    return TransferDecision(TransferCategory.BLOCKED, country, None, None, None, None, reason)
