"""GoDaddy Registry (.us, formerly Neustar): ``urn:ietf:params:xml:ns:neulevel-1.0``.

The nexus requirement travels as one ``<neulevel:unspec>`` string of space-separated key=value
pairs inside ``<neulevel:extension>``: ``AppPurpose=P1 NexusCategory=C11``, with the country for
foreign entities as ``NexusCategory=C31/DE``.  It belongs to the *registrant contact*, on
``contact:create`` and ``contact:update`` (Net::DRI ``Protocol/EPP/Extensions/US/Contact.pm``, ".US
Contact NEXUS Extensions"), not to the domain: the nexus is a fact about the holder, and a domain
create carrying it is refused.  No schema is available (the sandbox checks it by hand).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import sub, top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = [
    "NEEDS_COUNTRY",
    "NS",
    "PREFIX",
    "SPEC",
    "NeulevelContactExt",
    "NeulevelDomainExt",
    "NexusCategory",
    "nexus",
    "unspec",
]

NS: Final = "urn:ietf:params:xml:ns:neulevel-1.0"
PREFIX: Final = "neulevel"
_COUNTRY: Final = re.compile(r"^[A-Z]{2}$")
NEEDS_COUNTRY: Final = frozenset({"C31", "C32"})

NexusCategory = Literal["C11", "C12", "C21", "C31", "C32"]


@dataclass(frozen=True)
class NeulevelContactExt:
    """.us nexus of a registrant contact (``urn:ietf:params:xml:ns:neulevel-1.0`` ``<neulevel:unspec>``).

    ``app_purpose`` P1 business, P2 non-profit, P3 personal, P4 education, P5 government.
    ``nexus_category`` C11/C12 US citizen/resident, C21 US organisation, C31/C32 foreign entity with
    a bona fide presence / US office, which also need ``nexus_country`` (ISO 3166 alpha-2).
    """

    app_purpose: Literal["P1", "P2", "P3", "P4", "P5"]
    nexus_category: NexusCategory
    nexus_country: str | None = None


NeulevelDomainExt = NeulevelContactExt
"""The former name, from when the nexus was (wrongly) sent on <domain:create>; same value type."""


def unspec(ext: NeulevelContactExt) -> str:
    """The ``unspec`` text; refuses combinations the registry would refuse."""
    category: str = ext.nexus_category
    if ext.nexus_category in NEEDS_COUNTRY:
        if ext.nexus_country is None or not _COUNTRY.match(ext.nexus_country):
            raise ValueError("nexus categories C31/C32 need a two-letter nexus country")
        category = f"{ext.nexus_category}/{ext.nexus_country}"
    elif ext.nexus_country is not None:
        raise ValueError("a nexus country is only given for categories C31/C32")
    return f"AppPurpose={ext.app_purpose} NexusCategory={category}"


def nexus(ext: NeulevelContactExt) -> list[etree._Element]:
    wrapper = top(PREFIX, NS, "extension")
    sub(wrapper, NS, "unspec", unspec(ext))
    return [wrapper]


SPEC: Final = RegistrySpec(
    ext_uri=NS,
    prefix=PREFIX,
    elements={(NeulevelContactExt, "contact:create"): nexus, (NeulevelContactExt, "contact:update"): nexus},
)
