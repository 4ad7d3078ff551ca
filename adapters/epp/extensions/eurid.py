"""EURid (.eu): ``http://www.eurid.eu/xml/epp/contact-ext-1.3``.

Source: Net::DRI ``Protocol/EPP/Extensions/EURid/Contact.pm`` (create and update shapes); the XSD
is not redistributable, so the sandbox checks the elements by hand in XSD sequence order.

* contact create: ``<contact-ext:create>`` type, vat?, lang?, whoisEmail?, naturalPerson,
  countryOfCitizenship?;
* contact update: ``<contact-ext:update><contact-ext:chg>`` with the same members, all optional.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from adapters.epp._xmlutil import sub, top
from adapters.epp.types import EuridContactExt, EuridContactUpdate

NS: Final = "http://www.eurid.eu/xml/epp/contact-ext-1.3"
PREFIX: Final = "contact-ext"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def contact_create(ext: EuridContactExt) -> list[etree._Element]:
    create = top(PREFIX, NS, "create")
    sub(create, NS, "type", ext.type)
    if ext.vat is not None:
        sub(create, NS, "vat", ext.vat)
    if ext.lang is not None:
        sub(create, NS, "lang", ext.lang)
    if ext.whois_email is not None:
        sub(create, NS, "whoisEmail", ext.whois_email)
    sub(create, NS, "naturalPerson", _bool(ext.natural_person))
    if ext.country_of_citizenship is not None:
        sub(create, NS, "countryOfCitizenship", ext.country_of_citizenship)
    return [create]


def contact_update(ext: EuridContactUpdate) -> list[etree._Element]:
    values = (
        ("vat", ext.vat),
        ("lang", ext.lang),
        ("whoisEmail", ext.whois_email),
        ("naturalPerson", None if ext.natural_person is None else _bool(ext.natural_person)),
        ("countryOfCitizenship", ext.country_of_citizenship),
    )
    if all(value is None for _, value in values):
        raise ValueError("EURid contact update changes nothing")
    update = top(PREFIX, NS, "update")
    chg = sub(update, NS, "chg")
    for name, value in values:
        if value is not None:
            sub(chg, NS, name, value)
    return [update]
