"""The one place where EPP XML is written and read.

Frames are built as lxml trees, never from string templates: a registrant's name containing ``<`` or
``&`` must not be able to change the structure of a command, and element order (which the XSDs
enforce) is easier to audit when it is spelled out as code.  Registry extensions are built by their
own modules under ``adapters.epp.extensions``; this module is the single entry point that puts them
under <extension>.  Responses are parsed with entity expansion, DTD loading and network access
switched off, because they come from a peer we do not control.

The server side's frames (greeting, response) are written here too, for the sandbox registry and
the recording transport, so that both speak exactly what the client parses.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, cast

from lxml import etree

from adapters.epp import extensions
from adapters.epp._xmlutil import q as _q
from adapters.epp._xmlutil import sub as _sub
from adapters.epp._xmlutil import subs as _subs
from adapters.epp.types import (
    Address,
    ContactCreate,
    ContactDelete,
    ContactInfo,
    ContactUpdate,
    DiscloseSpec,
    DomainAvailability,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    EppResult,
    Greeting,
    PendingAction,
    PollAck,
    PollMessage,
    PollRequest,
    PostalInfo,
    TransferData,
)
from gateway.errors import EppXmlError, ProtocolMismatch

NS_EPP: Final = "urn:ietf:params:xml:ns:epp-1.0"
NS_EPPCOM: Final = "urn:ietf:params:xml:ns:eppcom-1.0"
NS_CONTACT: Final = "urn:ietf:params:xml:ns:contact-1.0"
NS_DOMAIN: Final = "urn:ietf:params:xml:ns:domain-1.0"
NS_HOST: Final = "urn:ietf:params:xml:ns:host-1.0"
NS_SECDNS: Final = "urn:ietf:params:xml:ns:secDNS-1.1"
NS_RGP: Final = "urn:ietf:params:xml:ns:rgp-1.0"

SUPPORTED_OBJ_URIS: Final = (NS_CONTACT, NS_DOMAIN, NS_HOST)
"""Object services we can speak; login asks for the ones the server also offers."""

SUPPORTED_EXT_URIS: Final = extensions.SUPPORTED_EXT_URIS
"""Extensions we can emit; login announces only those the server also offers."""

EPP_VERSION: Final = "1.0"
MAX_CL_TRID: Final = 64
MAX_PERIOD_YEARS: Final = 99

NSMAP: Final = {"epp": NS_EPP, "contact": NS_CONTACT, "domain": NS_DOMAIN, "host": NS_HOST, **extensions.PREFIXES}
"""Prefixes for parsing paths (``"contact:id"``); each registry module names its own."""

# RFC 5733 section 2.9 / contact-1.0.xsd discloseType: this order is enforced by the schema.
_DISCLOSE_ORDER: Final = ("name", "org", "addr", "voice", "fax", "email")
_DISCLOSE_TYPED: Final = frozenset({"name", "org", "addr"})


@dataclass(frozen=True)
class Response:
    """A parsed <response>: the first <result> plus whichever resData we understand."""

    result: EppResult
    created_name: str | None = None  # domain:creData/name
    created_id: str | None = None  # contact:creData/id
    created_date: str | None = None
    expiry_date: str | None = None
    domain_info: DomainInfo | None = None
    contact_info: ContactInfo | None = None
    renewed_name: str | None = None  # domain:renData/name
    transfer: TransferData | None = None  # domain:trnData (transfer answers and poll messages)
    msg_count: int | None = None  # msgQ/@count
    message: PollMessage | None = None  # msgQ with content (poll req)
    msg_id: str | None = None  # msgQ/@id
    checked: tuple[DomainAvailability, ...] | None = None  # domain:chkData
    pending_action: PendingAction | None = None  # domain:panData, contact:panData
    res_kind: str | None = None  # the resData's element, e.g. "domain:trnData"


# --------------------------------------------------------------------------------------------
# building


def _root() -> etree._Element:
    # lxml-stubs type nsmap keys as str, but None is lxml's documented key for the default namespace.
    return etree.Element(_q(NS_EPP, "epp"), nsmap=cast("dict[str, str]", {None: NS_EPP}))


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=False)


def _check_cl_trid(cl_trid: str) -> str:
    if not 3 <= len(cl_trid) <= MAX_CL_TRID or cl_trid != " ".join(cl_trid.split()):
        raise ValueError("clTRID must be 3-64 characters without leading, trailing or repeated spaces")
    return cl_trid


def _command(verb: str) -> tuple[etree._Element, etree._Element, etree._Element]:
    root = _root()
    command = _sub(root, NS_EPP, "command")
    return root, command, _sub(command, NS_EPP, verb)


def _object(parent: etree._Element, prefix: str, ns: str, name: str) -> etree._Element:
    """Object element that declares its own prefix, as the RFC examples do."""
    return etree.SubElement(parent, _q(ns, name), nsmap={prefix: ns})


def _finish(
    root: etree._Element,
    command: etree._Element,
    cl_trid: str,
    ext_elements: Iterable[etree._Element] = (),
) -> bytes:
    elements = list(ext_elements)
    if elements:
        extension = _sub(command, NS_EPP, "extension")
        for el in elements:
            extension.append(el)
    _sub(command, NS_EPP, "clTRID", _check_cl_trid(cl_trid))
    return _serialize(root)


def _finish_update(
    root: etree._Element,
    command: etree._Element,
    obj: etree._Element,
    cl_trid: str,
    exts: Iterable[extensions.AnyExtension],
    verb: str,
) -> bytes:
    """``_finish`` for an update, refusing one that would change nothing (only its key in ``obj``).

    The schemas require at least one of add/rem/chg, and an empty update would only hide a bug.
    """
    ext_elements = [el for ext in exts for el in extensions.elements(ext, verb)]
    if len(obj) == 1 and not ext_elements:
        raise ValueError(f"{verb.replace(':', ' ')} changes nothing")
    return _finish(root, command, cl_trid, ext_elements)


def _single(verb: str, prefix: str, ns: str, key: str, value: str, cl_trid: str) -> bytes:
    """A command whose object element holds one key (``<contact:delete><contact:id>``)."""
    root, command, element = _command(verb)
    _sub(_object(element, prefix, ns, verb), ns, key, value)
    return _finish(root, command, cl_trid)


def build_hello() -> bytes:
    """<hello/>: the server answers with a fresh greeting, which makes a cheap keep-alive."""
    root = _root()
    _sub(root, NS_EPP, "hello")
    return _serialize(root)


def negotiate_services(greeting: Greeting) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Intersect what the server offers with what we support, in our preference order.

    Asking for a service the server did not announce is a login error (2307/2103) on strict
    registries, so we never do; a server without the domain service is useless to us.
    """
    obj_uris = tuple(uri for uri in SUPPORTED_OBJ_URIS if uri in greeting.obj_uris)
    if NS_DOMAIN not in obj_uris:
        raise ProtocolMismatch("server does not offer the domain object service")
    ext_uris = tuple(uri for uri in SUPPORTED_EXT_URIS if uri in greeting.ext_uris)
    return obj_uris, ext_uris


def build_login(
    client_id: str, password: str, greeting: Greeting, cl_trid: str, *, lang: str = "en"
) -> bytes:
    """<login> with services negotiated from ``greeting``."""
    if EPP_VERSION not in greeting.versions:
        raise ProtocolMismatch("server does not offer EPP version 1.0")
    obj_uris, ext_uris = negotiate_services(greeting)
    root, command, login = _command("login")
    _sub(login, NS_EPP, "clID", client_id)
    _sub(login, NS_EPP, "pw", password)
    options = _sub(login, NS_EPP, "options")
    _sub(options, NS_EPP, "version", EPP_VERSION)
    _sub(options, NS_EPP, "lang", lang if lang in greeting.langs or not greeting.langs else greeting.langs[0])
    svcs = _sub(login, NS_EPP, "svcs")
    for uri in obj_uris:
        _sub(svcs, NS_EPP, "objURI", uri)
    if ext_uris:
        svc_ext = _sub(svcs, NS_EPP, "svcExtension")
        for uri in ext_uris:
            _sub(svc_ext, NS_EPP, "extURI", uri)
    return _finish(root, command, cl_trid)


def build_logout(cl_trid: str) -> bytes:
    root, command, _ = _command("logout")
    return _finish(root, command, cl_trid)


# ---- contacts --------------------------------------------------------------------------------


def _statuses(parent: etree._Element, ns: str, statuses: Iterable[str]) -> None:
    for status in statuses:
        _sub(parent, ns, "status").set("s", status)


def _auth_info(parent: etree._Element, ns: str, password: str | None) -> None:
    """``<authInfo><pw>`` when a password is given (``ns``: the object's namespace)."""
    if password is not None:
        _sub(_sub(parent, ns, "authInfo"), ns, "pw", password)


def _addr(parent: etree._Element, street: tuple[str, ...], city: str, sp: str | None, pc: str | None, cc: str) -> None:
    if len(street) > 3:
        raise ValueError("RFC 5733 allows at most three street lines")
    addr = _sub(parent, NS_CONTACT, "addr")
    for line in street:
        _sub(addr, NS_CONTACT, "street", line)
    _subs(addr, NS_CONTACT, (("city", city), ("sp", sp), ("pc", pc), ("cc", cc)))


def _postal_info(parent: etree._Element, info: PostalInfo) -> None:
    el = _sub(parent, NS_CONTACT, "postalInfo")
    el.set("type", info.type)
    _subs(el, NS_CONTACT, (("name", info.name), ("org", info.org)))
    _addr(el, info.street, info.city, info.sp, info.pc, info.cc)


def _disclose(parent: etree._Element, spec: DiscloseSpec | None, postal_type: str) -> None:
    """RFC 5733 <contact:disclose>, elements in schema order; ``addr``/``name``/``org`` typed."""
    if spec is None or not spec.elements:
        return
    unknown = set(spec.elements) - set(_DISCLOSE_ORDER)
    if unknown:
        raise ValueError(f"unknown disclose elements: {sorted(unknown)}")
    disclose = _sub(parent, NS_CONTACT, "disclose")
    disclose.set("flag", str(spec.flag))
    for name in _DISCLOSE_ORDER:
        if name in spec.elements:
            el = _sub(disclose, NS_CONTACT, name)
            if name in _DISCLOSE_TYPED:
                el.set("type", postal_type)


def build_contact_create(cmd: ContactCreate, cl_trid: str) -> bytes:
    """<contact:create> in RFC 5733 element order, with registry extensions under <extension>."""
    root, command, create = _command("create")
    obj = _object(create, "contact", NS_CONTACT, "create")
    _sub(obj, NS_CONTACT, "id", cmd.id)
    _postal_info(obj, cmd.postal_info)
    _subs(obj, NS_CONTACT, (("voice", cmd.voice), ("fax", cmd.fax), ("email", cmd.email)))
    _auth_info(obj, NS_CONTACT, cmd.auth_pw)
    _disclose(obj, cmd.disclose, cmd.postal_info.type)
    for ext in cmd.extensions:
        extensions.amend_contact_create(obj, ext)  # .fi: Traficom's members inside <contact:create>
    ext_elements = [el for ext in cmd.extensions for el in extensions.elements(ext, "contact:create")]
    return _finish(root, command, cl_trid, ext_elements)


def build_contact_update(cmd: ContactUpdate, cl_trid: str) -> bytes:
    """<contact:update>: add, rem, chg in schema order; only the members that are set."""
    if len({p.type for p in cmd.postal_info}) != len(cmd.postal_info) or len(cmd.postal_info) > 2:
        raise ValueError("at most one 'int' and one 'loc' postalInfo change")
    root, command, update = _command("update")
    obj = _object(update, "contact", NS_CONTACT, "update")
    _sub(obj, NS_CONTACT, "id", cmd.id)
    if cmd.add_status:
        _statuses(_sub(obj, NS_CONTACT, "add"), NS_CONTACT, cmd.add_status)
    if cmd.rem_status:
        _statuses(_sub(obj, NS_CONTACT, "rem"), NS_CONTACT, cmd.rem_status)
    changes = (cmd.postal_info, cmd.voice, cmd.fax, cmd.email, cmd.auth_pw, cmd.disclose)
    if any(c for c in changes if c is not None and c != ()):
        chg = _sub(obj, NS_CONTACT, "chg")
        for change in cmd.postal_info:
            pi = _sub(chg, NS_CONTACT, "postalInfo")
            pi.set("type", change.type)
            _subs(pi, NS_CONTACT, (("name", change.name), ("org", change.org)))
            if change.addr is not None:
                a: Address = change.addr
                _addr(pi, a.street, a.city, a.sp, a.pc, a.cc)
        _subs(chg, NS_CONTACT, (("voice", cmd.voice), ("fax", cmd.fax), ("email", cmd.email)))
        _auth_info(chg, NS_CONTACT, cmd.auth_pw)
        postal_type = cmd.postal_info[0].type if cmd.postal_info else "loc"
        _disclose(chg, cmd.disclose, postal_type)
    return _finish_update(root, command, obj, cl_trid, cmd.extensions, "contact:update")


def build_contact_delete(cmd: ContactDelete, cl_trid: str) -> bytes:
    return _single("delete", "contact", NS_CONTACT, "id", cmd.id, cl_trid)


def build_contact_info(contact_id: str, cl_trid: str, *, auth_pw: str | None = None) -> bytes:
    root, command, info = _command("info")
    obj = _object(info, "contact", NS_CONTACT, "info")
    _sub(obj, NS_CONTACT, "id", contact_id)
    _auth_info(obj, NS_CONTACT, auth_pw)
    return _finish(root, command, cl_trid)


# ---- domains ---------------------------------------------------------------------------------


def _period(parent: etree._Element, years: int) -> None:
    if not 1 <= years <= MAX_PERIOD_YEARS:
        raise ValueError("domain period must be 1-99 years")
    _sub(parent, NS_DOMAIN, "period", str(years)).set("unit", "y")


def build_domain_create(cmd: DomainCreate, cl_trid: str) -> bytes:
    """<domain:create> with host objects (not host attributes) for name servers."""
    if not 1 <= cmd.period_years <= MAX_PERIOD_YEARS:
        raise ValueError("domain period must be 1-99 years")
    root, command, create = _command("create")
    obj = _object(create, "domain", NS_DOMAIN, "create")
    _sub(obj, NS_DOMAIN, "name", cmd.name)
    _period(obj, cmd.period_years)
    if cmd.nameservers:
        ns = _sub(obj, NS_DOMAIN, "ns")
        for host in cmd.nameservers:
            _sub(ns, NS_DOMAIN, "hostObj", host)
    if cmd.registrant is not None:
        _sub(obj, NS_DOMAIN, "registrant", cmd.registrant)
    for role, contact_id in cmd.contacts:
        _sub(obj, NS_DOMAIN, "contact", contact_id).set("type", role)
    _auth_info(obj, NS_DOMAIN, cmd.auth_pw)
    ext_elements = [el for ext in cmd.extensions for el in extensions.elements(ext, "domain:create")]
    return _finish(root, command, cl_trid, ext_elements)


def _add_rem(
    parent: etree._Element,
    name: str,
    ns_hosts: tuple[str, ...],
    contacts: tuple[tuple[str, str], ...],
    statuses: tuple[str, ...],
) -> None:
    if not (ns_hosts or contacts or statuses):
        return
    el = _sub(parent, NS_DOMAIN, name)
    if ns_hosts:
        ns = _sub(el, NS_DOMAIN, "ns")
        for host in ns_hosts:
            _sub(ns, NS_DOMAIN, "hostObj", host)
    for role, contact_id in contacts:
        _sub(el, NS_DOMAIN, "contact", contact_id).set("type", role)
    _statuses(el, NS_DOMAIN, statuses)


def build_domain_update(cmd: DomainUpdate, cl_trid: str) -> bytes:
    """<domain:update>: add, rem, chg (registrant, authInfo) in schema order."""
    root, command, update = _command("update")
    obj = _object(update, "domain", NS_DOMAIN, "update")
    _sub(obj, NS_DOMAIN, "name", cmd.name)
    _add_rem(obj, "add", cmd.add_ns, cmd.add_contacts, cmd.add_status)
    _add_rem(obj, "rem", cmd.rem_ns, cmd.rem_contacts, cmd.rem_status)
    if cmd.registrant is not None or cmd.auth_pw is not None:
        chg = _sub(obj, NS_DOMAIN, "chg")
        _subs(chg, NS_DOMAIN, (("registrant", cmd.registrant),))
        _auth_info(chg, NS_DOMAIN, cmd.auth_pw)
    return _finish_update(root, command, obj, cl_trid, cmd.extensions, "domain:update")


def build_domain_delete(cmd: DomainDelete, cl_trid: str) -> bytes:
    return _single("delete", "domain", NS_DOMAIN, "name", cmd.name, cl_trid)


def build_domain_renew(cmd: DomainRenew, cl_trid: str) -> bytes:
    root, command, renew = _command("renew")
    obj = _object(renew, "domain", NS_DOMAIN, "renew")
    _sub(obj, NS_DOMAIN, "name", cmd.name)
    _sub(obj, NS_DOMAIN, "curExpDate", cmd.cur_exp_date.isoformat())
    _period(obj, cmd.period_years)
    return _finish(root, command, cl_trid)


def build_domain_transfer(cmd: DomainTransfer, cl_trid: str) -> bytes:
    """<transfer op=...><domain:transfer>: period only on request, authInfo where given."""
    if cmd.period_years is not None and cmd.op != "request":
        raise ValueError("a transfer period is only sent with op=request")
    root, command, transfer = _command("transfer")
    transfer.set("op", cmd.op)
    obj = _object(transfer, "domain", NS_DOMAIN, "transfer")
    _sub(obj, NS_DOMAIN, "name", cmd.name)
    if cmd.period_years is not None:
        _period(obj, cmd.period_years)
    _auth_info(obj, NS_DOMAIN, cmd.auth_pw)
    return _finish(root, command, cl_trid)


def build_domain_check(cmd: DomainCheck, cl_trid: str) -> bytes:
    """<domain:check> for one or more names (domain-1.0.xsd: ``mNameType``, at least one)."""
    if not cmd.names:
        raise ValueError("domain:check needs at least one name")
    root, command, check = _command("check")
    obj = _object(check, "domain", NS_DOMAIN, "check")
    for name in cmd.names:
        _sub(obj, NS_DOMAIN, "name", name)
    return _finish(root, command, cl_trid)


def build_domain_info(name: str, cl_trid: str, *, auth_pw: str | None = None) -> bytes:
    root, command, info = _command("info")
    obj = _object(info, "domain", NS_DOMAIN, "info")
    _sub(obj, NS_DOMAIN, "name", name).set("hosts", "all")
    _auth_info(obj, NS_DOMAIN, auth_pw)
    return _finish(root, command, cl_trid)


# ---- poll --------------------------------------------------------------------------------------


def build_poll(cmd: PollRequest | PollAck, cl_trid: str) -> bytes:
    root, command, poll = _command("poll")
    if isinstance(cmd, PollAck):
        if not cmd.msg_id or cmd.msg_id != " ".join(cmd.msg_id.split()):
            raise ValueError("msgID must be a non-empty token")
        poll.set("op", "ack")
        poll.set("msgID", cmd.msg_id)
    else:
        poll.set("op", "req")
    return _finish(root, command, cl_trid)


def xs_date(value: str | None) -> dt.date | None:
    """The date part of an XSD dateTime (``exDate``), as <domain:renew> wants ``curExpDate``."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


# ---- the server's side ---------------------------------------------------------------------------


def _server_root() -> etree._Element:
    # The server's frames use an ``epp:`` prefix where ours use the default namespace, so the
    # client's parser meets both spellings in tests.
    return etree.Element(_q(NS_EPP, "epp"), nsmap={"epp": NS_EPP})


def build_greeting(
    sv_id: str, sv_date: str, obj_uris: Iterable[str], ext_uris: Iterable[str], *, lang: str = "en"
) -> bytes:
    """A server <greeting> offering EPP 1.0 in ``lang``, the given services and a fixed DCP.

    For the sandbox registry and the recording transport; the client only parses greetings.
    """
    root = _server_root()
    greeting = _sub(root, NS_EPP, "greeting")
    _sub(greeting, NS_EPP, "svID", sv_id)
    _sub(greeting, NS_EPP, "svDate", sv_date)
    menu = _sub(greeting, NS_EPP, "svcMenu")
    _sub(menu, NS_EPP, "version", EPP_VERSION)
    _sub(menu, NS_EPP, "lang", lang)
    for uri in obj_uris:
        _sub(menu, NS_EPP, "objURI", uri)
    ext = _sub(menu, NS_EPP, "svcExtension")
    for uri in ext_uris:
        _sub(ext, NS_EPP, "extURI", uri)
    dcp = _sub(greeting, NS_EPP, "dcp")
    _sub(_sub(dcp, NS_EPP, "access"), NS_EPP, "all")
    statement = _sub(dcp, NS_EPP, "statement")
    purpose = _sub(statement, NS_EPP, "purpose")
    _sub(purpose, NS_EPP, "admin")
    _sub(purpose, NS_EPP, "prov")
    recipient = _sub(statement, NS_EPP, "recipient")
    _sub(recipient, NS_EPP, "ours")
    _sub(recipient, NS_EPP, "public")
    _sub(_sub(statement, NS_EPP, "retention"), NS_EPP, "stated")
    return _serialize(root)


def build_response(
    code: int,
    message: str,
    cl_trid: str | None,
    sv_trid: str,
    *,
    res_data: etree._Element | None = None,
    msg_q: etree._Element | None = None,
) -> bytes:
    """A server <response> with one <result>; ``res_data`` and ``msg_q`` are copied, not moved."""
    root = _server_root()
    response = _sub(root, NS_EPP, "response")
    result = _sub(response, NS_EPP, "result")
    result.set("code", str(code))
    _sub(result, NS_EPP, "msg", message)
    if msg_q is not None:
        response.append(copy.deepcopy(msg_q))
    if res_data is not None:
        _sub(response, NS_EPP, "resData").append(copy.deepcopy(res_data))
    tr_id = _sub(response, NS_EPP, "trID")
    if cl_trid is not None:
        _sub(tr_id, NS_EPP, "clTRID", cl_trid)
    _sub(tr_id, NS_EPP, "svTRID", sv_trid)
    return _serialize(root)


# --------------------------------------------------------------------------------------------
# parsing


def safe_parser() -> etree.XMLParser:
    """A parser that cannot be made to read files, fetch URLs or expand entity bombs."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_document(data: bytes) -> etree._Element:
    """Parse a frame to its <epp> root, refusing DTDs outright (EPP never needs one)."""
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise EppXmlError("frame is not well-formed XML") from exc
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise EppXmlError("frame carries a DOCTYPE")
    if root.tag != _q(NS_EPP, "epp"):
        raise EppXmlError("frame root is not epp:epp")
    return root


def _text(el: etree._Element, path: str) -> str | None:
    value = el.findtext(path, namespaces=NSMAP)
    return value.strip() if value is not None else None


def _texts(el: etree._Element, path: str) -> tuple[str, ...]:
    return tuple((child.text or "").strip() for child in el.findall(path, namespaces=NSMAP))


def parse_greeting(data: bytes) -> Greeting:
    root = parse_document(data)
    greeting = root.find("epp:greeting", NSMAP)
    if greeting is None:
        raise EppXmlError("expected a greeting")
    sv_id = _text(greeting, "epp:svID")
    if not sv_id:
        raise EppXmlError("greeting has no svID")
    return Greeting(
        sv_id=sv_id,
        sv_date=_text(greeting, "epp:svDate"),
        versions=_texts(greeting, "epp:svcMenu/epp:version"),
        langs=_texts(greeting, "epp:svcMenu/epp:lang"),
        obj_uris=_texts(greeting, "epp:svcMenu/epp:objURI"),
        ext_uris=_texts(greeting, "epp:svcMenu/epp:svcExtension/epp:extURI"),
    )


def _transfer_data(el: etree._Element) -> TransferData:
    name = _text(el, "domain:name")
    status = _text(el, "domain:trStatus")
    if not name or not status:
        raise EppXmlError("domain:trnData lacks name or trStatus")
    return TransferData(
        name=name,
        tr_status=status,
        re_id=_text(el, "domain:reID"),
        re_date=_text(el, "domain:reDate"),
        ac_id=_text(el, "domain:acID"),
        ac_date=_text(el, "domain:acDate"),
        ex_date=_text(el, "domain:exDate"),
    )


def _pending_action(el: etree._Element, object_type: str) -> PendingAction:
    """<domain:panData> (``name``) or <contact:panData> (``id``), each with its ``paResult``."""
    key = el.find("domain:name" if object_type == "domain" else "contact:id", NSMAP)
    object_id = (key.text or "").strip() if key is not None else ""
    pa_result = (key.get("paResult") or "").strip() if key is not None else ""
    if not object_id or pa_result not in ("0", "1", "true", "false"):
        raise EppXmlError(f"{object_type}:panData lacks its object or a boolean paResult")
    prefix = "domain" if object_type == "domain" else "contact"
    return PendingAction(
        object_type="domain" if object_type == "domain" else "contact",
        object_id=object_id,
        ok=pa_result in ("1", "true"),
        pa_date=_text(el, f"{prefix}:paDate"),
        cl_trid=_text(el, f"{prefix}:paTRID/epp:clTRID"),
        sv_trid=_text(el, f"{prefix}:paTRID/epp:svTRID"),
    )


_RES_PREFIXES: Final = {NS_DOMAIN: "domain", NS_CONTACT: "contact", NS_HOST: "host"}


def _res_kind(res_data: etree._Element) -> str | None:
    """``"domain:trnData"`` for the first element under <resData> (a registry extension: its namespace)."""
    first = next((c for c in res_data if isinstance(c.tag, str)), None)
    if first is None:
        return None
    qname = etree.QName(first)
    return f"{_RES_PREFIXES.get(qname.namespace or '', qname.namespace or '')}:{qname.localname}"


def _statuses_of(el: etree._Element, path: str) -> tuple[str, ...]:
    return tuple(s.get("s", "") for s in el.findall(path, NSMAP))


def _res_data(result: EppResult, res_data: etree._Element) -> Response:
    """Whichever resData we understand; unknown resData is ignored (registries add data)."""
    domain_cre = res_data.find("domain:creData", NSMAP)
    if domain_cre is not None:
        return Response(
            result=result,
            created_name=_text(domain_cre, "domain:name"),
            created_date=_text(domain_cre, "domain:crDate"),
            expiry_date=_text(domain_cre, "domain:exDate"),
        )
    contact_cre = res_data.find("contact:creData", NSMAP)
    if contact_cre is not None:
        return Response(
            result=result,
            created_id=_text(contact_cre, "contact:id"),
            created_date=_text(contact_cre, "contact:crDate"),
        )
    domain_inf = res_data.find("domain:infData", NSMAP)
    if domain_inf is not None:
        name = _text(domain_inf, "domain:name")
        if not name:
            raise EppXmlError("domain:infData has no name")
        ex_date = _text(domain_inf, "domain:exDate")
        info = DomainInfo(
            name=name,
            roid=_text(domain_inf, "domain:roid"),
            cl_id=_text(domain_inf, "domain:clID"),
            registrant=_text(domain_inf, "domain:registrant"),
            result=result,
            statuses=_statuses_of(domain_inf, "domain:status"),
            nameservers=_texts(domain_inf, "domain:ns/domain:hostObj"),
            contacts=tuple(
                (c.get("type", ""), (c.text or "").strip()) for c in domain_inf.findall("domain:contact", NSMAP)
            ),
            ex_date=ex_date,
        )
        return Response(result=result, domain_info=info, expiry_date=ex_date)
    contact_inf = res_data.find("contact:infData", NSMAP)
    if contact_inf is not None:
        contact_id = _text(contact_inf, "contact:id")
        if not contact_id:
            raise EppXmlError("contact:infData has no id")
        contact = ContactInfo(
            id=contact_id,
            roid=_text(contact_inf, "contact:roid"),
            cl_id=_text(contact_inf, "contact:clID"),
            result=result,
            statuses=_statuses_of(contact_inf, "contact:status"),
        )
        return Response(result=result, contact_info=contact)
    domain_chk = res_data.find("domain:chkData", NSMAP)
    if domain_chk is not None:
        checked = []
        for cd in domain_chk.findall("domain:cd", NSMAP):
            name_el = cd.find("domain:name", NSMAP)
            if name_el is None or not (name_el.text or "").strip():
                raise EppXmlError("domain:cd has no name")
            avail = (name_el.get("avail") or "").strip()
            if avail not in ("0", "1", "true", "false"):
                raise EppXmlError("domain:cd name has no boolean avail")
            checked.append(DomainAvailability(
                name=(name_el.text or "").strip(), available=avail in ("1", "true"), reason=_text(cd, "domain:reason")
            ))
        return Response(result=result, checked=tuple(checked))
    domain_ren = res_data.find("domain:renData", NSMAP)
    if domain_ren is not None:
        return Response(
            result=result,
            renewed_name=_text(domain_ren, "domain:name"),
            expiry_date=_text(domain_ren, "domain:exDate"),
        )
    domain_trn = res_data.find("domain:trnData", NSMAP)
    if domain_trn is not None:
        return Response(result=result, transfer=_transfer_data(domain_trn))
    for object_type in ("domain", "contact"):
        pan = res_data.find(f"{object_type}:panData", NSMAP)
        if pan is not None:
            return Response(result=result, pending_action=_pending_action(pan, object_type))
    return Response(result=result)


def parse_response(data: bytes) -> Response:
    """Parse a <response>: result, msgQ (poll) and the resData we understand."""
    root = parse_document(data)
    response = root.find("epp:response", NSMAP)
    if response is None:
        raise EppXmlError("expected a response")
    result_el = response.find("epp:result", NSMAP)
    if result_el is None:
        raise EppXmlError("response has no result")
    try:
        code = int(result_el.get("code", ""))
    except ValueError as exc:
        raise EppXmlError("result code is not a number") from exc
    result = EppResult(
        code=code,
        message=_text(result_el, "epp:msg") or "",
        cl_trid=_text(response, "epp:trID/epp:clTRID"),
        sv_trid=_text(response, "epp:trID/epp:svTRID"),
    )
    res_data = response.find("epp:resData", NSMAP)
    parsed = Response(result=result)
    if res_data is not None:
        parsed = dataclasses.replace(_res_data(result, res_data), res_kind=_res_kind(res_data))
    msg_q = response.find("epp:msgQ", NSMAP)
    if msg_q is None:
        return parsed
    try:
        count = int(msg_q.get("count", ""))
    except ValueError as exc:
        raise EppXmlError("msgQ count is not a number") from exc
    msg_id = (msg_q.get("id") or "").strip() or None
    message = None
    if msg_id is not None and (msg_q.find("epp:qDate", NSMAP) is not None or msg_q.find("epp:msg", NSMAP) is not None):
        msg_el = msg_q.find("epp:msg", NSMAP)
        text = " ".join("".join(str(t) for t in msg_el.itertext()).split()) if msg_el is not None else None
        message = PollMessage(
            id=msg_id,
            queued_at=_text(msg_q, "epp:qDate"),
            text=text,
            transfer=parsed.transfer,
            res_kind=parsed.res_kind,
            domain=_message_domain(parsed),
            contact_id=_message_contact(parsed),
            pending_action=parsed.pending_action,
        )
    return dataclasses.replace(parsed, msg_count=count, message=message, msg_id=msg_id)


def _message_domain(parsed: Response) -> str | None:
    """The domain a poll message is about, from whichever resData named one."""
    action = parsed.pending_action
    if action is not None and action.object_type == "domain":
        return action.object_id
    if parsed.transfer is not None:
        return parsed.transfer.name
    if parsed.domain_info is not None:
        return parsed.domain_info.name
    return parsed.renewed_name or parsed.created_name


def _message_contact(parsed: Response) -> str | None:
    """The contact a poll message is about (contact:infData or contact:panData)."""
    action = parsed.pending_action
    if action is not None and action.object_type == "contact":
        return action.object_id
    return parsed.contact_info.id if parsed.contact_info is not None else None
