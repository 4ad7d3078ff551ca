"""Each EPP command type bound to how it is written and what its answer becomes.

This is CZ.NIC epplib's pairing of a request class with its ``response_class``, kept beside the
values instead of inside them: the command values in ``adapters.epp.types`` are plain data the
gateway seals into its outbox, while writing XML is ``adapters.epp.xml``'s job.  One row per type:

    command            op (logs, errors)          builder                 send() returns
    ContactCreate      contact:create             build_contact_create    EppResult (+ created_id)
    ContactUpdate      contact:update             build_contact_update    EppResult
    ContactDelete      contact:delete             build_contact_delete    EppResult
    ContactInfoQuery   contact:info               build_contact_info      ContactInfo
    DomainCreate       domain:create              build_domain_create     EppResult
    DomainUpdate       domain:update              build_domain_update     EppResult
    DomainDelete       domain:delete              build_domain_delete     EppResult
    DomainRenew        domain:renew               build_domain_renew      RenewResult
    DomainTransfer     domain:transfer:<op>       build_domain_transfer   TransferResult
    DomainInfoQuery    domain:info                build_domain_info       DomainInfo
    DomainCheck        domain:check               build_domain_check      DomainCheckResult
    PollRequest        poll:req                   build_poll              PollResult
    PollAck            poll:ack                   build_poll              PollResult

Session commands (hello, login, logout) are not here: they change the session itself and are
``EppClient`` methods.  Whether a result code is success, retryable or permanent is decided in
``adapters.epp.outcomes``, never here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from adapters.epp.types import (
    Command,
    ContactCreate,
    ContactDelete,
    ContactInfo,
    ContactInfoQuery,
    ContactUpdate,
    DomainCheck,
    DomainCheckResult,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainInfoQuery,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    EppResult,
    PollAck,
    PollRequest,
    PollResult,
    RenewResult,
    TransferResult,
)
from adapters.epp.xml import (
    Response,
    build_contact_create,
    build_contact_delete,
    build_contact_info,
    build_contact_update,
    build_domain_check,
    build_domain_create,
    build_domain_delete,
    build_domain_info,
    build_domain_renew,
    build_domain_transfer,
    build_domain_update,
    build_poll,
)
from gateway.errors import PermanentDeliveryError

__all__ = ["Binding", "binding_for"]

C = TypeVar("C")
R = TypeVar("R")


@dataclass(frozen=True)
class Binding(Generic[C, R]):
    """How a command of type ``C`` is written, named and answered (an ``R``).

    ``op`` names the command in logs and errors (``"contact:update"``); with ``:`` turned into
    ``-`` it is also the step of the clTRID derived when the caller gives none, so a retried
    command carries the clTRID of its first attempt.  A ``numbered`` command has nothing to derive
    a clTRID from (``<poll op="req"/>`` is the same frame every time) and is numbered per session.
    ``key`` is the attribute holding the object id that logs and errors may name.
    """

    op: str | Callable[[C], str]
    build: Callable[[C, str], bytes]
    result: Callable[[Response, C, str], R]
    key: str | None = None
    numbered: bool = False

    def op_of(self, command: C) -> str:
        return self.op if isinstance(self.op, str) else self.op(command)

    def object_id(self, command: C) -> str | None:
        return None if self.key is None else str(getattr(command, self.key))


def _result(response: Response, _command: object, _cl_trid: str) -> EppResult:
    return response.result


def _contact_created(response: Response, _cmd: ContactCreate, _cl_trid: str) -> EppResult:
    """The result, with the id the registry gave the contact (it may not be the one asked for)."""
    if response.created_id is None:
        return response.result
    return dataclasses.replace(response.result, created_id=response.created_id)


def _no_data(op: str, response: Response, cl_trid: str) -> PermanentDeliveryError:
    return PermanentDeliveryError(
        f"EPP {op} answer carried no infData", result_code=response.result.code, cl_trid=cl_trid
    )


def _domain_info(response: Response, _query: DomainInfoQuery, cl_trid: str) -> DomainInfo:
    if response.domain_info is None:
        raise _no_data("domain:info", response, cl_trid)
    return response.domain_info


def _contact_info(response: Response, query: ContactInfoQuery, cl_trid: str) -> ContactInfo:
    """The infData, provided it is about the contact asked for.

    An answer for another id (a registry that maps ids, or a bug on either side) must not be taken
    for ours: the caller decides from it whether a contact is its own.  Ids are ASCII tokens that
    some registries upper-case, hence casefold.  The message names neither id.
    """
    if response.contact_info is None:
        raise _no_data("contact:info", response, cl_trid)
    if response.contact_info.id.casefold() != query.id.casefold():
        raise PermanentDeliveryError(
            "EPP contact:info answered for another contact id",
            result_code=response.result.code,
            epp_command="contact:info",
            cl_trid=cl_trid,
        )
    return response.contact_info


def _checked(response: Response, _cmd: DomainCheck, cl_trid: str) -> DomainCheckResult:
    if response.checked is None:
        raise PermanentDeliveryError(
            "EPP domain:check answer carried no chkData", result_code=response.result.code, cl_trid=cl_trid
        )
    return DomainCheckResult(result=response.result, names=response.checked)


def _renewed(response: Response, cmd: DomainRenew, _cl_trid: str) -> RenewResult:
    return RenewResult(result=response.result, name=response.renewed_name or cmd.name, ex_date=response.expiry_date)


def _transferred(response: Response, _cmd: DomainTransfer, _cl_trid: str) -> TransferResult:
    return TransferResult(result=response.result, transfer=response.transfer)


def _polled(response: Response, _cmd: PollRequest | PollAck, _cl_trid: str) -> PollResult:
    return PollResult(
        result=response.result, count=response.msg_count or 0, message=response.message, msg_id=response.msg_id
    )


_BINDINGS: Final[dict[type, Binding[Any, Any]]] = {
    ContactCreate: Binding[ContactCreate, EppResult]("contact:create", build_contact_create, _contact_created, "id"),
    ContactUpdate: Binding[ContactUpdate, EppResult]("contact:update", build_contact_update, _result, "id"),
    ContactDelete: Binding[ContactDelete, EppResult]("contact:delete", build_contact_delete, _result, "id"),
    ContactInfoQuery: Binding[ContactInfoQuery, ContactInfo](
        "contact:info", lambda q, trid: build_contact_info(q.id, trid, auth_pw=q.auth_pw), _contact_info, "id"
    ),
    DomainCreate: Binding[DomainCreate, EppResult]("domain:create", build_domain_create, _result, "name"),
    DomainUpdate: Binding[DomainUpdate, EppResult]("domain:update", build_domain_update, _result, "name"),
    DomainDelete: Binding[DomainDelete, EppResult]("domain:delete", build_domain_delete, _result, "name"),
    DomainRenew: Binding[DomainRenew, RenewResult]("domain:renew", build_domain_renew, _renewed, "name"),
    DomainTransfer: Binding[DomainTransfer, TransferResult](
        lambda t: f"domain:transfer:{t.op}", build_domain_transfer, _transferred, "name"
    ),
    DomainInfoQuery: Binding[DomainInfoQuery, DomainInfo](
        "domain:info", lambda q, trid: build_domain_info(q.name, trid, auth_pw=q.auth_pw), _domain_info, "name"
    ),
    DomainCheck: Binding[DomainCheck, DomainCheckResult]("domain:check", build_domain_check, _checked),
    PollRequest: Binding[PollRequest, PollResult]("poll:req", build_poll, _polled, numbered=True),
    PollAck: Binding[PollAck, PollResult]("poll:ack", build_poll, _polled),
}


def binding_for(command: Command[R]) -> Binding[Any, R]:
    """The row for ``command``'s type; a type without one is a programming error, not a delivery one."""
    try:
        return _BINDINGS[type(command)]
    except KeyError:
        raise TypeError(f"{type(command).__name__} is not an EPP command the client can send") from None
