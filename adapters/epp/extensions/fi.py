"""Traficom (.fi, formerly FICORA): Traficom's own contact shape inside <contact:create>.

Source: Net::DRI ``Protocol/EPP/Extensions/FICORA/Contact.pm`` (element names and their places) and
``Data/Contact/FICORA.pm`` (role/type codes and which members a holder needs); registries.md .fi row.
The sandbox validates these frames against Traficom's own contact schema (``traficom-contact1.xsd``,
with its ``minOccurs`` relaxed, see ``shared/epp-ext-schemas/SOURCES.md``) and checks the holder
rules (which member a person or an organisation needs) by hand.

The contact element itself differs from RFC 5733; the extra elements are in the *contact*
namespace, so no extURI is involved (``namespace()`` in ``extensions`` answers ``None``):

* after <contact:id>: ``role`` (2 admin, 3 reseller, 4 tech, 5 holder), ``type`` (0 private
  person, 1 company, 2 association, 3 institution, 4 political party, 5 municipality,
  6 government, 7 public community);
* in <contact:postalInfo>: ``isfinnish`` (0/1), ``firstname``, ``lastname`` before <contact:name>;
  ``birthDate``, ``identity``, ``registernumber`` after <contact:org>, before <contact:addr>;
* after <contact:email>: ``legalemail`` (mandatory for a holder, role 5);
* ``birthDate`` is an ``xs:dateTime`` in Traficom's schema (``traficom-contact1.xsd`` in
  ``shared/epp-ext-schemas``): Net::DRI and php-epp-client send ``YYYY-MM-DDT00:00:00.0Z``, so a
  released date is written that way;
* <contact:disclose> may hold only ``voice``, ``email`` and ``addr``, in that order (Traficom's
  schema), not RFC 5733's six elements in RFC order: other elements are refused.

A holder (role 5) needs: a Finnish person (type 0, isfinnish 1) ``identity``; a foreign person
(type 0, isfinnish 0) ``birthDate``; any organisation (type 1-7) ``registernumber`` [NDRI].

Not implemented / UNCONFIRMED:
* Net::DRI sends no <contact:authInfo> on create ("not supported" per Traficom's technical
  document, though defined in their schema); we keep it, as contact-1.0.xsd requires it.
  Whether Traficom accepts it is UNCONFIRMED.
* Net::DRI always uses postalInfo type ``loc``; we keep the gateway's int/loc choice.
* contact updates, contact:info parsing of these elements, and ``domain-ext-1.0`` (domain
  deletion scheduling, ``NS_DOMAIN_EXT``), which is therefore not announced at login.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import q, sub
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["DISCLOSE_ORDER", "NS_CONTACT", "NS_DOMAIN_EXT", "SPEC", "SUPPORTED", "FiContactExt", "FiRole",
           "FiType", "amend_contact_create", "birth_datetime"]

NS_CONTACT: Final = "urn:ietf:params:xml:ns:contact-1.0"
NS_DOMAIN_EXT: Final = "urn:ietf:params:xml:ns:domain-ext-1.0"
SUPPORTED: Final[tuple[str, ...]] = ()
"""extURIs this module needs at login: none, the contact elements live in the contact namespace."""

CREATE_ORDER: Final = ("id", "role", "type", "postalInfo", "voice", "fax", "email", "legalemail", "authInfo",
                       "disclose")
"""<contact:create> children in Traficom's order (Net::DRI FICORA/Contact.pm)."""
POSTAL_ORDER: Final = ("isfinnish", "firstname", "lastname", "name", "org", "birthDate", "identity",
                       "registernumber", "addr")
"""<contact:postalInfo> children in Traficom's order."""
CREATE_ELEMENTS: Final = frozenset({"role", "type", "legalemail"})
POSTAL_ELEMENTS: Final = frozenset({"isfinnish", "firstname", "lastname", "birthDate", "identity", "registernumber"})
"""Traficom's additions to RFC 5733, by parent."""
DISCLOSE_ORDER: Final = ("voice", "email", "addr")
"""The only <contact:disclose> children Traficom's schema has, in its order."""

FiRole = Literal[2, 3, 4, 5]
"""Traficom contact role: 2 admin, 3 reseller, 4 technical contact, 5 registrant (holder) [NDRI]."""
FiType = Literal[0, 1, 2, 3, 4, 5, 6, 7]
"""Traficom contact type: 0 private person, 1 company, 2 association, 3 institution, 4 political party,
5 municipality, 6 government, 7 public community [NDRI]."""


@dataclass(frozen=True)
class FiContactExt:
    """Traficom (.fi) contact data, carried *inside* <contact:create> (contact-1.0 namespace).

    Unlike every other extension value this is not an <extension> element: Traficom's contact schema
    adds ``role``/``type`` after <contact:id>, ``isfinnish``/``firstname``/``lastname`` before and
    ``birthDate``/``identity``/``registernumber`` after <contact:name>/<contact:org> in
    <contact:postalInfo>, and ``legalemail`` after <contact:email> (Net::DRI FICORA/Contact.pm).
    ``identity`` is the Finnish personal identity code (HETU) of a Finnish person,
    ``registernumber`` a company's register number (Y-tunnus for Finnish ones), ``birth_date``
    (YYYY-MM-DD; sent as the ``xs:dateTime`` of that midnight, UTC) what a foreign person gives
    instead of an identity.
    """

    role: FiRole
    type: FiType
    is_finnish: bool
    firstname: str | None = None
    lastname: str | None = None
    birth_date: str | None = None
    identity: str | None = None
    registernumber: str | None = None
    legalemail: str | None = None


def _insert(parent: etree._Element, name: str, text: str, order: tuple[str, ...]) -> None:
    """Add ``<contact:name>text</contact:name>`` after the last child that comes before it in ``order``."""
    rank = order.index(name)
    pos = 0
    for i, child in enumerate(parent):
        if isinstance(child.tag, str) and etree.QName(child).localname in order[:rank]:
            pos = i + 1
    el = sub(parent, NS_CONTACT, name, text)  # created in the tree, so it reuses the contact prefix
    parent.insert(pos, el)


def birth_datetime(value: str) -> str:
    """``YYYY-MM-DD`` as Traficom's ``xs:dateTime`` (``YYYY-MM-DDT00:00:00.0Z``, as Net::DRI writes it)."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("a .fi birth date is YYYY-MM-DD") from None
    return f"{day.isoformat()}T00:00:00.0Z"


def _traficom_disclose(create: etree._Element) -> None:
    """Reorder <contact:disclose> to Traficom's voice, email, addr; refuse what it cannot hold."""
    disclose = create.find(q(NS_CONTACT, "disclose"))
    if disclose is None:
        return
    children = [c for c in disclose if isinstance(c.tag, str)]
    names = [etree.QName(c).localname for c in children]
    refused = sorted(set(names) - set(DISCLOSE_ORDER))
    if refused:
        raise ValueError(f".fi contact:disclose cannot hold {', '.join(refused)}")
    for child in children:
        disclose.remove(child)
    for child in sorted(children, key=lambda c: DISCLOSE_ORDER.index(etree.QName(c).localname)):
        disclose.append(child)


def amend_contact_create(create: etree._Element, ext: FiContactExt) -> None:
    """Add Traficom's members to an RFC 5733 <contact:create> already built by ``adapters.epp.xml``."""
    _traficom_disclose(create)
    create_values = (("role", str(ext.role)), ("type", str(ext.type)), ("legalemail", ext.legalemail))
    for name, value in create_values:
        if value is not None:
            _insert(create, name, value, CREATE_ORDER)
    postal_values = (
        ("isfinnish", "1" if ext.is_finnish else "0"),
        ("firstname", ext.firstname),
        ("lastname", ext.lastname),
        ("birthDate", None if ext.birth_date is None else birth_datetime(ext.birth_date)),
        ("identity", ext.identity),
        ("registernumber", ext.registernumber),
    )
    for postal in create.findall(q(NS_CONTACT, "postalInfo")):
        for name, value in postal_values:
            if value is not None:
                _insert(postal, name, value, POSTAL_ORDER)


SPEC: Final = RegistrySpec(
    ext_uri=None,  # the members live in the contact namespace: nothing to negotiate at login
    prefix=None,
    elements={(FiContactExt, "contact:create"): lambda _ext: []},  # nothing under <extension>
    amend_contact_create={FiContactExt: amend_contact_create},
)
