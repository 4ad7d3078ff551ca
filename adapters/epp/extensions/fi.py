"""Traficom (.fi): documented here, deliberately NOT implemented.

What .fi needs (Net::DRI ``Protocol/EPP/Extensions/FICORA``, registries.md): the contact element
itself differs from RFC 5733 -- ``<contact:create>`` carries ``role``, ``type``, ``isfinnish``,
``firstname``, ``lastname``, ``birthDate``, ``identity``, ``registernumber`` and ``legalemail``
inside the standard contact namespace, plus ``urn:ietf:params:xml:ns:domain-ext-1.0`` for domain
deletion scheduling.  Such frames are invalid against the official contact-1.0.xsd, so supporting
.fi means a second contact builder and a Traficom schema to validate it, neither of which we have.

Until then a .fi recipient policy must not be configured for EPP delivery; ``SUPPORTED`` is empty
so nothing here is ever announced at login.
"""

from __future__ import annotations

from typing import Final

NS_DOMAIN_EXT: Final = "urn:ietf:params:xml:ns:domain-ext-1.0"
SUPPORTED: Final[tuple[str, ...]] = ()
