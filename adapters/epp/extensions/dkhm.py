"""Punktum dk (.dk): ``urn:dkhm:params:xml:ns:dkhm-4.5``.

Source: the official ``dkhm-4.5.xsd`` (in ``shared/epp-schemas``; the sandbox validates against it)
and Punktum-dk/epp-service-specification.  dkhm elements are global and sit directly under
<extension>, not inside a wrapper.  Implemented: userType, CVR, pnumber, EAN on contact create.
Not implemented: contact updates of these (the service specification's rules on which may change
were not confirmed), mobilephone, secondaryEmail, domain-level elements (orderconfirmationToken,
management, autoRenew, authInfo requests) and the ``withdraw`` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from adapters.epp._xmlutil import top
from adapters.epp.extensions._spec import RegistrySpec

__all__ = ["NS", "PREFIX", "SPEC", "DkhmContactExt"]

NS: Final = "urn:dkhm:params:xml:ns:dkhm-4.5"
PREFIX: Final = "dkhm"


@dataclass(frozen=True)
class DkhmContactExt:
    """Punktum dk ``urn:dkhm:params:xml:ns:dkhm-4.5`` userType (+ CVR / EAN where given)."""

    user_type: Literal["company", "individual", "public_organization", "association"]
    cvr: str | None = None
    pnumber: str | None = None
    ean: str | None = None


def contact_create(ext: DkhmContactExt) -> list[etree._Element]:
    values = (("userType", ext.user_type), ("CVR", ext.cvr), ("pnumber", ext.pnumber), ("EAN", ext.ean))
    return [top(PREFIX, NS, name, value) for name, value in values if value is not None]


SPEC: Final = RegistrySpec(ext_uri=NS, prefix=PREFIX, elements={(DkhmContactExt, "contact:create"): contact_create})
