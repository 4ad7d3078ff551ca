"""GoDaddy Registry (.us, formerly Neustar): ``urn:ietf:params:xml:ns:neulevel-1.0``.

The nexus requirement travels as one ``<neulevel:unspec>`` string of space-separated key=value
pairs inside ``<neulevel:extension>``: ``AppPurpose=P1 NexusCategory=C11``, with the country for
foreign entities as ``NexusCategory=C31/DE``.  Source: the shape given in the issue and Net::DRI
``Protocol/EPP/Extensions/US``/``NeuLevel`` modules; no schema is available (the sandbox checks it
by hand).  Used on domain create and domain update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import sub, top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["NEEDS_COUNTRY", "NS", "PREFIX", "SPEC", "NeulevelDomainExt", "NexusCategory", "domain", "unspec"]

NS: Final = "urn:ietf:params:xml:ns:neulevel-1.0"
PREFIX: Final = "neulevel"
_COUNTRY: Final = re.compile(r"^[A-Z]{2}$")
NEEDS_COUNTRY: Final = frozenset({"C31", "C32"})

NexusCategory = Literal["C11", "C12", "C21", "C31", "C32"]


@dataclass(frozen=True)
class NeulevelDomainExt:
    """.us nexus (``urn:ietf:params:xml:ns:neulevel-1.0`` ``<neulevel:unspec>``).

    ``app_purpose`` P1 business, P2 non-profit, P3 personal, P4 education, P5 government.
    ``nexus_category`` C11/C12 US citizen/resident, C21 US organisation, C31/C32 foreign entity with
    a bona fide presence / US office, which also need ``nexus_country`` (ISO 3166 alpha-2).
    """

    app_purpose: Literal["P1", "P2", "P3", "P4", "P5"]
    nexus_category: NexusCategory
    nexus_country: str | None = None


def unspec(ext: NeulevelDomainExt) -> str:
    """The ``unspec`` text; refuses combinations the registry would refuse."""
    category: str = ext.nexus_category
    if ext.nexus_category in NEEDS_COUNTRY:
        if ext.nexus_country is None or not _COUNTRY.match(ext.nexus_country):
            raise ValueError("nexus categories C31/C32 need a two-letter nexus country")
        category = f"{ext.nexus_category}/{ext.nexus_country}"
    elif ext.nexus_country is not None:
        raise ValueError("a nexus country is only given for categories C31/C32")
    return f"AppPurpose={ext.app_purpose} NexusCategory={category}"


def domain(ext: NeulevelDomainExt) -> list[etree._Element]:
    wrapper = top(PREFIX, NS, "extension")
    sub(wrapper, NS, "unspec", unspec(ext))
    return [wrapper]


SPEC: Final = RegistrySpec(
    ext_uri=NS,
    prefix=PREFIX,
    elements={(NeulevelDomainExt, "domain:create"): domain, (NeulevelDomainExt, "domain:update"): domain},
)
