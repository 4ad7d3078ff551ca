"""What a registry's poll message means for the registrar: one typed notice per message.

Registries tell a registrar about everything it did not do itself through the poll queue: a
transfer of one of its domains requested, approved, rejected or cancelled (RFC 5731
<domain:trnData>), a domain gone at expiry or deleted by the registry, a contact the registry
changed, a pending action completed (<domain:panData>).  The gateway keeps the record of who holds
what from these, so the decision "what happened" is made here, once, as a pure function of the
message and our own client id.

Who is who in a transfer is read from the trnData, never from the text: ``reID`` is the gaining
(requesting) registrar, ``acID`` the losing one.  Expiry and registry deletion have no standard
resData (changePoll, RFC 8590, is not offered by the registries we speak to); they carry the
object's <domain:infData> and are told apart by the message text, which is the only place those
registries say it: "expired" / "deleted" as a fact, not a warning ("will expire in 30 days"
stays ``Unknown``).  Anything else is ``Unknown``: the gateway shows it to staff rather than guess.

``Unknown.text`` is the registry's free text, which may quote personal data: show it to staff,
never log it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from adapters.epp.types import PollMessage

__all__ = [
    "ActionCompleted",
    "ContactChanged",
    "DomainDeleted",
    "DomainExpired",
    "Notice",
    "TransferAway",
    "TransferIn",
    "TransferStatus",
    "Unknown",
    "classify",
    "transfer_status",
]

TransferStatus = Literal["pending", "approved", "rejected", "cancelled"]
"""Where a transfer stands; ``approved`` means completed (the gaining registrar is the sponsor)."""

_TRANSFER_STATUSES: Final[dict[str, TransferStatus]] = {
    "pending": "pending",
    "clientapproved": "approved",
    "serverapproved": "approved",
    "clientrejected": "rejected",
    "clientcancelled": "cancelled",
    "servercancelled": "cancelled",
}
_EXPIRED: Final = ("expired",)
_DELETED: Final = ("deleted", "purged", "removed")
_NOT_YET: Final = ("will", "scheduled", "upcoming", "reminder", "warning", "pending", "soon")
"""Words of a notice about what is still to happen ("will expire", "scheduled for deletion"), not a fact."""


@dataclass(frozen=True)
class TransferIn:
    """A transfer in which we are the gaining (requesting) registrar."""

    domain: str
    status: TransferStatus


@dataclass(frozen=True)
class TransferAway:
    """A transfer in which we are the losing registrar (``approved``: the domain is no longer ours)."""

    domain: str
    status: TransferStatus


@dataclass(frozen=True)
class DomainDeleted:
    """The domain is gone: deleted by the registry, or a delete we asked for (1001) was carried out."""

    domain: str


@dataclass(frozen=True)
class DomainExpired:
    """The domain reached its expiry unrenewed and the registry removed it."""

    domain: str


@dataclass(frozen=True)
class ContactChanged:
    """The registry changed one of our contacts (e.g. validated an address): read it again with <info>."""

    contact_id: str


@dataclass(frozen=True)
class ActionCompleted:
    """The registry finished an action it had answered 1001 to (<panData>), without saying which.

    ``sv_trid`` (and ``cl_trid``, when the registry echoes it) name the command that asked for it,
    so the gateway can match the notice to its own pending request (a delete, a .dk create).
    """

    object_type: Literal["domain", "contact"]
    object_id: str
    ok: bool
    cl_trid: str | None = None
    sv_trid: str | None = None


@dataclass(frozen=True)
class Unknown:
    """A message we cannot classify; ``text`` may quote personal data (show it, never log it)."""

    text: str | None
    domain: str | None = None
    contact_id: str | None = None


Notice = TransferIn | TransferAway | DomainDeleted | DomainExpired | ContactChanged | ActionCompleted | Unknown


def transfer_status(tr_status: str) -> TransferStatus | None:
    """RFC 5731 ``trStatus`` folded to where the transfer stands; ``None`` for a value not in the RFC."""
    return _TRANSFER_STATUSES.get(tr_status.strip().casefold())


def _same(a: str | None, b: str) -> bool:
    # client ids are ASCII tokens that some registries upper-case
    return a is not None and a.strip().casefold() == b.strip().casefold()


def _says(text: str | None, words: tuple[str, ...]) -> bool:
    """``text`` reports one of ``words`` as done (a warning about it to come is not the event)."""
    folded = (text or "").casefold()
    return any(word in folded for word in words) and not any(word in folded for word in _NOT_YET)


def classify(message: PollMessage, *, our_client_id: str) -> Notice:
    """The notice ``message`` carries for the registrar logged in as ``our_client_id``."""
    unknown = Unknown(text=message.text, domain=message.domain, contact_id=message.contact_id)
    transfer = message.transfer
    if transfer is not None:
        status = transfer_status(transfer.tr_status)
        if status is None:
            return unknown
        if _same(transfer.re_id, our_client_id):
            return TransferIn(domain=transfer.name, status=status)
        if _same(transfer.ac_id, our_client_id):
            return TransferAway(domain=transfer.name, status=status)
        return unknown
    action = message.pending_action
    if action is not None:
        if action.object_type == "domain" and action.ok and _says(message.text, _DELETED):
            return DomainDeleted(domain=action.object_id)
        return ActionCompleted(
            object_type=action.object_type,
            object_id=action.object_id,
            ok=action.ok,
            cl_trid=action.cl_trid,
            sv_trid=action.sv_trid,
        )
    if message.res_kind == "contact:infData" and message.contact_id is not None:
        return ContactChanged(contact_id=message.contact_id)
    if message.res_kind == "domain:infData" and message.domain is not None:
        if _says(message.text, _EXPIRED):
            return DomainExpired(domain=message.domain)
        if _says(message.text, _DELETED):
            return DomainDeleted(domain=message.domain)
    return unknown
