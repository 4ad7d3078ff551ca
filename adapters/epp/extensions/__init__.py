"""Registry extensions, one module per registry; ``adapters.epp.xml`` is the only caller.

Each typed extension value (see ``adapters.epp.types``) maps to exactly one namespace and one
builder here, so "which extURI does this command need" and "what XML does it produce" cannot
disagree.  Modules: ``iis`` (.se/.nu), ``eurid`` (.eu), ``dkhm`` (.dk), ``norid`` (.no),
``neulevel`` (.us), ``fi`` (.fi).  Traficom's (.fi) members are not an <extension> at all but sit
inside <contact:create> in the contact namespace: ``amend_contact_create`` adds them, and their
``namespace`` is ``None`` (no extURI to negotiate).
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from adapters.epp.extensions import dkhm, eurid, fi, iis, neulevel, norid
from adapters.epp.types import (
    ContactExtension,
    ContactUpdateExtension,
    DkhmContactExt,
    DomainExtension,
    DomainUpdateExtension,
    EuridContactExt,
    EuridContactUpdate,
    FiContactExt,
    IisContactExt,
    IisContactUpdate,
    IisDomainUpdate,
    NeulevelDomainExt,
    NoridContactExt,
)

__all__ = [
    "SUPPORTED_EXT_URIS",
    "AnyExtension",
    "amend_contact_create",
    "contact_create_elements",
    "contact_update_elements",
    "domain_create_elements",
    "domain_update_elements",
    "namespace",
]

SUPPORTED_EXT_URIS: Final = (iis.NS, eurid.NS, dkhm.NS, norid.NS, neulevel.NS)
"""Extensions we can emit, in login order; login announces only those the server also offers."""

AnyExtension = ContactExtension | ContactUpdateExtension | DomainExtension | DomainUpdateExtension

_NAMESPACES: Final[dict[type, str | None]] = {
    IisContactExt: iis.NS,
    IisContactUpdate: iis.NS,
    IisDomainUpdate: iis.NS,
    EuridContactExt: eurid.NS,
    EuridContactUpdate: eurid.NS,
    DkhmContactExt: dkhm.NS,
    NoridContactExt: norid.NS,
    NeulevelDomainExt: neulevel.NS,
    FiContactExt: None,  # Traficom's members are in the contact namespace itself
}


def namespace(ext: AnyExtension) -> str | None:
    """The extURI an extension value needs (``None``: none); the client checks it was negotiated at login."""
    return _NAMESPACES[type(ext)]


def _wrong(ext: object, where: str) -> ValueError:
    return ValueError(f"{type(ext).__name__} cannot be used on {where}")


def contact_create_elements(ext: ContactExtension) -> list[etree._Element]:
    if isinstance(ext, IisContactExt):
        return iis.contact_create(ext)
    if isinstance(ext, EuridContactExt):
        return eurid.contact_create(ext)
    if isinstance(ext, DkhmContactExt):
        return dkhm.contact_create(ext)
    if isinstance(ext, NoridContactExt):
        return norid.contact_create(ext)
    if isinstance(ext, FiContactExt):
        return []  # see amend_contact_create
    raise _wrong(ext, "contact:create")


def amend_contact_create(create: etree._Element, ext: ContactExtension) -> None:
    """Registry members that go inside <contact:create> itself rather than under <extension>."""
    if isinstance(ext, FiContactExt):
        fi.amend_contact_create(create, ext)


def contact_update_elements(ext: ContactUpdateExtension) -> list[etree._Element]:
    if isinstance(ext, IisContactUpdate):
        return iis.contact_update(ext)
    if isinstance(ext, EuridContactUpdate):
        return eurid.contact_update(ext)
    if isinstance(ext, NoridContactExt):
        return norid.contact_update(ext)
    raise _wrong(ext, "contact:update")


def domain_create_elements(ext: DomainExtension) -> list[etree._Element]:
    if isinstance(ext, NeulevelDomainExt):
        return neulevel.domain(ext)
    raise _wrong(ext, "domain:create")


def domain_update_elements(ext: DomainUpdateExtension) -> list[etree._Element]:
    if isinstance(ext, NeulevelDomainExt):
        return neulevel.domain(ext)
    if isinstance(ext, IisDomainUpdate):
        return iis.domain_update(ext)
    raise _wrong(ext, "domain:update")
