"""Per-recipient minimisation: a pure function of (registrant, policy) → what may leave.

Default deny: a field the policy does not name never goes.  The result lists every registrant
field either as sent (with its value after transformation) or as withheld with a reason, so the
transfer plan and the disclosure log can show both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.models import SCHEME_COUNTRY, IdScheme, Registrant
from gateway.policy.schema import Disclose, RecipientPolicy, Transform

Value = str | tuple[str, ...]


def registrant_fields(reg: Registrant) -> dict[str, Value | None]:
    """Flatten the registrant into the field names that policies and fields.yaml speak."""
    nid = reg.national_id
    return {
        "kind": reg.kind,
        "name": reg.name,
        "organisation": reg.organisation,
        "national_id": nid.value if nid else None,
        "national_id_scheme": nid.scheme.value if nid else None,
        "vat_number": reg.vat_number,
        "street": tuple(reg.address.street),
        "city": reg.address.city,
        "state": reg.address.state,
        "postal_code": reg.address.postal_code,
        "country": reg.address.country,
        "email": reg.email,
        "phone": reg.phone,
        "fax": reg.fax,
        "language": reg.language,
        "citizenship": reg.citizenship,
        "birth_date": reg.birth_date.isoformat() if reg.birth_date else None,
    }




def _iis_orgno(reg: Registrant) -> str | None:
    """Internetstiftelsen's ``[CC]number``: Swedish numbers as 10 digits with a hyphen."""
    nid = reg.national_id
    if nid is None:
        return None
    cc = SCHEME_COUNTRY[nid.scheme] or reg.address.country
    value = nid.value
    if nid.scheme in (IdScheme.SE_PERSONNUMMER, IdScheme.SE_SAMORDNINGSNUMMER):
        value = f"{value[2:8]}-{value[8:]}"
    return f"[{cc}]{value}"


def _apply(transform: Transform, name: str, value: Value, reg: Registrant) -> Value | None:
    match transform:
        case Transform.IIS_ORGNO:
            return _iis_orgno(reg) if name == "national_id" else None
        case Transform.EMAIL_DOMAIN_ONLY:
            return value.rsplit("@", 1)[1] if isinstance(value, str) and "@" in value else None
        case Transform.UPPERCASE:
            return value.upper() if isinstance(value, str) else tuple(v.upper() for v in value)


@dataclass(frozen=True)
class Minimised:
    recipient: str
    values: dict[str, Value] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    missing_required: tuple[str, ...] = ()
    disclose: Disclose | None = None

    @property
    def fields_sent(self) -> tuple[str, ...]:
        return tuple(sorted(self.values))


def minimise(reg: Registrant, policy: RecipientPolicy) -> Minimised:
    values: dict[str, Value] = {}
    withheld: dict[str, str] = {}
    missing: list[str] = []
    for name, value in registrant_fields(reg).items():
        rule = policy.fields.get(name)
        if rule is None:
            if value is not None:
                withheld[name] = "not named by policy"
            continue
        if rule.send == "never":
            if value is not None:
                withheld[name] = rule.reason or "policy: never sent"
            continue
        if rule.only_for is not None and rule.only_for != reg.kind:
            if value is not None:
                withheld[name] = f"policy: only for {rule.only_for}"
            continue
        if value is None:
            if rule.required:
                missing.append(name)
            continue
        out = _apply(rule.transform, name, value, reg) if rule.transform else value
        if out is None:
            withheld[name] = "transform not applicable"
            if rule.required:
                missing.append(name)
            continue
        values[name] = out
    disclose = None
    if policy.epp is not None and policy.epp.honours_disclose:
        disclose = policy.epp.disclose_person if reg.kind == "person" else policy.epp.disclose_organisation
    return Minimised(policy.recipient, values, withheld, tuple(sorted(missing)), disclose)
