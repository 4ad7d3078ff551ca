"""Turns policy-minimised values into typed EPP commands (registration and contact update), and
the JSON codec of those commands that outbox payloads are stored in.

Pure: no I/O.  Only released values are read (``Minimised.values``, or the changed released values
of an update), so a field the policy withheld cannot reach an EPP frame by construction.  Object ids
and auth codes are derived from the registration id so a retried (or crash-recovered) registration
addresses the same objects instead of creating new ones; each object gets its own auth code, so
handing the domain's code to a transfer does not also hand over the holder's contact.

The registrar's own role contact (company data) rides along in ``RegistrationCommands.contacts``
with its id in ``registrar_contacts``: the client creates it once per registry, not per order.

A registration is built in two steps: at acceptance its ``RegistrationOrder`` (ids, auth codes, what
the commands will be built from) and the fields its contact will carry (``carried_by_order``, without
building it); in the delivery worker, when it is sent, its commands (``commands_for``).  Nothing is
built or encoded at acceptance that only the sending needs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

from adapters.epp.extensions import (
    ContactExtension,
    ContactUpdateExtension,
    DkhmContactExt,
    EuridContactExt,
    EuridContactUpdate,
    FiContactExt,
    IisContactExt,
    IisContactUpdate,
    NeulevelContactExt,
    NoridContactExt,
)
from adapters.epp.types import (
    Address,
    ContactCreate,
    ContactUpdate,
    DiscloseSpec,
    DomainCreate,
    PostalInfo,
    PostalInfoChange,
    RegistrationCommands,
)
from gateway.errors import RequiredFieldMissing
from gateway.models import RegistrationRequest, epp_phone
from gateway.policy.minimise import Minimised
from gateway.policy.schema import ContactSource, RecipientPolicy

#: RFC 5733 needs these to create a contact at all.
CONTACT_MINIMUM = ("name", "city", "country", "email")


@dataclasses.dataclass(frozen=True)
class RegistrarContact:
    """The registrar's own role contact (company data, not a data subject's).

    ``orgno`` (``[CC]number``, as .se/.nu write it) and ``vat`` identify the company where a registry
    wants an organisation identified (iis orgno, EURid vat, dkhm CVR).
    """

    id: str = "RGREGISTRAR"
    name: str = "Registrar Operations"
    org: str = "Example Hosting AB"
    street: tuple[str, ...] = ("Box 1",)
    city: str = "Stockholm"
    pc: str = "10000"
    cc: str = "SE"
    email: str = "hostmaster@registrar.invalid"
    voice: str = "+46.80000000"
    orgno: str = "[SE]556677-8899"
    vat: str = "SE556677889901"
    lang: str = "en"


def _object_id(prefix: str, reg_id: str, role: str) -> str:
    digest = hashlib.sha256(f"{reg_id}:{role}".encode()).digest()
    return (prefix + base64.b32encode(digest).decode()[:12]).upper()


def auth_code(secret: bytes, reg_id: str, obj: str | None = None) -> str:
    """Deterministic per registration and object, unguessable without the gateway's secret.

    ``obj`` names the object (``"contact:RGABC"``, ``"domain:exempel.se"``): the domain's code is
    given to the holder for transfers, and must not also open the holder's contact.  ``None``
    gives the code of the registration as a whole (the form every object shared before).
    """
    label = f"authinfo:{reg_id}" if obj is None else f"authinfo:{reg_id}:{obj}"
    mac = hmac.new(secret, label.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _s(values: dict[str, Any], key: str) -> str | None:
    v = values.get(key)
    return v if isinstance(v, str) else None


def _extensions(
    registry_extensions: Sequence[str], v: dict[str, Any], kind: str, nexus: NeulevelContactExt | None
) -> tuple[ContactExtension, ...]:
    """The registrant contact's registry extensions, from released values (and the .us nexus)."""
    out: list[ContactExtension] = []
    for ext in registry_extensions:
        if ext == "iis":
            out.append(IisContactExt(orgno=_s(v, "national_id"), vatno=_s(v, "vat_number")))
        elif ext == "eurid":
            out.append(
                EuridContactExt(
                    type="registrant",
                    natural_person=kind == "person",
                    lang=_s(v, "language"),
                    vat=_s(v, "vat_number"),
                    country_of_citizenship=_s(v, "citizenship"),
                )
            )
        elif ext == "dkhm":
            cvr = _s(v, "national_id") if v.get("national_id_scheme") == "dk_cvr" else None
            out.append(DkhmContactExt(user_type="individual" if kind == "person" else "company", cvr=cvr))
        elif ext == "norid":
            norid = norid_contact(v, kind)
            if norid is not None:
                out.append(norid)
        elif ext == "ficora":
            out.append(ficora_contact(v, kind))
        elif ext == "neulevel" and nexus is not None:
            # the nexus is the holder's, so it rides on the registrant contact (Net::DRI US/Contact.pm)
            out.append(nexus)
    return tuple(out)


def norid_contact(v: dict[str, Any], kind: str) -> NoridContactExt | None:
    """Norid's contact type and identity: every person is a ``person`` contact, identified by the
    fødselsnummer when that is released; an organisation by its 9-digit organisation number.

    A foreign organisation (no Norwegian number) gets no extension: Norid identifies organisations
    only by Enhetsregisteret numbers, and sending ``organization`` without one is refused."""
    scheme, number = v.get("national_id_scheme"), _s(v, "national_id")
    if kind == "person":
        if scheme == "no_fodselsnummer" and number is not None:
            return NoridContactExt(identity_type="nationalIdentityNumber", identity=number, contact_type="person")
        return NoridContactExt(contact_type="person")
    if scheme == "no_organisasjonsnummer" and number is not None:
        return NoridContactExt(identity_type="organizationNumber", identity=number)
    return None


def _split_name(name: str) -> tuple[str | None, str]:
    """Simplification: the last word is the last name, everything before it the first name(s).

    Wrong for multi-word surnames ("Anna von Berg"); the gateway has no separate name fields."""
    words = name.split()
    return (" ".join(words[:-1]) or None, words[-1]) if words else (None, name)


_ORGANISATION_SCHEMES = frozenset({"se_organisationsnummer", "dk_cvr", "no_organisasjonsnummer"})


def ficora_contact(v: dict[str, Any], kind: str) -> FiContactExt:
    """Traficom's members of the holder's contact, from released values only.

    * type: 0 private person or 1 company -- the gateway does not know an organisation's legal form
      (association, municipality ...), so every organisation is sent as a company (UNCONFIRMED
      whether Traficom checks the type against the register).
    * isfinnish: 1 when a Finnish number (HETU / Y-tunnus) is released, else from the country.
    * identity: the HETU, only for scheme ``fi_hetu``; a foreign person is identified by birthDate
      instead [NDRI] (a Swedish personnummer is not sent; ``carried_fields`` logs it as withheld).
    * registernumber: the Y-tunnus (NNNNNNN-N) for ``fi_ytunnus``, else a foreign organisation's own
      register number (Traficom wants one from every organisation [NDRI]).
    * firstname/lastname: persons only, split from the released name (see ``_split_name``).
    * legalemail: the released e-mail (mandatory for a holder).
    """
    scheme = v.get("national_id_scheme")
    number = _s(v, "national_id")
    identity = number if scheme == "fi_hetu" and kind == "person" else None
    registernumber = None
    finnish_number = False
    if kind == "organisation" and number is not None:
        if scheme == "fi_ytunnus":
            digits = number.replace("-", "")
            registernumber, finnish_number = f"{digits[:-1]}-{digits[-1]}", True
        elif scheme in _ORGANISATION_SCHEMES:  # a foreign organisation's own register number [NDRI]
            registernumber = number
    birth_date = _s(v, "birth_date") if kind == "person" and identity is None else None
    is_finnish = identity is not None or finnish_number or (v.get("country") == "FI" and birth_date is None)
    first, last = _split_name(cast(str, v["name"])) if kind == "person" else (None, None)
    return FiContactExt(
        role=5, type=0 if kind == "person" else 1, is_finnish=is_finnish, firstname=first, lastname=last,
        identity=identity, registernumber=registernumber, legalemail=_s(v, "email"), birth_date=birth_date,
    )


def carried_fields(contact: ContactCreate, released: set[str]) -> set[str]:
    """Pure: the registrant fields a subject's contact object actually carries on the wire.

    A policy may release a field for which the registry has no element (a Swedish organisation
    number at .dk, the person/organisation kind at most registries): that field does not leave, and
    the disclosure log must say so rather than list it as sent."""
    pi = contact.postal_info
    postal = (("organisation", pi.org), ("street", pi.street), ("state", pi.sp), ("postal_code", pi.pc),
              ("phone", contact.voice), ("fax", contact.fax))
    return _carried(postal, contact.extensions, released)


def _carried(
    postal: Iterable[tuple[str, object]], extensions: Iterable[ContactExtension], released: set[str]
) -> set[str]:
    """The fields a contact carries: the RFC 5733 minimum, each optional member that is set (``postal``:
    field name and the member's value) and what its registry extensions say."""
    out = {"name", "city", "country", "email"}
    out |= {f for f, v in postal if v}
    for ext in extensions:
        if isinstance(ext, IisContactExt):
            out |= {f for f, v in (("national_id", ext.orgno), ("vat_number", ext.vatno)) if v}
        elif isinstance(ext, EuridContactExt):
            out |= {"kind"} | {f for f, v in (("language", ext.lang), ("vat_number", ext.vat),
                                              ("citizenship", ext.country_of_citizenship)) if v}
        elif isinstance(ext, DkhmContactExt):
            out |= {"kind"} | ({"national_id"} if ext.cvr or ext.pnumber else set())
        elif isinstance(ext, NoridContactExt):
            # the contact type (person / organization) says which kind the holder is
            out |= {"kind"} | ({"national_id"} if ext.identity else set())
        elif isinstance(ext, FiContactExt):
            # role/type say person or organisation; isfinnish derives from the country or the number sent
            out |= {"kind"} | ({"national_id"} if ext.identity or ext.registernumber else set())
            out |= {"birth_date"} if ext.birth_date else set()
    if "national_id" in out:
        out.add("national_id_scheme")  # the number's form or [CC] prefix says which scheme it is
    return out & released


@dataclasses.dataclass(frozen=True)
class RegistrationOrder:
    """What a registration's EPP commands are built from when they are sent (``commands_for``), besides
    the released values sealed beside it.

    Accepting a registration decides what must not move between its attempts: the subject contact's id
    and each object's auth code (derived from the registration id and the gateway's secret, so a retried
    or crash-recovered registration addresses the same objects, and the delivery worker needs no secret),
    the registrar contact's id, the holder's disclose preference.  The registry's policy (its contact
    roles and extensions) and the registrar's company data are applied when the commands are built: the
    commands themselves are never built at acceptance, where nothing sends them.
    """

    domain: str
    period_years: int
    nameservers: tuple[str, ...]
    kind: str  # the holder's kind (person | organisation), which some registry extensions state
    contact_id: str  # the subject contact's id, used where the registry's policy wants one
    contact_auth: str
    domain_auth: str
    registrar_id: str
    registrar_auth: str
    #: the policy's disclose preference for the holder, narrowed to the registry's schema when built
    disclose: DiscloseSpec | None = None
    #: the .us nexus, which rides on the registrant contact
    nexus: NeulevelContactExt | None = None

    def needs_subject(self, policy: RecipientPolicy) -> bool:
        """Does this registry's policy want a contact made of the subject's data?"""
        assert policy.epp is not None
        return ContactSource.SUBJECT in policy.epp.contacts.values()


def registration_order(
    req: RegistrationRequest,
    reg_id: str,
    m: Minimised,
    policy: RecipientPolicy,
    registrar: RegistrarContact,
    secret: bytes,
) -> RegistrationOrder:
    """Pure: the order a registration's commands are built from at send time.  ``RequiredFieldMissing``
    when the registry wants a subject contact and the policy does not release the RFC 5733 minimum."""
    assert policy.epp is not None
    epp = policy.epp
    if ContactSource.SUBJECT in epp.contacts.values():
        _require_minimum(m.values, policy)
    contact_id = _object_id(epp.contact_id_prefix, reg_id, "subject")
    n = req.us_nexus
    return RegistrationOrder(
        domain=req.domain,
        period_years=req.period_years,
        nameservers=tuple(req.nameservers),
        kind=req.registrant.kind,
        contact_id=contact_id,
        contact_auth=auth_code(secret, reg_id, f"contact:{contact_id}"),
        domain_auth=auth_code(secret, reg_id, f"domain:{req.domain}"),
        registrar_id=registrar.id,
        registrar_auth=auth_code(secret, "registrar"),
        disclose=DiscloseSpec(flag=m.disclose.flag, elements=tuple(m.disclose.elements)) if m.disclose else None,
        nexus=NeulevelContactExt(n.app_purpose, n.nexus_category, n.nexus_country) if n is not None else None,
    )


def _require_minimum(values: Mapping[str, Any], policy: RecipientPolicy) -> None:
    missing = [f for f in CONTACT_MINIMUM if f not in values]
    if missing:
        raise RequiredFieldMissing(
            f"policy for {policy.recipient} does not release {', '.join(missing)}, needed for a contact"
        )


def _street(v: Mapping[str, Any]) -> tuple[str, ...]:
    """The street lines: a tuple as minimised, a list once they came back from stored JSON."""
    street = v.get("street", ())
    return tuple(street) if isinstance(street, tuple | list) else (street,)


def carried_by_order(order: RegistrationOrder, values: Mapping[str, Any], policy: RecipientPolicy) -> set[str]:
    """Pure: exactly ``carried_fields`` of the subject contact ``commands_for`` builds from ``values``,
    without building it (no phone parsing, no auth codes, no command objects): acceptance narrows the
    released fields to these.  Empty when the registry takes no subject contact."""
    assert policy.epp is not None
    if not order.needs_subject(policy):
        return set()
    v = dict(values)
    postal = (("organisation", _s(v, "organisation")), ("street", _street(v)), ("state", _s(v, "state")),
              ("postal_code", _s(v, "postal_code")), ("phone", _s(v, "phone")), ("fax", _s(v, "fax")))
    return _carried(postal, _extensions(policy.epp.extensions, v, order.kind, order.nexus), set(values))


def commands_for(
    order: RegistrationOrder, values: Mapping[str, Any], policy: RecipientPolicy, registrar: RegistrarContact
) -> RegistrationCommands:
    """Pure: the commands of a registration, built when it is sent from its order, the released values
    (as sealed: street lines may be a list) and the registry's policy; ``registrar`` gives the company
    data of the registrar's own contact, whose id and auth code the order fixed."""
    assert policy.epp is not None
    epp = policy.epp
    contacts: list[ContactCreate] = []
    roles: dict[str, str] = {}
    if order.needs_subject(policy):
        _require_minimum(values, policy)
        v = dict(values)
        name = cast(str, v["name"])
        street_t = _street(v)
        texts = [name, cast(str, v["city"]), *street_t, _s(v, "organisation") or ""]
        ptype: Literal["int", "loc"] = "int" if all(t.isascii() for t in texts) else "loc"
        contacts.append(ContactCreate(
            id=order.contact_id,
            postal_info=PostalInfo(
                name=name,
                org=_s(v, "organisation"),
                street=street_t,
                city=cast(str, v["city"]),
                sp=_s(v, "state"),
                pc=_s(v, "postal_code"),
                cc=cast(str, v["country"]),
                type=ptype,
            ),
            email=cast(str, v["email"]),
            auth_pw=order.contact_auth,
            voice=epp_phone(p) if (p := _s(v, "phone")) else None,
            fax=epp_phone(f) if (f := _s(v, "fax")) else None,
            disclose=_disclose(order.disclose, epp.extensions),
            extensions=_extensions(epp.extensions, v, order.kind, order.nexus),
        ))
    needs_registrar = ContactSource.REGISTRAR in epp.contacts.values()
    if needs_registrar:
        contacts.append(
            ContactCreate(
                id=order.registrar_id,
                postal_info=PostalInfo(
                    name=registrar.name, org=registrar.org, street=registrar.street, city=registrar.city,
                    pc=registrar.pc, cc=registrar.cc, type="int",
                ),
                email=registrar.email,
                auth_pw=order.registrar_auth,
                voice=registrar.voice,
                extensions=registrar_extensions(registrar, epp.extensions),
            )
        )
    for role, source in epp.contacts.items():
        roles[role] = contacts[0].id if source is ContactSource.SUBJECT else order.registrar_id
    domain = DomainCreate(
        name=order.domain,
        period_years=order.period_years,
        auth_pw=order.domain_auth,
        nameservers=order.nameservers,
        registrant=roles.get("registrant"),
        contacts=tuple(
            (cast(Literal["admin", "tech", "billing"], r), cid) for r, cid in roles.items() if r != "registrant"
        ),
    )
    return RegistrationCommands(
        contacts=tuple(contacts),
        domain=domain,
        registrar_contacts=frozenset({order.registrar_id}) if needs_registrar else frozenset(),
    )


def build_commands(
    req: RegistrationRequest,
    reg_id: str,
    m: Minimised,
    policy: RecipientPolicy,
    registrar: RegistrarContact,
    secret: bytes,
) -> RegistrationCommands:
    """Pure: a registration's commands in one step (its order, then the commands), for callers that send
    at once (the raw-client benchmark); the gateway builds the order at acceptance and the commands in
    the delivery worker."""
    return commands_for(registration_order(req, reg_id, m, policy, registrar, secret), m.values, policy, registrar)


#: Traficom's <contact:disclose> holds only these (traficom-contact1.xsd), in this order.
_FI_DISCLOSE = ("voice", "email", "addr")


def _disclose(preference: DiscloseSpec | None, registry_extensions: Sequence[str]) -> DiscloseSpec | None:
    """The policy's disclose preference, narrowed to what the registry's schema can carry.

    At .fi only voice, email and addr can be flagged; name, org and fax have no element there, so
    they are left out (Traficom decides their publication by its own rules)."""
    if not preference:
        return None
    elements = preference.elements
    if "ficora" in registry_extensions:
        elements = tuple(e for e in elements if e in _FI_DISCLOSE)
        if not elements:
            return None
    return DiscloseSpec(flag=preference.flag, elements=elements)


def registrar_extensions(registrar: RegistrarContact, registry_extensions: Sequence[str]) -> tuple[
    ContactExtension, ...
]:
    """The registry extension the registrar's own (technical) contact needs to be created there.

    Company data only: the registrar's organisation number, VAT number and language.  Registries
    that want an extension on every contact refuse a create without it, and the registrar contact
    must be creatable wherever it is missing (a new registry account, a test environment reset)."""
    out: list[ContactExtension] = []
    for ext in registry_extensions:
        if ext == "iis":
            out.append(IisContactExt(orgno=registrar.orgno, vatno=registrar.vat))
        elif ext == "eurid":
            out.append(EuridContactExt(type="tech", natural_person=False, lang=registrar.lang, vat=registrar.vat))
        elif ext == "dkhm":
            out.append(DkhmContactExt(user_type="company", cvr=registrar.vat))
        elif ext == "norid":
            out.append(NoridContactExt(contact_type="role"))  # a role contact: a function, not a person
        elif ext == "ficora":
            # Traficom wants role and type on every contact: a technical contact (4), a company (1)
            out.append(FiContactExt(role=4, type=1, is_finnish=registrar.cc == "FI"))
    return tuple(out)


_POSTAL = ("name", "organisation")
_ADDRESS = ("street", "city", "state", "postal_code", "country")
#: Fields a registry keeps fixed on a contact: a change needs a new contact (a holder change).
_FIXED = {"iis": {"national_id", "national_id_scheme", "kind"}, "dkhm": {"national_id", "kind"},
          "norid": {"national_id", "kind"}, "eurid": {"kind"}}


def contact_update(contact_id: str, policy: RecipientPolicy, new: dict[str, Any],
                   changed: set[str]) -> tuple[ContactUpdate | None, set[str]]:
    """Pure: the <contact:update> for the changed released fields, and the fields it cannot carry."""
    assert policy.epp is not None
    fixed = set().union(*(_FIXED.get(e, set()) for e in policy.epp.extensions)) & changed
    postal: PostalInfoChange | None = None
    if changed & {*_POSTAL, *_ADDRESS}:
        texts = [str(new.get("name", "")), str(new.get("city", "")), *new.get("street", []),
                 str(new.get("organisation") or "")]
        addr = None
        if changed & set(_ADDRESS):
            addr = Address(city=new["city"], cc=new["country"], street=tuple(new.get("street", ())),
                           sp=new.get("state"), pc=new.get("postal_code"))
        postal = PostalInfoChange(
            type="int" if all(t.isascii() for t in texts) else "loc",
            name=new.get("name") if "name" in changed else None,
            org=(new.get("organisation") or "") if "organisation" in changed else None,
            addr=addr,
        )
    exts: list[ContactUpdateExtension] = []
    if "iis" in policy.epp.extensions and "vat_number" in changed and new.get("vat_number"):
        exts.append(IisContactUpdate(vatno=new["vat_number"]))
    eurid: dict[str, str] = {}
    if "eurid" in policy.epp.extensions:  # a value can be changed there, not removed
        for field, member in (("vat_number", "vat"), ("language", "lang"), ("citizenship", "country_of_citizenship")):
            if field in changed and new.get(field):
                eurid[member] = new[field]
        if eurid:
            exts.append(EuridContactUpdate(**eurid))  # type: ignore[arg-type]
    phone = new.get("phone")
    fax = new.get("fax")
    cmd = ContactUpdate(
        id=contact_id,
        postal_info=(postal,) if postal else (),
        voice=(epp_phone(phone) if phone else "") if "phone" in changed else None,
        fax=(epp_phone(fax) if fax else "") if "fax" in changed else None,
        email=new.get("email") if "email" in changed else None,
        extensions=tuple(exts),
    )
    carried = {f for f in changed if f in (*_POSTAL, *_ADDRESS, "phone", "fax", "email")}
    carried |= {"vat_number"} if any(isinstance(e, IisContactUpdate) for e in exts) else set()
    carried |= {f for f, m in (("vat_number", "vat"), ("language", "lang"),
                               ("citizenship", "country_of_citizenship")) if m in eurid}
    missing = (changed - carried) | fixed
    return (cmd if carried else None), missing


# -- outbox codec ----------------------------------------------------------------------------------

_EXT_TYPES: dict[str, type[Any]] = {
    "iis": IisContactExt, "eurid": EuridContactExt, "dkhm": DkhmContactExt, "norid": NoridContactExt,
    "neulevel": NeulevelContactExt, "ficora": FiContactExt,
}
_EXT_NAMES = {v: k for k, v in _EXT_TYPES.items()}


def _disclose_from_json(d: dict[str, Any] | None) -> DiscloseSpec | None:
    return DiscloseSpec(flag=d["flag"], elements=tuple(d["elements"])) if d else None


def commands_to_json(cmds: RegistrationCommands) -> dict[str, Any]:
    def contact(c: ContactCreate) -> dict[str, Any]:
        d = dataclasses.asdict(c)
        d["extensions"] = [{"kind": _EXT_NAMES[type(e)], **dataclasses.asdict(e)} for e in c.extensions]
        return d

    domain = dataclasses.asdict(cmds.domain)
    domain["extensions"] = [{"kind": _EXT_NAMES[type(e)], **dataclasses.asdict(e)} for e in cmds.domain.extensions]
    out: dict[str, Any] = {"contacts": [contact(c) for c in cmds.contacts], "domain": domain}
    if cmds.registrar_contacts:  # omitted when empty: rows written before the field decode unchanged
        out["registrar_contacts"] = sorted(cmds.registrar_contacts)
    return out


def commands_from_json(data: dict[str, Any]) -> RegistrationCommands:
    contacts = []
    for c in data["contacts"]:
        exts = []
        for e in c["extensions"]:
            e = dict(e)
            exts.append(_EXT_TYPES[e.pop("kind")](**e))
        pi = dict(c["postal_info"])
        pi["street"] = tuple(pi["street"])
        contacts.append(
            ContactCreate(
                id=c["id"], postal_info=PostalInfo(**pi), email=c["email"], auth_pw=c["auth_pw"],
                voice=c["voice"], fax=c["fax"], disclose=_disclose_from_json(c.get("disclose")),
                extensions=tuple(exts),
            )
        )
    d = data["domain"]
    domain = DomainCreate(
        name=d["name"], period_years=d["period_years"], auth_pw=d["auth_pw"],
        nameservers=tuple(d["nameservers"]), registrant=d["registrant"],
        contacts=tuple((r, i) for r, i in d["contacts"]),
        extensions=tuple(_EXT_TYPES[e.pop("kind")](**e) for e in map(dict, d.get("extensions", []))),
    )
    return RegistrationCommands(
        contacts=tuple(contacts), domain=domain, registrar_contacts=frozenset(data.get("registrar_contacts", ())),
    )


def order_to_json(order: RegistrationOrder) -> dict[str, Any]:
    """The stored form of a registration's order: plain members, written out (no ``asdict``)."""
    out: dict[str, Any] = {
        "domain": order.domain, "period_years": order.period_years, "nameservers": list(order.nameservers),
        "kind": order.kind, "contact_id": order.contact_id, "contact_auth": order.contact_auth,
        "domain_auth": order.domain_auth, "registrar_id": order.registrar_id, "registrar_auth": order.registrar_auth,
    }
    if order.disclose is not None:
        out["disclose"] = {"flag": order.disclose.flag, "elements": list(order.disclose.elements)}
    if order.nexus is not None:
        n = order.nexus
        out["nexus"] = {"app_purpose": n.app_purpose, "nexus_category": n.nexus_category,
                        "nexus_country": n.nexus_country}
    return out


def order_from_json(d: Mapping[str, Any]) -> RegistrationOrder:
    n = d.get("nexus")
    return RegistrationOrder(
        domain=d["domain"], period_years=int(d["period_years"]), nameservers=tuple(d["nameservers"]),
        kind=d["kind"], contact_id=d["contact_id"], contact_auth=d["contact_auth"], domain_auth=d["domain_auth"],
        registrar_id=d["registrar_id"], registrar_auth=d["registrar_auth"],
        disclose=_disclose_from_json(d.get("disclose")),
        nexus=NeulevelContactExt(n["app_purpose"], n["nexus_category"], n.get("nexus_country")) if n else None,
    )


def nexus_on_registrant(cmds: RegistrationCommands) -> RegistrationCommands:
    """Pure: a registration queued before the .us nexus moved, with the nexus moved to the registrant.

    Rows written then carry ``NeulevelContactExt`` on the domain create, which the builder now
    refuses (.us takes it on the registrant's contact).  Decoding stays faithful -- the row's digest
    is quoted by disclosure entries -- so the move happens here, just before sending; for every
    other registration this returns ``cmds`` itself."""
    nexus = tuple(e for e in cmds.domain.extensions if isinstance(e, NeulevelContactExt))
    registrant = cmds.domain.registrant
    if not nexus or registrant is None:
        return cmds
    contacts = tuple(
        dataclasses.replace(c, extensions=(*c.extensions, *nexus))
        if c.id == registrant and not any(isinstance(e, NeulevelContactExt) for e in c.extensions) else c
        for c in cmds.contacts
    )
    rest = tuple(e for e in cmds.domain.extensions if not isinstance(e, NeulevelContactExt))
    return dataclasses.replace(cmds, contacts=contacts, domain=dataclasses.replace(cmds.domain, extensions=rest))


# -- outbox codec for contact updates -------------------------------------------------------------------

_UPDATE_EXTS: dict[str, type[Any]] = {"iis": IisContactUpdate, "eurid": EuridContactUpdate}
_UPDATE_EXT_NAMES = {v: k for k, v in _UPDATE_EXTS.items()}


def contact_update_to_json(cmd: ContactUpdate) -> dict[str, Any]:
    d = dataclasses.asdict(cmd)
    d["extensions"] = [{"kind": _UPDATE_EXT_NAMES[type(e)], **dataclasses.asdict(e)} for e in cmd.extensions]
    return d


def contact_update_from_json(d: dict[str, Any]) -> ContactUpdate:
    postal = []
    for p in d["postal_info"]:
        addr = p.get("addr")
        postal.append(PostalInfoChange(
            type=p["type"], name=p["name"], org=p["org"],
            addr=Address(city=addr["city"], cc=addr["cc"], street=tuple(addr["street"]), sp=addr["sp"],
                         pc=addr["pc"]) if addr else None,
        ))
    return ContactUpdate(
        id=d["id"], add_status=tuple(d.get("add_status", ())), rem_status=tuple(d.get("rem_status", ())),
        postal_info=tuple(postal), voice=d["voice"], fax=d["fax"], email=d["email"], auth_pw=d.get("auth_pw"),
        disclose=_disclose_from_json(d.get("disclose")),
        extensions=tuple(_UPDATE_EXTS[e.pop("kind")](**e) for e in map(dict, d["extensions"])),
    )
