"""Internetstiftelsen (.se, .nu): ``urn:se:iis:xml:epp:iis-1.2``.

Source: the element shapes in ``shared/reference/registries.md`` (iis-1.2.xsd as carried by
metaregistrar/php-epp-client, Net::DRI ``Protocol/EPP/Extensions/SE``).  The XSD itself is the
registry's copyright and not redistributed, so the sandbox checks these elements by hand.

* contact create: ``<iis:create>`` with ``orgno`` (``[CC]number``, required) and optional ``vatno``;
* contact update: ``<iis:update>`` with ``vatno`` only (.se does not let an orgno change);
* domain update:  ``<iis:update>`` with ``clientDelete`` (0/1: delete at expiry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lxml import etree

from adapters.epp._xmlutil import sub, subs, top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["NS", "PREFIX", "SPEC", "IisContactExt", "IisContactUpdate", "IisDomainUpdate"]

NS: Final = "urn:se:iis:xml:epp:iis-1.2"
PREFIX: Final = "iis"


@dataclass(frozen=True)
class IisContactExt:
    """Internetstiftelsen (.se/.nu) ``urn:se:iis:xml:epp:iis-1.2`` <iis:create>."""

    orgno: str | None = None  # "[SE]802405-0190"
    vatno: str | None = None


@dataclass(frozen=True)
class IisContactUpdate:
    """.se/.nu ``<iis:update>`` on a contact: only the VAT number may change (the orgno is fixed)."""

    vatno: str


@dataclass(frozen=True)
class IisDomainUpdate:
    """.se/.nu ``<iis:update>`` on a domain: ``clientDelete`` asks the registry to delete at expiry."""

    client_delete: bool


def contact_create(ext: IisContactExt) -> list[etree._Element]:
    create = top(PREFIX, NS, "create")
    subs(create, NS, (("orgno", ext.orgno), ("vatno", ext.vatno)))
    return [create]


def contact_update(ext: IisContactUpdate) -> list[etree._Element]:
    update = top(PREFIX, NS, "update")
    sub(update, NS, "vatno", ext.vatno)
    return [update]


def domain_update(ext: IisDomainUpdate) -> list[etree._Element]:
    update = top(PREFIX, NS, "update")
    sub(update, NS, "clientDelete", "1" if ext.client_delete else "0")
    return [update]


SPEC: Final = RegistrySpec(
    ext_uri=NS,
    prefix=PREFIX,
    elements={
        (IisContactExt, "contact:create"): contact_create,
        (IisContactUpdate, "contact:update"): contact_update,
        (IisDomainUpdate, "domain:update"): domain_update,
    },
)
