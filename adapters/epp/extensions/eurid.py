"""EURid (.eu): ``http://www.eurid.eu/xml/epp/contact-ext-1.3``.

Source: EURid's ``contact-ext-1.3.xsd`` (``shared/epp-ext-schemas``, from a public repository; the
sandbox validates against it) and Net::DRI ``Protocol/EPP/Extensions/EURid/Contact.pm``.

* contact create: ``<contact-ext:create>`` type, vat?, lang, whoisEmail?, naturalPerson,
  countryOfCitizenship? -- ``lang`` (two letters) is required by the schema, so a create without
  one is refused here rather than by the registry;
* contact update: ``<contact-ext:update><contact-ext:chg>`` with the same members, all optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import sub, subs, top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["NS", "PREFIX", "SPEC", "EuridContactExt", "EuridContactUpdate"]

NS: Final = "http://www.eurid.eu/xml/epp/contact-ext-1.3"
PREFIX: Final = "contact-ext"


@dataclass(frozen=True)
class EuridContactExt:
    """EURid ``http://www.eurid.eu/xml/epp/contact-ext-1.3`` <contact-ext:create>."""

    type: Literal["registrant", "tech", "billing", "onsite", "reseller"]
    natural_person: bool
    lang: str | None = None
    vat: str | None = None
    whois_email: str | None = None
    country_of_citizenship: str | None = None


@dataclass(frozen=True)
class EuridContactUpdate:
    """EURid ``<contact-ext:update><contact-ext:chg>``; only members that are not ``None`` are sent."""

    vat: str | None = None
    lang: str | None = None
    whois_email: str | None = None
    natural_person: bool | None = None
    country_of_citizenship: str | None = None


def _members(ext: EuridContactExt | EuridContactUpdate) -> tuple[tuple[str, str | None], ...]:
    """The members both shapes share, in XSD sequence order (create puts ``type`` first)."""
    natural = ext.natural_person
    return (
        ("vat", ext.vat),
        ("lang", ext.lang),
        ("whoisEmail", ext.whois_email),
        ("naturalPerson", None if natural is None else ("true" if natural else "false")),
        ("countryOfCitizenship", ext.country_of_citizenship),
    )


def contact_create(ext: EuridContactExt) -> list[etree._Element]:
    if ext.lang is None:
        raise ValueError("EURid contact-ext:create needs lang (contact-ext-1.3.xsd)")
    create = top(PREFIX, NS, "create")
    subs(create, NS, (("type", ext.type), *_members(ext)))
    return [create]


def contact_update(ext: EuridContactUpdate) -> list[etree._Element]:
    members = _members(ext)
    if all(value is None for _, value in members):
        raise ValueError("EURid contact update changes nothing")
    update = top(PREFIX, NS, "update")
    subs(sub(update, NS, "chg"), NS, members)
    return [update]


SPEC: Final = RegistrySpec(
    ext_uri=NS,
    prefix=PREFIX,
    elements={
        (EuridContactExt, "contact:create"): contact_create,
        (EuridContactUpdate, "contact:update"): contact_update,
    },
)
