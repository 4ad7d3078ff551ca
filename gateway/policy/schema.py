"""Shapes of the policy files in ``config/``.

Facts carry provenance: every recipient and every adequacy decision names its ``source`` and
whether it was ``confirmed`` against a primary text, so privacy staff can see what to check.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    adequacy: list[AdequacyDecision]

    @field_validator("eea")
    @classmethod
    def _no_dupes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("EEA list has duplicates")
        if "EL" in v:
            raise ValueError("use ISO 3166 'GR' for Greece, not the EU's 'EL'")
        return v


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


class EppSettings(ConfigModel):
    contacts: dict[Literal["registrant", "admin", "tech", "billing"], ContactSource] = {}
    extensions: list[Literal["iis", "eurid", "dkhm", "norid", "nominet", "jprs", "neulevel", "cnnic", "ficora"]] = []
    disclose_person: Disclose | None = None
    disclose_organisation: Disclose | None = None
    honours_disclose: bool = True
    contact_id_prefix: Annotated[str, Field(pattern=r"^[A-Z]{2,4}$")] = "RG"


class HttpsSettings(ConfigModel):
    """Where a JSON-over-HTTPS partner takes a registration's released data."""

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/._-]*$")]


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
        return self

    @property
    def sends_personal_data(self) -> bool:
        return any(rule.send != "never" for rule in self.fields.values())
