"""Registry extensions, one module per registry: its value types, namespace and XML.

Modules: ``iis`` (.se/.nu), ``eurid`` (.eu), ``dkhm`` (.dk), ``norid`` (.no), ``neulevel`` (.us),
``fi`` (.fi).  Each declares a ``SPEC`` naming its extURI and one builder per (value type, command),
so "which extURI does this value need" and "what XML does it produce on this command" come from the
same row and cannot disagree.  ``adapters.epp.xml`` is the only caller of the builders.

Traficom's (.fi) members are not an <extension> at all but sit inside <contact:create> in the
contact namespace: ``amend_contact_create`` adds them, and their ``namespace`` is ``None`` (no
extURI to negotiate).

The value types are re-exported here, so the gateway imports them from one place.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from adapters.epp.extensions import dkhm, eurid, fi, iis, neulevel, norid
from adapters.epp.extensions._spec import Amender, Builder
from adapters.epp.extensions.dkhm import DkhmContactExt
from adapters.epp.extensions.eurid import EuridContactExt, EuridContactUpdate
from adapters.epp.extensions.fi import FiContactExt, FiRole, FiType
from adapters.epp.extensions.iis import IisContactExt, IisContactUpdate, IisDomainUpdate
from adapters.epp.extensions.neulevel import NeulevelContactExt, NeulevelDomainExt, NexusCategory
from adapters.epp.extensions.norid import NoridContactExt, NoridIdentityType

__all__ = [
    "PREFIXES",
    "SUPPORTED_EXT_URIS",
    "AnyExtension",
    "ContactExtension",
    "ContactUpdateExtension",
    "DkhmContactExt",
    "DomainExtension",
    "DomainUpdateExtension",
    "EuridContactExt",
    "EuridContactUpdate",
    "FiContactExt",
    "FiRole",
    "FiType",
    "IisContactExt",
    "IisContactUpdate",
    "IisDomainUpdate",
    "NeulevelContactExt",
    "NeulevelDomainExt",
    "NexusCategory",
    "NoridContactExt",
    "NoridIdentityType",
    "amend_contact_create",
    "elements",
    "namespace",
]

ContactExtension = (
    IisContactExt | EuridContactExt | DkhmContactExt | NoridContactExt | FiContactExt | NeulevelContactExt
)
"""Extensions a ``ContactCreate`` may carry (``FiContactExt`` goes inside <contact:create>, not <extension>)."""

ContactUpdateExtension = IisContactUpdate | EuridContactUpdate | NoridContactExt | NeulevelContactExt
"""Extensions a ``ContactUpdate`` may carry."""

DomainExtension = NeulevelContactExt
"""What a ``DomainCreate`` could carry: no registry extension rides on <domain:create> any more.

The .us nexus moved to the registrant contact; the alias keeps ``DomainCreate``'s shape (and old
outbox rows decodable) while ``elements`` refuses a nexus on a domain create with ``ValueError``.
"""

DomainUpdateExtension = IisDomainUpdate
"""Extensions a ``DomainUpdate`` may carry."""

AnyExtension = ContactExtension | ContactUpdateExtension | DomainExtension | DomainUpdateExtension

_SPECS: Final = (iis.SPEC, eurid.SPEC, dkhm.SPEC, norid.SPEC, neulevel.SPEC, fi.SPEC)

SUPPORTED_EXT_URIS: Final = tuple(spec.ext_uri for spec in _SPECS if spec.ext_uri is not None)
"""Extensions we can emit, in login order; login announces only those the server also offers."""

PREFIXES: Final = {spec.prefix: spec.ext_uri for spec in _SPECS if spec.prefix and spec.ext_uri}
"""The prefix each extension namespace is written with (for ``adapters.epp.xml.NSMAP``)."""

_BUILDERS: Final[dict[tuple[type, str], Builder]] = {key: b for spec in _SPECS for key, b in spec.elements.items()}
_NAMESPACES: Final[dict[type, str | None]] = {cls: spec.ext_uri for spec in _SPECS for cls, _ in spec.elements}
_AMENDERS: Final[dict[type, Amender]] = {cls: a for spec in _SPECS for cls, a in spec.amend_contact_create.items()}


def namespace(ext: AnyExtension) -> str | None:
    """The extURI an extension value needs (``None``: none); the client checks it was negotiated at login."""
    return _NAMESPACES[type(ext)]


def elements(ext: AnyExtension, command: str) -> list[etree._Element]:
    """The <extension> children ``ext`` contributes to ``command`` (e.g. ``"contact:update"``).

    A value that is not allowed on that command is refused with ``ValueError``: the frame cannot
    be expressed, which the client turns into a permanent failure instead of sending it.
    """
    builder = _BUILDERS.get((type(ext), command))
    if builder is None:
        raise ValueError(f"{type(ext).__name__} cannot be used on {command}")
    return builder(ext)


def amend_contact_create(create: etree._Element, ext: ContactExtension) -> None:
    """Registry members that go inside <contact:create> itself rather than under <extension>."""
    amender = _AMENDERS.get(type(ext))
    if amender is not None:
        amender(create, ext)
