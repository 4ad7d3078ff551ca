"""Internetstiftelsen (.se, .nu): ``urn:se:iis:xml:epp:iis-1.2``.

Source: the element shapes in ``shared/reference/registries.md`` (iis-1.2.xsd as carried by
metaregistrar/php-epp-client, Net::DRI ``Protocol/EPP/Extensions/SE``).  The XSD itself is the
registry's copyright and not redistributed, so the sandbox checks these elements by hand.

* contact create: ``<iis:create>`` with ``orgno`` (``[CC]number``, required) and optional ``vatno``;
* contact update: ``<iis:update>`` with ``vatno`` only (.se does not let an orgno change);
* domain update:  ``<iis:update>`` with ``clientDelete`` (0/1: delete at expiry).
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from adapters.epp._xmlutil import sub, top
from adapters.epp.types import IisContactExt, IisContactUpdate, IisDomainUpdate

NS: Final = "urn:se:iis:xml:epp:iis-1.2"
PREFIX: Final = "iis"


def contact_create(ext: IisContactExt) -> list[etree._Element]:
    create = top(PREFIX, NS, "create")
    if ext.orgno is not None:
        sub(create, NS, "orgno", ext.orgno)
    if ext.vatno is not None:
        sub(create, NS, "vatno", ext.vatno)
    return [create]


def contact_update(ext: IisContactUpdate) -> list[etree._Element]:
    update = top(PREFIX, NS, "update")
    sub(update, NS, "vatno", ext.vatno)
    return [update]


def domain_update(ext: IisDomainUpdate) -> list[etree._Element]:
    update = top(PREFIX, NS, "update")
    sub(update, NS, "clientDelete", "1" if ext.client_delete else "0")
    return [update]
