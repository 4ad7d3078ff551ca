"""What one registry module contributes to the dispatch in ``adapters.epp.extensions`` (private)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

Builder = Callable[[Any], list[etree._Element]]
"""Builds the <extension> children for one extension value."""

Amender = Callable[[etree._Element, Any], None]
"""Adds members to an object element itself (Traficom's .fi contact members)."""


@dataclass(frozen=True)
class RegistrySpec:
    """One registry's extension: its extURI and XML prefix, and a builder per (value type, command).

    ``elements`` is keyed by the value's type and the command it rides on (``"contact:create"``,
    ``"contact:update"``, ``"domain:create"``, ``"domain:update"``): the same value can be legal on
    one command and not another, and a missing key is how "not allowed here" is answered.
    ``ext_uri`` is ``None`` when there is nothing to negotiate at login.
    """

    ext_uri: str | None
    prefix: str | None
    elements: Mapping[tuple[type, str], Builder]
    amend_contact_create: Mapping[type, Amender] = field(default_factory=dict)
