"""Typed EPP commands and outcomes: the contract between the gateway and the EPP client.

The gateway builds these values from a policy-minimised payload; the client turns them into XML in
one place (``adapters.epp.xml``) and parses responses in one place.  Nothing here holds a field the
policy did not release: optional members left ``None`` are simply not emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PostalInfo:
    """RFC 5733 <contact:postalInfo>; ``type`` 'int' (ASCII) or 'loc' (UTF-8)."""

    name: str
    city: str
    cc: str
    org: str | None = None
    street: tuple[str, ...] = ()
    sp: str | None = None
    pc: str | None = None
    type: Literal["int", "loc"] = "loc"


@dataclass(frozen=True)
class DiscloseSpec:
    """RFC 5733 <contact:disclose flag=...>; elements among name, org, addr, voice, fax, email."""

    flag: Literal[0, 1]
    elements: tuple[str, ...]


@dataclass(frozen=True)
class IisContactExt:
    """Internetstiftelsen (.se/.nu) ``urn:se:iis:xml:epp:iis-1.2`` <iis:create>."""

    orgno: str | None = None  # "[SE]802405-0190"
    vatno: str | None = None


@dataclass(frozen=True)
class EuridContactExt:
    """EURid ``http://www.eurid.eu/xml/epp/contact-ext-1.3`` <contact-ext:create>."""

    type: Literal["registrant", "tech", "billing", "onsite", "reseller"]
    natural_person: bool
    lang: str | None = None
    vat: str | None = None
    whois_email: str | None = None
    country_of_citizenship: str | None = None


@dataclass(frozen=True)
class DkhmContactExt:
    """Punktum dk ``urn:dkhm:params:xml:ns:dkhm-4.5`` userType (+ CVR / EAN where given)."""

    user_type: Literal["company", "individual", "public_organization", "association"]
    cvr: str | None = None
    pnumber: str | None = None
    ean: str | None = None


ContactExtension = IisContactExt | EuridContactExt | DkhmContactExt


@dataclass(frozen=True)
class ContactCreate:
    id: str  # clIDType: 3-16 chars
    postal_info: PostalInfo
    email: str
    auth_pw: str
    voice: str | None = None  # "+46.812345678"
    fax: str | None = None
    disclose: DiscloseSpec | None = None
    extensions: tuple[ContactExtension, ...] = ()


@dataclass(frozen=True)
class DomainCreate:
    name: str  # A-label
    period_years: int
    auth_pw: str
    nameservers: tuple[str, ...] = ()  # hostObj
    registrant: str | None = None  # contact id; None for thin registries
    contacts: tuple[tuple[Literal["admin", "tech", "billing"], str], ...] = ()


@dataclass(frozen=True)
class RegistrationCommands:
    """Everything one registration sends to one registry, in order: contacts first, then the domain."""

    contacts: tuple[ContactCreate, ...]
    domain: DomainCreate


@dataclass(frozen=True)
class EppResult:
    code: int
    message: str
    cl_trid: str | None
    sv_trid: str | None


@dataclass(frozen=True)
class DomainInfo:
    name: str
    roid: str | None
    cl_id: str | None  # sponsoring registrar
    registrant: str | None
    result: EppResult


@dataclass(frozen=True)
class RegistrationOutcome:
    """What the registry answered for a whole registration."""

    domain_result: EppResult
    contact_results: dict[str, EppResult] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)  # e.g. {"domain": "exempel.se"}
    reconciled: bool = False  # True when a prior attempt's result was found via <info> after a crash


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one registry's EPP server."""

    host: str
    port: int
    client_id: str
    password: str
    ca_file: str | None = None  # pinned CA (PEM)
    cert_file: str | None = None  # client certificate (PEM)
    key_file: str | None = None
    server_name: str | None = None  # TLS SNI / hostname check
    timeout_s: float = 10.0
