"""Shapes of the policy files in ``config/``.

Facts carry provenance: every recipient and every adequacy decision names its ``source`` and
whether it was ``confirmed`` against a primary text, so privacy staff can see what to check.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.models import IdScheme

CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
FidesKey = Annotated[str, Field(pattern=r"^(user|system)(\.[a-z_]+)+$")]


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(ConfigModel):
    source: Annotated[str, Field(min_length=3)]
    confirmed: bool


class AdequacyDecision(Provenance):
    country: CountryCode
    territory: str
    decision: Annotated[str, Field(min_length=3)]
    adopted: dt.date
    valid_until: dt.date | None = None
    scope: str

    @model_validator(mode="after")
    def _window(self) -> AdequacyDecision:
        if self.valid_until is not None and self.valid_until <= self.adopted:
            raise ValueError("valid_until must be after adopted")
        return self

    def in_force(self, on: dt.date) -> bool:
        return self.adopted <= on and (self.valid_until is None or on <= self.valid_until)


class Jurisdictions(ConfigModel):
    eea: Annotated[list[CountryCode], Field(min_length=1)]
    eea_source: str
    #: The EU member states alone (a subset of ``eea``): some rules name citizens of a member state
    #: (EURid's), which an Icelander, a Liechtensteiner or a Norwegian is not.
    eu: list[CountryCode] = []
    adequacy: list[AdequacyDecision]

    @field_validator("eea", "eu")
    @classmethod
    def _no_dupes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("country list has duplicates")
        if "EL" in v:
            raise ValueError("use ISO 3166 'GR' for Greece, not the EU's 'EL'")
        return v

    @model_validator(mode="after")
    def _eu_in_eea(self) -> Jurisdictions:
        outside = sorted(set(self.eu) - set(self.eea))
        if outside:
            raise ValueError(f"EU members missing from the EEA list: {', '.join(outside)}")
        return self

    def countries(self, group: str) -> frozenset[str]:
        """A group name used by eligibility rules (``EEA``, ``EU``) or one country code, as a set."""
        if group == "EEA":
            return frozenset(self.eea)
        if group == "EU":
            return frozenset(self.eu)
        return frozenset({group})


class FieldInfo(ConfigModel):
    category: FidesKey
    description: str
    epp: str | None = None


class FieldCatalog(ConfigModel):
    """Registrant fields the gateway knows, each with its Fides data category."""

    fields: dict[str, FieldInfo]


class TransferCategory(StrEnum):
    NO_PERSONAL_DATA = "no_personal_data"
    EEA = "eea"
    ADEQUACY = "adequacy"
    SAFEGUARD = "safeguard"
    DEROGATION = "derogation"
    BLOCKED = "blocked"


class Safeguard(Provenance):
    """An Art. 46/47 instrument in place with this recipient."""

    article: Literal["46(2)(a)", "46(2)(b)", "46(2)(c)", "46(2)(d)", "46(2)(e)", "46(2)(f)", "46(3)(a)", "47"]
    instrument: Annotated[str, Field(min_length=3)]
    signed: dt.date
    valid_until: dt.date | None = None

    def in_force(self, on: dt.date) -> bool:
        return self.signed <= on and (self.valid_until is None or on <= self.valid_until)


class Derogation(Provenance):
    article: Literal[
        "49(1)(a)", "49(1)(b)", "49(1)(c)", "49(1)(d)", "49(1)(e)", "49(1)(f)", "49(1)(g)", "49(1) second"
    ]
    justification: Annotated[str, Field(min_length=10)]
    purposes: Annotated[list[str], Field(min_length=1)]


class Transform(StrEnum):
    """Named, pure transformations a policy may apply to a field before it leaves."""

    IIS_ORGNO = "iis_orgno"  # [CC]number, Internetstiftelsen's orgno element
    EMAIL_DOMAIN_ONLY = "email_domain_only"
    UPPERCASE = "uppercase"


class FieldRule(ConfigModel):
    send: Literal["always", "never", "if_present"]
    transform: Transform | None = None
    required: bool = False
    only_for: Literal["person", "organisation"] | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> FieldRule:
        if self.send == "never" and (self.transform or self.required):
            raise ValueError("a field that never goes cannot be transformed or required")
        if self.send == "always" and not self.required:
            object.__setattr__(self, "required", True)
        return self


class ContactSource(StrEnum):
    SUBJECT = "subject"  # a contact object made from the registrant's minimised data
    REGISTRAR = "registrar"  # the registrar's own role contact (no subject data)


class Disclose(ConfigModel):
    """RFC 5733 <contact:disclose>: flag plus the elements it applies to."""

    flag: Literal[0, 1]
    elements: Annotated[
        list[Literal["name", "org", "addr", "voice", "fax", "email"]], Field(min_length=1)
    ]


#: Registry extensions the EPP adapter implements (``adapters/epp/extensions/``: ``ficora`` is ``fi.py``).
#: A policy naming any other would have its registry's data sent without it, so it stops start-up.
ExtensionName = Literal["iis", "eurid", "dkhm", "norid", "neulevel", "ficora"]
IMPLEMENTED_EXTENSIONS: tuple[str, ...] = get_args(ExtensionName)


def _implemented_extension(value: object) -> object:
    """Runs before the ``Literal`` check so the loader's message says what is wrong, not just what is
    allowed: ``extension 'nominet' has no implementation``."""
    if isinstance(value, str) and value not in IMPLEMENTED_EXTENSIONS:
        raise ValueError(
            f"extension '{value}' has no implementation (implemented: {', '.join(IMPLEMENTED_EXTENSIONS)})"
        )
    return value


class EppSettings(ConfigModel):
    contacts: dict[Literal["registrant", "admin", "tech", "billing"], ContactSource] = {}
    extensions: list[Annotated[ExtensionName, BeforeValidator(_implemented_extension)]] = []
    disclose_person: Disclose | None = None
    disclose_organisation: Disclose | None = None
    honours_disclose: bool = True
    contact_id_prefix: Annotated[str, Field(pattern=r"^[A-Z]{2,4}$")] = "RG"


class HttpsSettings(ConfigModel):
    """Where a JSON-over-HTTPS partner takes a registration's released data."""

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/._-]*$")]


#: Request fields an eligibility rule may ask for, as paths in the registration request (the problem
#: of a refused registration names the path, so the ordering system knows what to add or change).
EligibilityField = Literal[
    "registrant.national_id",
    "registrant.birth_date",
    "registrant.citizenship",
    "registrant.address.country",
    "registrant.vat_number",
    "us_nexus",
]
#: A country code, or a group that ``jurisdictions.yaml`` defines.
CountryOrGroup = Annotated[str, Field(pattern=r"^([A-Z]{2}|EEA|EU)$")]
_COUNTRY_FIELDS = ("registrant.citizenship", "registrant.address.country")


class EligibilityWhen(ConfigModel):
    """Which registrants a rule applies to; every condition given must hold (none: everyone)."""

    kind: Literal["person", "organisation"] | None = None
    #: the registrant's address is in one of these countries
    country_in: list[CountryOrGroup] | None = None
    #: the registrant's address is in none of these countries
    country_not_in: list[CountryOrGroup] | None = None


class Requirement(ConfigModel):
    """One way to meet a rule: ``field`` is present, and (for an ID number) of one of ``schemes``, or
    (for a country) one of ``countries``."""

    field: EligibilityField
    schemes: Annotated[list[IdScheme], Field(min_length=1)] | None = None
    countries: Annotated[list[CountryOrGroup], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _fits_field(self) -> Requirement:
        if self.schemes is not None and self.field != "registrant.national_id":
            raise ValueError("'schemes' applies to registrant.national_id only")
        if self.countries is not None and self.field not in _COUNTRY_FIELDS:
            raise ValueError(f"'countries' applies to {' and '.join(_COUNTRY_FIELDS)} only")
        return self


class EligibilityRule(Provenance):
    """What the registry itself refuses, checked at acceptance so a registration it would refuse is
    never accepted, stored or queued.  ``require`` lists alternatives: meeting any one is enough; a
    refusal names the first one's field path, so list the one the ordering system can most easily
    supply first.  ``reason`` goes into the problem as is: write it without personal values."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,60}$")]
    when: EligibilityWhen = EligibilityWhen()
    require: Annotated[list[Requirement], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=10, max_length=300)]


class RecipientPolicy(Provenance):
    recipient: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")]
    name: str
    kind: Literal["registry", "escrow", "email", "payment", "marketing", "address_lookup"]
    role: Literal["controller", "processor"]
    tlds: list[Annotated[str, Field(pattern=r"^[a-z0-9-]{2,63}$")]] = []
    country: CountryCode
    protocol: Literal["epp", "rri", "https", "escrow"]
    #: Which registrations this recipient receives: its own TLDs (registries), gTLD names only
    #: (registrar data escrow, RAA 3.6), every registration (partners), or none (on request only).
    on_registration: Literal["tld", "gtld", "all", "never"] = None  # type: ignore[assignment]
    #: A refusal of a required recipient stops the whole registration (fail closed); an optional
    #: one (marketing) is refused alone and the registration goes on.
    required: bool = True
    enabled: bool = True
    https: HttpsSettings | None = None
    purposes: Annotated[list[str], Field(min_length=1)]
    fields: dict[str, FieldRule]
    safeguards: list[Safeguard] = []
    derogation: Derogation | None = None
    epp: EppSettings | None = None
    retention: str | None = None
    #: The registry's own rules on who may hold a name, checked at acceptance (``gateway.policy.eligibility``).
    eligibility: list[EligibilityRule] = []

    @model_validator(mode="after")
    def _protocol_settings(self) -> RecipientPolicy:
        if self.protocol == "epp" and self.epp is None:
            raise ValueError("an EPP recipient needs an 'epp' section")
        if self.kind == "registry" and not self.tlds:
            raise ValueError("a registry recipient needs at least one TLD")
        if self.on_registration is None:  # default by kind: registries by TLD, escrow gTLDs, others on request
            default = {"registry": "tld", "escrow": "gtld"}.get(self.kind, "never")
            object.__setattr__(self, "on_registration", default)
        if self.kind == "registry" and self.on_registration != "tld":
            raise ValueError("a registry receives the registrations of its own TLDs (on_registration: tld)")
        if self.kind != "registry" and self.on_registration == "tld":
            raise ValueError("only registries are chosen by TLD; say gtld, all or never")
        if self.protocol == "https" and self.https is None and self.on_registration != "never":
            raise ValueError("an https recipient needs an 'https' section with its path")
        if self.kind == "marketing" and (self.required or "marketing" not in self.purposes):
            raise ValueError("marketing is never required for a registration and its purpose is 'marketing'")
        if self.epp and self.epp.contacts and not any(
            r.send != "never" for r in self.fields.values()
        ) and ContactSource.SUBJECT in self.epp.contacts.values():
            raise ValueError("subject contacts requested but no field is sent")
        ids = [r.id for r in self.eligibility]
        if len(set(ids)) != len(ids):
            raise ValueError("eligibility rule ids must be unique")
        return self

    @property
    def sends_personal_data(self) -> bool:
        return any(rule.send != "never" for rule in self.fields.values())
