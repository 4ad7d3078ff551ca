"""The one place where EPP XML is written and read.

Frames are built as lxml trees, never from string templates: a registrant's name containing ``<`` or
``&`` must not be able to change the structure of a command, and element order (which the XSDs
enforce) is easier to audit when it is spelled out as code.  Responses are parsed with entity
expansion, DTD loading and network access switched off, because they come from a peer we do not
control.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, cast

from lxml import etree

from adapters.epp.types import (
    ContactCreate,
    ContactExtension,
    DkhmContactExt,
    DomainCreate,
    DomainInfo,
    EppResult,
    EuridContactExt,
    IisContactExt,
    PostalInfo,
)

NS_EPP: Final = "urn:ietf:params:xml:ns:epp-1.0"
NS_EPPCOM: Final = "urn:ietf:params:xml:ns:eppcom-1.0"
NS_CONTACT: Final = "urn:ietf:params:xml:ns:contact-1.0"
NS_DOMAIN: Final = "urn:ietf:params:xml:ns:domain-1.0"
NS_HOST: Final = "urn:ietf:params:xml:ns:host-1.0"
NS_SECDNS: Final = "urn:ietf:params:xml:ns:secDNS-1.1"
NS_RGP: Final = "urn:ietf:params:xml:ns:rgp-1.0"
NS_IIS: Final = "urn:se:iis:xml:epp:iis-1.2"
NS_EURID_CONTACT: Final = "http://www.eurid.eu/xml/epp/contact-ext-1.3"
NS_DKHM: Final = "urn:dkhm:params:xml:ns:dkhm-4.5"

SUPPORTED_OBJ_URIS: Final = (NS_CONTACT, NS_DOMAIN, NS_HOST)
"""Object services we can speak; login asks for the ones the server also offers."""

SUPPORTED_EXT_URIS: Final = (NS_IIS, NS_EURID_CONTACT, NS_DKHM)
"""Extensions we can emit; login announces only those the server also offers."""

EPP_VERSION: Final = "1.0"
MAX_CL_TRID: Final = 64

NSMAP: Final = {
    "epp": NS_EPP,
    "contact": NS_CONTACT,
    "domain": NS_DOMAIN,
    "host": NS_HOST,
    "iis": NS_IIS,
    "contact-ext": NS_EURID_CONTACT,
    "dkhm": NS_DKHM,
}

# RFC 5733 section 2.9 / contact-1.0.xsd discloseType: this order is enforced by the schema.
_DISCLOSE_ORDER: Final = ("name", "org", "addr", "voice", "fax", "email")
_DISCLOSE_TYPED: Final = frozenset({"name", "org", "addr"})


class EppXmlError(Exception):
    """A frame from the peer is not the EPP we expect; messages never quote the frame itself."""


class ProtocolMismatch(EppXmlError):
    """Client and server share no usable object service, or a needed extension is not offered."""


@dataclass(frozen=True)
class Greeting:
    """What the server offers; the login is negotiated from ``obj_uris`` and ``ext_uris``."""

    sv_id: str
    sv_date: str | None
    versions: tuple[str, ...]
    langs: tuple[str, ...]
    obj_uris: tuple[str, ...]
    ext_uris: tuple[str, ...]


@dataclass(frozen=True)
class ContactInfo:
    """The parts of <contact:infData> the client needs to decide whether a contact id is ours.

    Deliberately no postal data: reconciliation only needs the sponsor, and not parsing personal
    data means it cannot leak from here.
    """

    id: str
    roid: str | None
    cl_id: str | None
    result: EppResult


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


# --------------------------------------------------------------------------------------------
# building


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name))
    if text is not None:
        el.text = text
    return el


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
    extensions: Iterable[etree._Element] = (),
) -> bytes:
    ext_elements = list(extensions)
    if ext_elements:
        extension = _sub(command, NS_EPP, "extension")
        for el in ext_elements:
            extension.append(el)
    _sub(command, NS_EPP, "clTRID", _check_cl_trid(cl_trid))
    return _serialize(root)


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


def _postal_info(parent: etree._Element, info: PostalInfo) -> None:
    if len(info.street) > 3:
        raise ValueError("RFC 5733 allows at most three street lines")
    el = _sub(parent, NS_CONTACT, "postalInfo")
    el.set("type", info.type)
    _sub(el, NS_CONTACT, "name", info.name)
    if info.org is not None:
        _sub(el, NS_CONTACT, "org", info.org)
    addr = _sub(el, NS_CONTACT, "addr")
    for line in info.street:
        _sub(addr, NS_CONTACT, "street", line)
    _sub(addr, NS_CONTACT, "city", info.city)
    if info.sp is not None:
        _sub(addr, NS_CONTACT, "sp", info.sp)
    if info.pc is not None:
        _sub(addr, NS_CONTACT, "pc", info.pc)
    _sub(addr, NS_CONTACT, "cc", info.cc)


def extension_namespace(ext: ContactExtension) -> str:
    """The extURI a contact extension needs; the client checks it was negotiated at login."""
    if isinstance(ext, IisContactExt):
        return NS_IIS
    if isinstance(ext, EuridContactExt):
        return NS_EURID_CONTACT
    return NS_DKHM


def _contact_extension(ext: ContactExtension) -> list[etree._Element]:
    if isinstance(ext, IisContactExt):
        create = etree.Element(_q(NS_IIS, "create"), nsmap={"iis": NS_IIS})
        if ext.orgno is not None:
            _sub(create, NS_IIS, "orgno", ext.orgno)
        if ext.vatno is not None:
            _sub(create, NS_IIS, "vatno", ext.vatno)
        return [create]
    if isinstance(ext, EuridContactExt):
        create = etree.Element(_q(NS_EURID_CONTACT, "create"), nsmap={"contact-ext": NS_EURID_CONTACT})
        _sub(create, NS_EURID_CONTACT, "type", ext.type)
        if ext.vat is not None:
            _sub(create, NS_EURID_CONTACT, "vat", ext.vat)
        if ext.lang is not None:
            _sub(create, NS_EURID_CONTACT, "lang", ext.lang)
        if ext.whois_email is not None:
            _sub(create, NS_EURID_CONTACT, "whoisEmail", ext.whois_email)
        _sub(create, NS_EURID_CONTACT, "naturalPerson", "true" if ext.natural_person else "false")
        if ext.country_of_citizenship is not None:
            _sub(create, NS_EURID_CONTACT, "countryOfCitizenship", ext.country_of_citizenship)
        return [create]
    return _dkhm_elements(ext)


def _dkhm_elements(ext: DkhmContactExt) -> list[etree._Element]:
    """Punktum dk puts its elements directly under <extension> (dkhm-4.5.xsd global elements)."""
    elements: list[etree._Element] = []
    values = (("userType", ext.user_type), ("CVR", ext.cvr), ("pnumber", ext.pnumber), ("EAN", ext.ean))
    for name, value in values:
        if value is not None:
            el = etree.Element(_q(NS_DKHM, name), nsmap={"dkhm": NS_DKHM})
            el.text = value
            elements.append(el)
    return elements


def build_contact_create(cmd: ContactCreate, cl_trid: str) -> bytes:
    """<contact:create> in RFC 5733 element order, with registry extensions under <extension>."""
    root, command, create = _command("create")
    obj = _object(create, "contact", NS_CONTACT, "create")
    _sub(obj, NS_CONTACT, "id", cmd.id)
    _postal_info(obj, cmd.postal_info)
    if cmd.voice is not None:
        _sub(obj, NS_CONTACT, "voice", cmd.voice)
    if cmd.fax is not None:
        _sub(obj, NS_CONTACT, "fax", cmd.fax)
    _sub(obj, NS_CONTACT, "email", cmd.email)
    auth = _sub(obj, NS_CONTACT, "authInfo")
    _sub(auth, NS_CONTACT, "pw", cmd.auth_pw)
    if cmd.disclose is not None and cmd.disclose.elements:
        unknown = set(cmd.disclose.elements) - set(_DISCLOSE_ORDER)
        if unknown:
            raise ValueError(f"unknown disclose elements: {sorted(unknown)}")
        disclose = _sub(obj, NS_CONTACT, "disclose")
        disclose.set("flag", str(cmd.disclose.flag))
        for name in _DISCLOSE_ORDER:
            if name in cmd.disclose.elements:
                el = _sub(disclose, NS_CONTACT, name)
                if name in _DISCLOSE_TYPED:
                    el.set("type", cmd.postal_info.type)
    ext_elements = [el for ext in cmd.extensions for el in _contact_extension(ext)]
    return _finish(root, command, cl_trid, ext_elements)


def build_domain_create(cmd: DomainCreate, cl_trid: str) -> bytes:
    """<domain:create> with host objects (not host attributes) for name servers."""
    if not 1 <= cmd.period_years <= 99:
        raise ValueError("domain period must be 1-99 years")
    root, command, create = _command("create")
    obj = _object(create, "domain", NS_DOMAIN, "create")
    _sub(obj, NS_DOMAIN, "name", cmd.name)
    period = _sub(obj, NS_DOMAIN, "period", str(cmd.period_years))
    period.set("unit", "y")
    if cmd.nameservers:
        ns = _sub(obj, NS_DOMAIN, "ns")
        for host in cmd.nameservers:
            _sub(ns, NS_DOMAIN, "hostObj", host)
    if cmd.registrant is not None:
        _sub(obj, NS_DOMAIN, "registrant", cmd.registrant)
    for role, contact_id in cmd.contacts:
        _sub(obj, NS_DOMAIN, "contact", contact_id).set("type", role)
    auth = _sub(obj, NS_DOMAIN, "authInfo")
    _sub(auth, NS_DOMAIN, "pw", cmd.auth_pw)
    return _finish(root, command, cl_trid)


def build_domain_info(name: str, cl_trid: str, *, auth_pw: str | None = None) -> bytes:
    root, command, info = _command("info")
    obj = _object(info, "domain", NS_DOMAIN, "info")
    _sub(obj, NS_DOMAIN, "name", name).set("hosts", "all")
    if auth_pw is not None:
        _sub(_sub(obj, NS_DOMAIN, "authInfo"), NS_DOMAIN, "pw", auth_pw)
    return _finish(root, command, cl_trid)


def build_contact_info(contact_id: str, cl_trid: str, *, auth_pw: str | None = None) -> bytes:
    root, command, info = _command("info")
    obj = _object(info, "contact", NS_CONTACT, "info")
    _sub(obj, NS_CONTACT, "id", contact_id)
    if auth_pw is not None:
        _sub(_sub(obj, NS_CONTACT, "authInfo"), NS_CONTACT, "pw", auth_pw)
    return _finish(root, command, cl_trid)


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


def parse_response(data: bytes) -> Response:
    """Parse a <response>; unknown resData is ignored rather than rejected (registries add data)."""
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
    if res_data is None:
        return Response(result=result)

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
        info = DomainInfo(
            name=name,
            roid=_text(domain_inf, "domain:roid"),
            cl_id=_text(domain_inf, "domain:clID"),
            registrant=_text(domain_inf, "domain:registrant"),
            result=result,
        )
        return Response(result=result, domain_info=info, expiry_date=_text(domain_inf, "domain:exDate"))
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
        )
        return Response(result=result, contact_info=contact)
    return Response(result=result)
