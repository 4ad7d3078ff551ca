"""Typed EPP commands and outcomes: the contract between the gateway and the EPP client.

The gateway builds these values from a policy-minimised payload; the client turns them into XML in
one place (``adapters.epp.xml``) and parses responses in one place.  Nothing here holds a field the
policy did not release: optional members left ``None`` are simply not emitted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

ContactStatus = Literal["clientDeleteProhibited", "clientTransferProhibited", "clientUpdateProhibited"]
"""Statuses a registrar may set on a contact (contact-1.0.xsd); ``server*`` ones belong to the registry."""

DomainStatus = Literal[
    "clientDeleteProhibited",
    "clientHold",
    "clientRenewProhibited",
    "clientTransferProhibited",
    "clientUpdateProhibited",
]
"""Statuses a registrar may set on a domain (domain-1.0.xsd)."""

ContactRole = Literal["admin", "tech", "billing"]
TransferOp = Literal["request", "query", "approve", "reject", "cancel"]


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


@dataclass(frozen=True)
class IisContactUpdate:
    """.se/.nu ``<iis:update>`` on a contact: only the VAT number may change (the orgno is fixed)."""

    vatno: str


@dataclass(frozen=True)
class IisDomainUpdate:
    """.se/.nu ``<iis:update>`` on a domain: ``clientDelete`` asks the registry to delete at expiry."""

    client_delete: bool


@dataclass(frozen=True)
class EuridContactUpdate:
    """EURid ``<contact-ext:update><contact-ext:chg>``; only members that are not ``None`` are sent."""

    vat: str | None = None
    lang: str | None = None
    whois_email: str | None = None
    natural_person: bool | None = None
    country_of_citizenship: str | None = None


NoridIdentityType = Literal[
    "organizationNumber", "localIdentity", "nationalIdentityNumber", "anonymousPersonIdentifier"
]


@dataclass(frozen=True)
class NoridContactExt:
    """Norid (.no) ``http://www.norid.no/xsd/no-ext-contact-1.0`` identity of a contact.

    ``contact_type`` defaults from the identity: an organisation number makes an ``organization``
    contact, every other identity a ``person``.  In a ``ContactUpdate`` only the identity is sent
    (``<no-ext-contact:chg>``); the contact type cannot change.
    """

    identity_type: NoridIdentityType
    identity: str  # organizationNumber: the nine digits of Enhetsregisteret
    contact_type: Literal["person", "organization", "role"] | None = None


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


FiRole = Literal[2, 3, 4, 5]
"""Traficom contact role: 2 admin, 3 reseller, 4 technical contact, 5 registrant (holder) [NDRI]."""
FiType = Literal[0, 1, 2, 3, 4, 5, 6, 7]
"""Traficom contact type: 0 private person, 1 company, 2 association, 3 institution, 4 political party,
5 municipality, 6 government, 7 public community [NDRI]."""


@dataclass(frozen=True)
class FiContactExt:
    """Traficom (.fi) contact data, carried *inside* <contact:create> (contact-1.0 namespace).

    Unlike every other value here this is not an <extension> element: Traficom's contact schema
    adds ``role``/``type`` after <contact:id>, ``isfinnish``/``firstname``/``lastname`` before and
    ``birthDate``/``identity``/``registernumber`` after <contact:name>/<contact:org> in
    <contact:postalInfo>, and ``legalemail`` after <contact:email> (Net::DRI FICORA/Contact.pm).
    ``identity`` is the Finnish personal identity code (HETU) of a Finnish person,
    ``registernumber`` a company's register number (Y-tunnus for Finnish ones), ``birth_date``
    (YYYY-MM-DD) what a foreign person gives instead of an identity.
    """

    role: FiRole
    type: FiType
    is_finnish: bool
    firstname: str | None = None
    lastname: str | None = None
    birth_date: str | None = None
    identity: str | None = None
    registernumber: str | None = None
    legalemail: str | None = None


ContactExtension = IisContactExt | EuridContactExt | DkhmContactExt | NoridContactExt | FiContactExt
"""Extensions a ``ContactCreate`` may carry (``FiContactExt`` goes inside <contact:create>, not <extension>)."""

ContactUpdateExtension = IisContactUpdate | EuridContactUpdate | NoridContactExt
"""Extensions a ``ContactUpdate`` may carry."""

DomainExtension = NeulevelDomainExt
"""Extensions a ``DomainCreate`` may carry."""

DomainUpdateExtension = NeulevelDomainExt | IisDomainUpdate
"""Extensions a ``DomainUpdate`` may carry."""


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
    extensions: tuple[DomainExtension, ...] = ()


@dataclass(frozen=True)
class Address:
    """RFC 5733 <contact:addr>: sent whole when any part of an address changes."""

    city: str
    cc: str
    street: tuple[str, ...] = ()
    sp: str | None = None
    pc: str | None = None


@dataclass(frozen=True)
class PostalInfoChange:
    """RFC 5733 <contact:chg><contact:postalInfo>: ``None`` members are left as they are.

    ``org=""`` clears the organisation (contact-1.0.xsd optPostalLineType allows the empty value).
    """

    type: Literal["int", "loc"] = "loc"
    name: str | None = None
    org: str | None = None
    addr: Address | None = None


@dataclass(frozen=True)
class ContactUpdate:
    """<contact:update>: statuses to add/remove, then only the changed (and released) fields.

    ``voice=""`` / ``fax=""`` clear the number (e164Type allows the empty value); ``None`` means
    "unchanged" everywhere.  Re-sending the same update is idempotent: ``chg`` sets values, and a
    retry narrows ``add``/``rem`` to what the registry does not already show (see ``reconcile``).
    """

    id: str
    add_status: tuple[ContactStatus, ...] = ()
    rem_status: tuple[ContactStatus, ...] = ()
    postal_info: tuple[PostalInfoChange, ...] = ()
    voice: str | None = None
    fax: str | None = None
    email: str | None = None
    auth_pw: str | None = None
    disclose: DiscloseSpec | None = None
    extensions: tuple[ContactUpdateExtension, ...] = ()


@dataclass(frozen=True)
class ContactDelete:
    id: str


@dataclass(frozen=True)
class DomainUpdate:
    """<domain:update>: add/remove name servers, contacts and statuses; change registrant/authInfo.

    A registrant change is ``registrant="NEWID"`` (plus, at most registries, a new ``auth_pw``).
    """

    name: str
    add_ns: tuple[str, ...] = ()
    rem_ns: tuple[str, ...] = ()
    add_contacts: tuple[tuple[ContactRole, str], ...] = ()
    rem_contacts: tuple[tuple[ContactRole, str], ...] = ()
    add_status: tuple[DomainStatus, ...] = ()
    rem_status: tuple[DomainStatus, ...] = ()
    registrant: str | None = None
    auth_pw: str | None = None
    extensions: tuple[DomainUpdateExtension, ...] = ()

    def is_empty(self) -> bool:
        """True when sending it would change nothing at the registry."""
        return not (
            self.add_ns or self.rem_ns or self.add_contacts or self.rem_contacts or self.add_status
            or self.rem_status or self.registrant is not None or self.auth_pw is not None or self.extensions
        )


@dataclass(frozen=True)
class DomainDelete:
    name: str


@dataclass(frozen=True)
class DomainRenew:
    """<domain:renew>: ``cur_exp_date`` must match the registry's, so a replayed renew cannot renew twice."""

    name: str
    cur_exp_date: dt.date
    period_years: int = 1


@dataclass(frozen=True)
class DomainTransfer:
    """<transfer op=...><domain:transfer>: ``auth_pw`` is needed for ``request`` (and some ``query``)."""

    name: str
    op: TransferOp
    auth_pw: str | None = None
    period_years: int | None = None


@dataclass(frozen=True)
class PollRequest:
    """<poll op="req"/>: fetch the oldest message of this registrar's queue."""


@dataclass(frozen=True)
class PollAck:
    """<poll op="ack" msgID=.../>: remove a message from the queue after handling it."""

    msg_id: str


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

    @property
    def pending(self) -> bool:
        """1001: accepted, but the registry completes it later (e.g. a transfer awaiting approval)."""
        return self.code == 1001


@dataclass(frozen=True)
class DomainInfo:
    name: str
    roid: str | None
    cl_id: str | None  # sponsoring registrar
    registrant: str | None
    result: EppResult
    statuses: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    contacts: tuple[tuple[str, str], ...] = ()  # (role, contact id)
    ex_date: str | None = None


@dataclass(frozen=True)
class TransferData:
    """<domain:trnData>: where a transfer stands (also carried by poll messages)."""

    name: str
    tr_status: str  # pending, clientApproved, clientCancelled, clientRejected, serverApproved, serverCancelled
    re_id: str | None = None  # requesting registrar
    re_date: str | None = None
    ac_id: str | None = None  # registrar that must act (the losing sponsor)
    ac_date: str | None = None
    ex_date: str | None = None


@dataclass(frozen=True)
class TransferResult:
    result: EppResult
    transfer: TransferData | None

    @property
    def pending(self) -> bool:
        return self.result.pending


@dataclass(frozen=True)
class RenewResult:
    result: EppResult
    name: str
    ex_date: str | None


@dataclass(frozen=True)
class UpdateOutcome:
    """An update/delete as the registry ended up with it.

    ``reconciled`` is True when a retry found the change already applied and sent less (or
    nothing); ``result`` is then the answer to the command or <info> that established it.
    """

    object_id: str
    result: EppResult
    reconciled: bool = False

    @property
    def pending(self) -> bool:
        return self.result.pending


@dataclass(frozen=True)
class PollMessage:
    id: str
    queued_at: str | None
    text: str | None
    transfer: TransferData | None = None


@dataclass(frozen=True)
class PollResult:
    """Answer to <poll>: ``count`` messages remain queued; ``message`` is None for an ack or an empty queue."""

    result: EppResult
    count: int
    message: PollMessage | None = None
    msg_id: str | None = None  # msgQ id: the message returned (req) or acknowledged (ack)


@dataclass(frozen=True)
class RegistrationOutcome:
    """What the registry answered for a whole registration."""

    domain_result: EppResult
    contact_results: dict[str, EppResult] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)  # e.g. {"domain": "exempel.se"}
    reconciled: bool = False  # True when a prior attempt's result was found via <info> after a crash
    pending: bool = False  # the registry answered 1001 to the domain create


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

