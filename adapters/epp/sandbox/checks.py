"""Hand checks for registry extensions without a schema we can use (iis, Norid, neulevel), plus
the rules no schema expresses (Traficom's holder rules).

epp-1.0.xsd validates <extension> children strictly (``processContents="strict"``), so an element
without a loaded schema fails validation.  ``FrameValidator`` therefore removes the elements these
checks cover and checks them here, XSD-style (sequence order, required members, value patterns),
from the facts in ``shared/reference/registries.md`` and the public registrar libraries named in
each ``adapters.epp.extensions`` module.  dkhm-4.5 and EURid's contact-ext-1.3 are validated by
their real schemas; ``check_eurid`` is only the fallback when contact-ext-1.3.xsd is not installed.

Traficom (.fi) is different: its members sit inside <contact:create> itself, in the contact
namespace.  ``check_traficom`` validates that element against Traficom's own contact schema (given
by the caller, ``minOccurs`` relaxed), checks the holder rules, then removes Traficom's members and
its differently ordered <contact:disclose>, so the rest is still validated against contact-1.0.xsd.

Each check gets the element and the command it sits in (``"contact:create"``, ``"domain:update"``
...), because what is allowed differs by command (``iis:update`` holds ``vatno`` on a contact but
``clientDelete`` on a domain).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from lxml import etree
from stdnum.fi import hetu, ytunnus

from adapters.epp._xmlutil import q as _q
from adapters.epp.extensions import eurid, fi, iis, neulevel, norid
from adapters.epp.xml import NS_CONTACT, NS_EPP

Check = Callable[[str], bool]

_IIS_ORGNO: Final = re.compile(r"^\[[A-Z]{2}\].+$")
_TOKEN: Final = re.compile(r"^\S+( \S+)*$")
_LANGUAGE: Final = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_COUNTRY: Final = re.compile(r"^[A-Z]{2}$")
_NO_ORGNO: Final = re.compile(r"^[0-9]{9}$")
_BOOLEAN: Final = frozenset({"true", "false", "1", "0"})
_EURID_TYPES: Final = frozenset({"registrant", "tech", "billing", "onsite", "reseller"})
_NORID_CONTACT_TYPES: Final = frozenset({"person", "organization", "role"})
_NORID_IDENTITY_TYPES: Final = frozenset(
    {"organizationNumber", "localIdentity", "nationalIdentityNumber", "anonymousPersonIdentifier"}
)
_US_PURPOSES: Final = frozenset({"P1", "P2", "P3", "P4", "P5"})
_US_CATEGORY: Final = re.compile(r"^(C11|C12|C21|C31/[A-Z]{2}|C32/[A-Z]{2})$")


def token(value: str) -> bool:
    return bool(_TOKEN.match(value))


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


@dataclass(frozen=True)
class Member:
    """One element of an XSD-style sequence: a simple element with an optional set of attributes."""

    name: str
    required: bool
    check: Check
    attributes: Mapping[str, Check] = field(default_factory=dict)
    required_attributes: frozenset[str] = frozenset()


def check_sequence(el: etree._Element, ns: str, spec: Sequence[Member], where: str) -> list[str]:
    """Check ``el``'s children against an ordered member list, as an XSD sequence would."""
    errors: list[str] = []
    if el.attrib:
        errors.append(f"{where}: unexpected attributes")
    if (el.text or "").strip():
        errors.append(f"{where}: unexpected text")
    children = [child for child in el if isinstance(child.tag, str)]
    i = 0
    for member in spec:
        if i < len(children) and children[i].tag == _q(ns, member.name):
            child = children[i]
            i += 1
            if len(child):
                errors.append(f"{where}/{member.name}: must be a simple element")
            elif not member.check(child.text or ""):
                errors.append(f"{where}/{member.name}: invalid value")
            for raw_attr, value in child.attrib.items():
                attr = raw_attr.decode() if isinstance(raw_attr, bytes) else raw_attr
                attr_check = member.attributes.get(attr)
                if attr_check is None:
                    errors.append(f"{where}/{member.name}: unexpected attribute {attr}")
                elif not attr_check(str(value)):
                    errors.append(f"{where}/{member.name}/@{attr}: invalid value")
            for attr in member.required_attributes - {str(a) for a in child.attrib}:
                errors.append(f"{where}/{member.name}: missing attribute {attr}")
        elif member.required:
            errors.append(f"{where}: missing required element {member.name}")
    for child in children[i:]:
        errors.append(f"{where}: unexpected element {_local(child)}")
    return errors


def _wrapper(el: etree._Element, ns: str, child: str, where: str) -> tuple[etree._Element | None, list[str]]:
    """``el`` must hold exactly one ``child`` element (e.g. ``update/chg``)."""
    children = [c for c in el if isinstance(c.tag, str)]
    if el.attrib or (el.text or "").strip():
        return None, [f"{where}: unexpected attributes or text"]
    if len(children) != 1 or children[0].tag != _q(ns, child):
        return None, [f"{where}: must hold exactly one {child}"]
    return children[0], []


def _not_here(el: etree._Element, kind: str, prefix: str) -> list[str]:
    return [f"{prefix}:{_local(el)} is not allowed on {kind}"]


# ---- .se / .nu ------------------------------------------------------------------------------------


def check_iis(el: etree._Element, kind: str) -> list[str]:
    name = _local(el)
    if name == "create" and kind == "contact:create":
        spec = [Member("orgno", True, lambda v: bool(_IIS_ORGNO.match(v))), Member("vatno", False, token)]
        return check_sequence(el, iis.NS, spec, "iis:create")
    if name == "update" and kind == "contact:update":
        # The organisation number is fixed at .se; only the VAT number may change.
        return check_sequence(el, iis.NS, [Member("vatno", True, token)], "iis:update")
    if name == "update" and kind == "domain:update":
        return check_sequence(el, iis.NS, [Member("clientDelete", True, lambda v: v in _BOOLEAN)], "iis:update")
    return _not_here(el, kind, "iis")


# ---- .eu --------------------------------------------------------------------------------------------

_EURID_MEMBERS: Final = (
    ("type", lambda v: v in _EURID_TYPES),
    ("vat", token),
    ("lang", lambda v: bool(_LANGUAGE.match(v))),
    ("whoisEmail", token),
    ("naturalPerson", lambda v: v in _BOOLEAN),
    ("countryOfCitizenship", lambda v: bool(_COUNTRY.match(v))),
)


def check_eurid(el: etree._Element, kind: str) -> list[str]:
    name = _local(el)
    if name == "create" and kind == "contact:create":
        required = {"type", "naturalPerson"}
        spec = [Member(n, n in required, c) for n, c in _EURID_MEMBERS]
        return check_sequence(el, eurid.NS, spec, "contact-ext:create")
    if name == "update" and kind == "contact:update":
        chg, errors = _wrapper(el, eurid.NS, "chg", "contact-ext:update")
        if chg is None:
            return errors
        if not any(isinstance(c.tag, str) for c in chg):
            return ["contact-ext:update/chg: changes nothing"]
        # The contact type is fixed once created.
        spec = [Member(n, False, c) for n, c in _EURID_MEMBERS if n != "type"]
        return check_sequence(chg, eurid.NS, spec, "contact-ext:update/chg")
    return _not_here(el, kind, "contact-ext")


# ---- .no --------------------------------------------------------------------------------------------


def _norid_identity(required: bool) -> Member:
    return Member(
        "identity",
        required,
        token,
        attributes={"type": lambda v: v in _NORID_IDENTITY_TYPES},
        required_attributes=frozenset({"type"}),
    )


def _norid_orgno(el: etree._Element, where: str) -> list[str]:
    identity = el.find(_q(norid.NS, "identity"))
    if identity is not None and identity.get("type") == "organizationNumber":
        if not _NO_ORGNO.match((identity.text or "").strip()):
            return [f"{where}/identity: an organizationNumber has nine digits"]
    return []


def check_norid(el: etree._Element, kind: str) -> list[str]:
    name = _local(el)
    if name == "create" and kind == "contact:create":
        # identity is optional: persons without a released number and role contacts have none
        spec = [Member("type", True, lambda v: v in _NORID_CONTACT_TYPES), _norid_identity(False)]
        errors = check_sequence(el, norid.NS, spec, "no-ext-contact:create")
        contact_type = el.findtext(_q(norid.NS, "type"))
        identity = el.find(_q(norid.NS, "identity"))
        if contact_type == "organization" and (identity is None or identity.get("type") != "organizationNumber"):
            errors.append("no-ext-contact:create: an organization is identified by its organizationNumber")
        if contact_type != "organization" and identity is not None and identity.get("type") == "organizationNumber":
            errors.append("no-ext-contact:create: an organizationNumber identifies an organization")
        return errors + _norid_orgno(el, "no-ext-contact:create")
    if name == "update" and kind == "contact:update":
        chg, errors = _wrapper(el, norid.NS, "chg", "no-ext-contact:update")
        if chg is None:
            return errors
        errors = check_sequence(chg, norid.NS, [_norid_identity(True)], "no-ext-contact:update/chg")
        return errors + _norid_orgno(chg, "no-ext-contact:update/chg")
    return _not_here(el, kind, "no-ext-contact")


# ---- .us --------------------------------------------------------------------------------------------


def parse_unspec(text: str) -> dict[str, str] | None:
    """``Key=Value Key=Value`` to a dict; None when the syntax is wrong or a key repeats."""
    if not text or text != " ".join(text.split()):
        return None
    pairs: dict[str, str] = {}
    for item in text.split(" "):
        key, sep, value = item.partition("=")
        if not sep or not key or not value or key in pairs:
            return None
        pairs[key] = value
    return pairs


def check_neulevel(el: etree._Element, kind: str) -> list[str]:
    """The .us nexus, on the registrant's contact create (both keys) or update (either key)."""
    if _local(el) != "extension" or kind not in ("contact:create", "contact:update"):
        return _not_here(el, kind, "neulevel")
    unspec, errors = _wrapper(el, neulevel.NS, "unspec", "neulevel:extension")
    if unspec is None:
        return errors
    if len(unspec) or unspec.attrib:
        return ["neulevel:unspec: must be a simple element"]
    pairs = parse_unspec(unspec.text or "")
    if pairs is None:
        return ["neulevel:unspec: expected space-separated Key=Value pairs"]
    errors = [f"neulevel:unspec: unknown key {key}" for key in pairs if key not in ("AppPurpose", "NexusCategory")]
    if kind == "contact:create":
        errors += [f"neulevel:unspec: missing {k}" for k in ("AppPurpose", "NexusCategory") if k not in pairs]
    elif not pairs:
        errors.append("neulevel:unspec: changes nothing")
    if "AppPurpose" in pairs and pairs["AppPurpose"] not in _US_PURPOSES:
        errors.append("neulevel:unspec: AppPurpose must be P1-P5")
    if "NexusCategory" in pairs and not _US_CATEGORY.match(pairs["NexusCategory"]):
        errors.append("neulevel:unspec: NexusCategory must be C11, C12, C21, C31/CC or C32/CC")
    return errors


# ---- .fi --------------------------------------------------------------------------------------------
# Net::DRI Data/Contact/FICORA.pm: role 2-5 and type 0-7 mandatory; for a holder (role 5) legalemail
# is mandatory, and so is identity (Finnish person), birthDate (foreign person) or registernumber
# (any organisation).  Formats: HETU DDMMYYCZZZQ, Y-tunnus NNNNNNN-N (both with their check digit).

_FI_HETU: Final = re.compile(r"^[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-Y]$")
_FI_YTUNNUS: Final = re.compile(r"^[0-9]{7}-[0-9]$")
_DATETIME: Final = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
"""``xs:dateTime``, which Traficom's schema makes ``birthDate`` (a bare date is refused)."""
_FI_CHECKS: Final[dict[str, Check]] = {
    "role": lambda v: v in {"2", "3", "4", "5"},
    "type": lambda v: v in {str(n) for n in range(8)},
    "isfinnish": lambda v: v in {"0", "1"},
    "firstname": token,
    "lastname": token,
    "birthDate": lambda v: bool(_DATETIME.match(v)),
    "identity": lambda v: bool(_FI_HETU.match(v)) and hetu.is_valid(v),
    "registernumber": token,
    "legalemail": token,
}


def _fi_members(parent: etree._Element, order: tuple[str, ...], ours: frozenset[str], where: str) -> tuple[
    dict[str, str], list[str]
]:
    """Traficom's members of ``parent`` (text by name), after checking order, repeats and values."""
    errors: list[str] = []
    found: dict[str, str] = {}
    last = -1
    for child in parent:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != NS_CONTACT:
            continue
        name = _local(child)
        if name not in order:
            continue
        rank = order.index(name)
        if rank < last:
            errors.append(f"{where}/{name}: out of order")
        last = max(last, rank)
        if name not in ours:
            continue
        if name in found:
            errors.append(f"{where}/{name}: repeated")
        if len(child) or child.attrib:
            errors.append(f"{where}/{name}: must be a simple element")
        value = child.text or ""
        if not _FI_CHECKS[name](value):
            errors.append(f"{where}/{name}: invalid value")
        found[name] = value
    return found, errors


def has_traficom_members(create: etree._Element) -> bool:
    tags = {_local(c) for c in create if isinstance(c.tag, str)}
    tags |= {_local(c) for p in create.findall(_q(NS_CONTACT, "postalInfo")) for c in p if isinstance(c.tag, str)}
    return bool(tags & (fi.CREATE_ELEMENTS | fi.POSTAL_ELEMENTS))


def check_traficom(root: etree._Element, kind: str, schema: etree.XMLSchema | None = None) -> list[str]:
    """Check Traficom's members of a <contact:create> in ``root`` and remove them (in place).

    ``schema`` is Traficom's contact schema (``minOccurs`` relaxed): the whole <contact:create> is
    validated against it first -- element names, order and types such as ``birthDate``'s
    ``xs:dateTime`` and the voice/email/addr-only <contact:disclose>.  Then the holder rules are
    checked by hand, and Traficom's members and disclose are removed so that the rest still meets
    contact-1.0.xsd.  Frames without Traficom members are left alone: plain RFC 5733 contacts go
    to the XSD as they are.
    """
    create = root.find(f"{_q(NS_EPP, 'command')}/{_q(NS_EPP, 'create')}/{_q(NS_CONTACT, 'create')}")
    if create is None or kind != "contact:create" or not has_traficom_members(create):
        return []
    errors: list[str] = []
    if schema is not None:
        if not schema.validate(etree.ElementTree(copy.deepcopy(create))):
            log_entries = cast("Iterable[Any]", schema.error_log)  # lxml-stubs omit __iter__
            errors += [f"traficom contact:create line {e.line}: {e.message}" for e in log_entries]
    members, more = _fi_members(create, fi.CREATE_ORDER, fi.CREATE_ELEMENTS, "contact:create")
    errors += more
    postals = create.findall(_q(NS_CONTACT, "postalInfo"))
    for postal in postals:
        found, more = _fi_members(postal, fi.POSTAL_ORDER, fi.POSTAL_ELEMENTS, "contact:postalInfo")
        errors += more
        for name, value in found.items():
            if members.setdefault(name, value) != value:
                errors.append(f"contact:postalInfo/{name}: differs between postalInfo elements")
    for name in ("role", "type"):
        if name not in members:
            errors.append(f"contact:create: missing required element {name}")
    if members.get("role") == "5" and "type" in members:
        errors += _fi_holder(members)
    for parent in (create, *postals):
        for child in list(parent):
            if isinstance(child.tag, str) and etree.QName(child).namespace == NS_CONTACT and (
                _local(child) in fi.CREATE_ELEMENTS | fi.POSTAL_ELEMENTS
            ):
                parent.remove(child)
    disclose = create.find(_q(NS_CONTACT, "disclose"))
    if disclose is not None:
        names = [_local(c) for c in disclose if isinstance(c.tag, str)]
        if names != sorted(names, key=lambda n: fi.DISCLOSE_ORDER.index(n) if n in fi.DISCLOSE_ORDER else 99) or (
            set(names) - set(fi.DISCLOSE_ORDER)
        ):
            errors.append("contact:disclose: Traficom allows only voice, email, addr, in that order")
        create.remove(disclose)  # Traficom's order is not RFC 5733's, so contact-1.0.xsd cannot judge it
    return errors


def _fi_holder(members: Mapping[str, str]) -> list[str]:
    errors = [f"contact:create: a holder needs {n}" for n in ("legalemail", "isfinnish") if n not in members]
    finnish = members.get("isfinnish") == "1"
    if members["type"] == "0":
        needed = "identity" if finnish else "birthDate"
        if needed not in members:
            errors.append(f"contact:postalInfo: a {'Finnish' if finnish else 'foreign'} person needs {needed}")
        if not finnish and "identity" in members:
            errors.append("contact:postalInfo/identity: only for Finnish persons")
    else:
        number = members.get("registernumber")
        if number is None:
            errors.append("contact:postalInfo: an organisation needs registernumber")
        elif finnish and not (_FI_YTUNNUS.match(number) and ytunnus.is_valid(number)):
            errors.append("contact:postalInfo/registernumber: a Finnish one is a Y-tunnus NNNNNNN-N")
        if "identity" in members:
            errors.append("contact:postalInfo/identity: only for persons")
    return errors


HAND_CHECKED: Final[dict[str, Callable[[etree._Element, str], list[str]]]] = {
    iis.NS: check_iis,
    norid.NS: check_norid,
    neulevel.NS: check_neulevel,
}
"""Extension namespace -> check; everything else under <extension> goes to the XSDs."""

FALLBACK_CHECKED: Final[dict[str, Callable[[etree._Element, str], list[str]]]] = {eurid.NS: check_eurid}
"""Checks used only when that extension's schema is not installed (``shared/epp-ext-schemas``)."""
