"""Typed EPP commands and outcomes: the contract between the gateway and the EPP client.

The gateway builds these values from a policy-minimised payload; the client turns them into XML in
one place (``adapters.epp.xml``) and parses responses in one place.  Nothing here holds a field the
policy did not release: optional members left ``None`` are simply not emitted.

Every command is a ``Command[R]``: ``EppClient.send`` returns an ``R`` for it.  Which builder writes
it and how its answer becomes an ``R`` is bound once, per command type, in ``adapters.epp.commands``.
Registry extension values live with their registry in ``adapters.epp.extensions``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from adapters.epp.extensions import (
    ContactExtension,
    ContactUpdateExtension,
    DomainExtension,
    DomainUpdateExtension,
)

__all__ = [
    "Address",
    "Command",
    "ContactCreate",
    "ContactDelete",
    "ContactExtension",
    "ContactInfo",
    "ContactInfoQuery",
    "ContactRole",
    "ContactStatus",
    "ContactUpdate",
    "ContactUpdateExtension",
    "DiscloseSpec",
    "DomainAvailability",
    "DomainCheck",
    "DomainCheckResult",
    "DomainCreate",
    "DomainDelete",
    "DomainExtension",
    "DomainInfo",
    "DomainInfoQuery",
    "DomainRenew",
    "DomainStatus",
    "DomainTransfer",
    "DomainUpdate",
    "DomainUpdateExtension",
    "Endpoint",
    "EppResult",
    "Greeting",
    "PendingAction",
    "PollAck",
    "PollMessage",
    "PollRequest",
    "PollResult",
    "PostalInfo",
    "PostalInfoChange",
    "RegistrationCommands",
    "RegistrationOutcome",
    "RenewResult",
    "TransferData",
    "TransferOp",
    "TransferResult",
    "UpdateOutcome",
]

R_co = TypeVar("R_co", covariant=True)

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


# ---- what comes back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EppResult:
    """A command's <result> and transaction ids.

    ``created_id`` is set on the answer to <contact:create> when the registry names the contact it
    created (<contact:creData>/id): registries that assign their own ids (Punktum dk) answer with
    one that differs from the id asked for, and the domain must then name that one.
    """

    code: int
    message: str
    cl_trid: str | None
    sv_trid: str | None
    created_id: str | None = None

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
class ContactInfo:
    """The parts of <contact:infData> the client needs to decide whether a contact id is ours.

    Deliberately no postal data: reconciliation only needs the sponsor and the statuses, and not
    parsing personal data means it cannot leak from here.
    """

    id: str
    roid: str | None
    cl_id: str | None
    result: EppResult
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainAvailability:
    """One <domain:cd> of a <domain:chkData>: whether ``name`` can be created now (and why not)."""

    name: str
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class DomainCheckResult:
    """Answer to <domain:check>: one availability per name, in the registry's order."""

    result: EppResult
    names: tuple[DomainAvailability, ...] = ()

    def available(self, name: str) -> bool | None:
        """``name``'s availability (case-insensitive), ``None`` when the registry did not answer for it."""
        folded = name.casefold()
        return next((a.available for a in self.names if a.name.casefold() == folded), None)


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
class PendingAction:
    """<domain:panData> / <contact:panData>: the registry finished an action it had answered 1001 to.

    ``ok`` is ``paResult`` (the action was carried out, or not); ``cl_trid``/``sv_trid`` name the
    command that asked for it (``paTRID``), so a registrar can match the notice to its own request.
    """

    object_type: Literal["domain", "contact"]
    object_id: str
    ok: bool
    pa_date: str | None = None
    cl_trid: str | None = None
    sv_trid: str | None = None


@dataclass(frozen=True)
class PollMessage:
    """One queued registry message (<msgQ> with its <resData>).

    ``text`` is the registry's free text: registries quote object data in it, so it is read (to
    classify, ``adapters.epp.notices``) but never logged.  ``res_kind`` names the resData the
    message carried (``"domain:trnData"``, ``"domain:infData"``, ``"contact:infData"``,
    ``"domain:panData"`` ...) and ``domain``/``contact_id`` the object it is about, whichever
    resData named it; none of them is personal data.
    """

    id: str
    queued_at: str | None
    text: str | None
    transfer: TransferData | None = None
    res_kind: str | None = None
    domain: str | None = None
    contact_id: str | None = None
    pending_action: PendingAction | None = None


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


# ---- commands ----------------------------------------------------------------------------------


class Command(Generic[R_co]):
    """A command ``EppClient.send`` can send; ``R_co`` is what ``send`` returns for it.

    A marker only: keeping the values plain data (they are sealed into the outbox as JSON) and
    binding each type to its builder and result parser in ``adapters.epp.commands`` keeps this
    module free of XML.
    """

    __slots__ = ()


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
class ContactCreate(Command[EppResult]):
    id: str  # clIDType: 3-16 chars
    postal_info: PostalInfo
    email: str
    auth_pw: str
    voice: str | None = None  # "+46.812345678"
    fax: str | None = None
    disclose: DiscloseSpec | None = None
    extensions: tuple[ContactExtension, ...] = ()


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
class ContactUpdate(Command[EppResult]):
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
class ContactDelete(Command[EppResult]):
    id: str


@dataclass(frozen=True)
class ContactInfoQuery(Command[ContactInfo]):
    """<contact:info>: ``auth_pw`` only to read a contact another registrar sponsors."""

    id: str
    auth_pw: str | None = None


@dataclass(frozen=True)
class DomainCreate(Command[EppResult]):
    name: str  # A-label
    period_years: int
    auth_pw: str
    nameservers: tuple[str, ...] = ()  # hostObj
    registrant: str | None = None  # contact id; None for thin registries
    contacts: tuple[tuple[Literal["admin", "tech", "billing"], str], ...] = ()
    extensions: tuple[DomainExtension, ...] = ()


@dataclass(frozen=True)
class DomainCheck(Command[DomainCheckResult]):
    """<domain:check>: availability of one or more names (A-labels) in one round trip."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class DomainUpdate(Command[EppResult]):
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
class DomainDelete(Command[EppResult]):
    name: str


@dataclass(frozen=True)
class DomainRenew(Command[RenewResult]):
    """<domain:renew>: ``cur_exp_date`` must match the registry's, so a replayed renew cannot renew twice."""

    name: str
    cur_exp_date: dt.date
    period_years: int = 1


@dataclass(frozen=True)
class DomainTransfer(Command[TransferResult]):
    """<transfer op=...><domain:transfer>: ``auth_pw`` is needed for ``request`` (and some ``query``)."""

    name: str
    op: TransferOp
    auth_pw: str | None = None
    period_years: int | None = None


@dataclass(frozen=True)
class DomainInfoQuery(Command[DomainInfo]):
    """<domain:info hosts="all">: ``auth_pw`` only to read a domain another registrar sponsors."""

    name: str
    auth_pw: str | None = None


@dataclass(frozen=True)
class PollRequest(Command[PollResult]):
    """<poll op="req"/>: fetch the oldest message of this registrar's queue."""


@dataclass(frozen=True)
class PollAck(Command[PollResult]):
    """<poll op="ack" msgID=.../>: remove a message from the queue after handling it."""

    msg_id: str


@dataclass(frozen=True)
class RegistrationCommands:
    """Everything one registration sends to one registry, in order: contacts first, then the domain.

    ``registrar_contacts`` names the contacts in ``contacts`` that are the registrar's own role
    contacts (company data, not a data subject's): they are the same object for every order, so
    the client creates them once per registry (not per registration) and never logs them as a
    disclosure.  Their creates still carry the registry's extension so they can be created
    wherever they are missing.
    """

    contacts: tuple[ContactCreate, ...]
    domain: DomainCreate
    registrar_contacts: frozenset[str] = frozenset()

    def subject_contacts(self) -> tuple[ContactCreate, ...]:
        """The contacts that carry a data subject's values (every one not the registrar's own)."""
        return tuple(c for c in self.contacts if c.id not in self.registrar_contacts)


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
