"""Would the registry accept this registration at all?  Pure: (request, policies) → outcomes.

A registry refuses some registrants whatever the gateway sends: .us without a nexus declaration,
.eu for a person neither resident in the EU/EEA nor an EU citizen, .fi for a person with neither a
Finnish identity code nor a birth date.  Accepting such an order would store it, queue it and log
fields as "sent" that the registry then turns away, so the acceptance path refuses it first, before
anything is stored.  The rules are data (``eligibility`` in each recipient file, with its source);
this module only evaluates them.  So is the one fact about the gateway itself that a policy cannot
change: which protocols have an adapter (DENIC's RRI has none).

Outcomes carry rule ids, field paths and the policy's own reason text, never a registrant's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import NotEligible, PolicyRefusal, ProtocolNotSupported
from gateway.models import RegistrationRequest
from gateway.policy.schema import (
    EligibilityRule,
    EligibilityWhen,
    Jurisdictions,
    RecipientPolicy,
    Requirement,
)

#: Protocols the delivery side can speak (EPP pools, HTTPS partners, escrow deposits).  A policy may
#: describe a registry with another protocol (``rri``), but no registration for it is accepted.
SUPPORTED_PROTOCOLS: frozenset[str] = frozenset({"epp", "https", "escrow"})


@dataclass(frozen=True)
class RuleOutcome:
    """One rule against one request: does it apply, is it met, and which field path would fix it."""

    recipient: str
    rule: EligibilityRule
    applies: bool
    met: bool
    field: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return self.applies and not self.met

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "applies": self.applies,
            "met": self.met if self.applies else None,
            "field": ".".join(self.field),
            "require": [_describe(r) for r in self.rule.require],
            "reason": self.rule.reason,
            "source": self.rule.source,
            "confirmed": self.rule.confirmed,
        }


def _describe(req: Requirement) -> str:
    if req.schemes:
        return f"{req.field} ({' or '.join(s.value for s in req.schemes)})"
    if req.countries:
        return f"{req.field} in {' or '.join(req.countries)}"
    return req.field


def _groups(names: Iterable[str], jur: Jurisdictions) -> frozenset[str]:
    return frozenset().union(*(jur.countries(n) for n in names))


def _value(req: RegistrationRequest, path: str) -> object:
    """The request's value at a dotted path (``registrant.address.country``), or None."""
    node: object = req
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


def applies(when: EligibilityWhen, req: RegistrationRequest, jur: Jurisdictions) -> bool:
    reg = req.registrant
    if when.kind is not None and reg.kind != when.kind:
        return False
    country = reg.address.country
    if when.country_in is not None and country not in _groups(when.country_in, jur):
        return False
    return not (when.country_not_in is not None and country in _groups(when.country_not_in, jur))


def satisfied(requirement: Requirement, req: RegistrationRequest, jur: Jurisdictions) -> bool:
    value = _value(req, requirement.field)
    if value is None or value == "":
        return False
    if requirement.schemes is not None:
        nid = req.registrant.national_id
        return nid is not None and nid.scheme in requirement.schemes
    if requirement.countries is not None:
        return isinstance(value, str) and value in _groups(requirement.countries, jur)
    return True


def evaluate(policy: RecipientPolicy, req: RegistrationRequest, jur: Jurisdictions) -> list[RuleOutcome]:
    """Every eligibility rule of ``policy`` against ``req``, in the file's order."""
    out = []
    for rule in policy.eligibility:
        on = applies(rule.when, req, jur)
        met = on and any(satisfied(r, req, jur) for r in rule.require)
        out.append(RuleOutcome(policy.recipient, rule, on, met, tuple(rule.require[0].field.split("."))))
    return out


def refusal(policy: RecipientPolicy, req: RegistrationRequest, jur: Jurisdictions) -> PolicyRefusal | None:
    """Why ``policy``'s recipient would refuse ``req`` before anything is sent, or None.

    The problem follows the shape of a validation problem (``errors``: ``loc``, ``type``, ``msg``), so
    the ordering system finds the field to fix where it finds every other one."""
    if policy.protocol not in SUPPORTED_PROTOCOLS:
        return ProtocolNotSupported(
            f"{policy.recipient} ({policy.name}) speaks '{policy.protocol}', which this gateway cannot send",
            recipient=policy.recipient, protocol=policy.protocol,
            errors=[{"loc": ["domain"], "type": "protocol_not_supported",
                     "msg": f"registrations under .{req.tld} cannot be delivered ({policy.protocol})"}],
        )
    failed = [o for o in evaluate(policy, req, jur) if o.refused]
    if not failed:
        return None
    return NotEligible(
        f"{policy.recipient}: {failed[0].rule.reason}",
        recipient=policy.recipient,
        errors=[{"loc": list(o.field), "type": "registry_ineligible", "msg": o.rule.reason,
                 "rule": o.rule.id} for o in failed],
    )


def acceptance_refusal(
    req: RegistrationRequest, recipients: Sequence[RecipientPolicy], jur: Jurisdictions
) -> PolicyRefusal | None:
    """The first refusal among the required ``recipients`` (the TLD's registry comes first), or None.
    An optional recipient (marketing) never stops a registration, so its rules are not checked here."""
    for policy in recipients:
        if policy.required:
            found = refusal(policy, req, jur)
            if found is not None:
                return found
    return None
