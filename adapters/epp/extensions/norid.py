"""Norid (.no): contact identities in ``http://www.norid.no/xsd/no-ext-contact-1.0``.

Source: Net::DRI ``Protocol/EPP/Extensions/NO/Contact.pm`` (written by Norid) and
metaregistrar/php-epp-client's Norid module.  Norid announces several namespaces: ``no-ext-epp-1.0``
is the umbrella for Norid-only *commands* (withdraw, transfer execute, facets), while a contact's
type and identity travel in ``no-ext-contact-1.0``, which is what is built here.  The schemas are
not available to us, so the sandbox checks these elements by hand.

* contact create: ``<no-ext-contact:create>`` type, identity(@type)?  -- every contact says whether it
  is a ``person``, an ``organization`` or a ``role`` (Net::DRI sends the type for persons too); an
  organisation is identified by its organisation number, a person by a national identity number
  when one is released, else by nothing (Norid then treats it as an unidentified person);
* contact update: ``<no-ext-contact:update><no-ext-contact:chg>`` identity(@type).

Not implemented: mobilePhone, extra e-mail, organization / roleContact links, the Norid disclose
element, domain applicant declarations (no-ext-domain-1.1) and no-ext-epp commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import sub, top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["NS", "NS_EPP_EXT", "PREFIX", "SPEC", "NoridContactExt", "NoridIdentityType", "contact_type"]

NS: Final = "http://www.norid.no/xsd/no-ext-contact-1.0"
NS_EPP_EXT: Final = "http://www.norid.no/xsd/no-ext-epp-1.0"
"""Norid's command-extension namespace (named in registries.md); not needed for identities."""
PREFIX: Final = "no-ext-contact"

NoridIdentityType = Literal[
    "organizationNumber", "localIdentity", "nationalIdentityNumber", "anonymousPersonIdentifier"
]


@dataclass(frozen=True)
class NoridContactExt:
    """Norid (.no) ``http://www.norid.no/xsd/no-ext-contact-1.0`` identity of a contact.

    ``contact_type`` defaults from the identity: an organisation number makes an ``organization``
    contact, every other identity (or none) a ``person``.  ``identity_type``/``identity`` are both
    given or both ``None`` (a person without a released number).  In a ``ContactUpdate`` only the
    identity is sent (``<no-ext-contact:chg>``); the contact type cannot change.
    """

    identity_type: NoridIdentityType | None = None
    identity: str | None = None  # organizationNumber: the nine digits of Enhetsregisteret
    contact_type: Literal["person", "organization", "role"] | None = None


def contact_type(ext: NoridContactExt) -> str:
    if ext.contact_type is not None:
        return ext.contact_type
    return "organization" if ext.identity_type == "organizationNumber" else "person"


def _identity(parent: etree._Element, ext: NoridContactExt) -> None:
    if (ext.identity is None) != (ext.identity_type is None):
        raise ValueError("a Norid identity needs both its type and its value")
    if ext.identity is not None and ext.identity_type is not None:
        sub(parent, NS, "identity", ext.identity).set("type", ext.identity_type)


def contact_create(ext: NoridContactExt) -> list[etree._Element]:
    create = top(PREFIX, NS, "create")
    sub(create, NS, "type", contact_type(ext))
    _identity(create, ext)
    return [create]


def contact_update(ext: NoridContactExt) -> list[etree._Element]:
    if ext.identity is None:
        raise ValueError("a Norid contact update changes nothing without an identity")
    update = top(PREFIX, NS, "update")
    _identity(sub(update, NS, "chg"), ext)
    return [update]


SPEC: Final = RegistrySpec(
    ext_uri=NS,
    prefix=PREFIX,
    elements={(NoridContactExt, "contact:create"): contact_create, (NoridContactExt, "contact:update"): contact_update},
)
