"""A domain after its registration: renew, transfer in, delete, and read the registry's poll queue.

Each function works on an open ``EppClient`` session (like ``client.register_with``), so the pool
or a batch decides how sessions are used.  Like the registration flow they are safe to call again
after a failure that left the outcome unknown (timeout, lost connection, a crash before the answer
was recorded): clTRIDs are derived from the operation, and an answer that says "already done"
(2306 for a renew already applied, 2300/2106 for a transfer already pending or completed, 2303
for a domain already deleted) is checked with <info> or a transfer query and reported as
``reconciled`` instead of raised.

Errors are the client's: ``TransientDeliveryError`` (retry), ``PermanentDeliveryError`` (do not),
with result codes, object ids and transaction ids only.  None of these commands carries a data
subject's values (a domain name, a period, an auth code), so none is a disclosure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from adapters.epp.client import EppClient, make_cl_trid
from adapters.epp.notices import transfer_status
from adapters.epp.outcomes import OBJECT_MISSING
from adapters.epp.types import (
    DomainDelete,
    DomainInfoQuery,
    DomainRenew,
    DomainTransfer,
    EppResult,
    PollAck,
    PollMessage,
    PollRequest,
    PollResult,
    TransferData,
)
from adapters.epp.xml import xs_date
from gateway.errors import DeliveryError, PermanentDeliveryError

__all__ = [
    "Deletion",
    "PollAcker",
    "Renewal",
    "TransferRequest",
    "delete_domain_with",
    "poll_ack",
    "poll_once",
    "poll_request",
    "renew_with",
    "transfer_request_with",
]

PARAMETER_POLICY: Final = 2306  # a renew whose curExpDate no longer matches
PENDING_TRANSFER: Final = 2300
NOT_ELIGIBLE_FOR_TRANSFER: Final = 2106
STATUS_PROHIBITS: Final = 2304
_MAX_ACK_STEP: Final = 40

PollAcker = Callable[[], Awaitable[PollResult | None]]
"""Acknowledges the message ``poll_once`` returned (does nothing when there was none)."""


@dataclass(frozen=True)
class Renewal:
    """A renewal as the registry holds it: ``ex_date`` is the new expiry date."""

    name: str
    ex_date: dt.date
    result: EppResult
    reconciled: bool = False  # an earlier attempt had renewed it; nothing was sent this time


@dataclass(frozen=True)
class TransferRequest:
    """Where our transfer request stands: ``pending`` (the losing registrar or the clock decides) or
    ``approved`` (we sponsor the domain now)."""

    name: str
    status: Literal["pending", "approved"]
    result: EppResult
    transfer: TransferData | None = None
    reconciled: bool = False


@dataclass(frozen=True)
class Deletion:
    """A delete as the registry ended up with it: gone, or ``pending`` (queued, 1001: a poll message
    with <domain:panData> says when it is carried out)."""

    name: str
    pending: bool
    result: EppResult
    reconciled: bool = False


def _add_years(value: dt.date, years: int) -> dt.date:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February into a non-leap year
        return value.replace(year=value.year + years, day=28)


def _result_of(exc: DeliveryError) -> EppResult:
    """The answer a refusal carried, as a result (the registry's text is never kept: it may quote data)."""
    return EppResult(
        code=exc.result_code or 0, message="", cl_trid=exc.extra.get("cl_trid"), sv_trid=exc.extra.get("sv_trid")
    )


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.casefold() == b.casefold()


async def _expiry(client: EppClient, name: str, cl_trid: str) -> tuple[dt.date, EppResult]:
    info = await client.send(DomainInfoQuery(name), cl_trid)
    current = xs_date(info.ex_date)
    if current is None:
        raise PermanentDeliveryError(
            "EPP domain:info answer carried no expiry date",
            result_code=info.result.code,
            epp_command="domain:info",
            object_id=name,
            cl_trid=cl_trid,
        )
    return current, info.result


async def renew_with(
    client: EppClient, name: str, years: int, cl_trid_prefix: str, *, cur_exp_date: dt.date | None = None
) -> Renewal:
    """<domain:renew> for ``years`` from the current expiry; returns the new one.

    ``cur_exp_date`` is the expiry the renewal is for.  A caller that may retry should record it
    before the first attempt and pass it every time: a renew that was applied but whose answer was
    lost then shows as the expiry already moved by ``years`` (reconciled, nothing sent), where
    reading the expiry afresh would renew a second time.  Without it the current expiry is read
    with <domain:info> first.
    """
    current, info_result = await _expiry(client, name, make_cl_trid(cl_trid_prefix, "domain-renew-info"))
    expected = cur_exp_date or current
    if current != expected:
        if current == _add_years(expected, years):
            return Renewal(name=name, ex_date=current, result=info_result, reconciled=True)
        raise PermanentDeliveryError(
            "domain expiry is not the one the renewal was for",
            result_code=PARAMETER_POLICY,
            epp_command="domain:renew",
            object_id=name,
            cl_trid=info_result.cl_trid,
        )
    renew = DomainRenew(name=name, cur_exp_date=expected, period_years=years)
    step = f"domain-renew-{expected:%Y%m%d}-{years}y"
    renewed = await client.send(renew, make_cl_trid(cl_trid_prefix, step))
    new_expiry = xs_date(renewed.ex_date) or _add_years(expected, years)  # renData's exDate is optional
    return Renewal(name=name, ex_date=new_expiry, result=renewed.result)


async def transfer_request_with(
    client: EppClient, name: str, auth_pw: str, years: int | None, cl_trid_prefix: str
) -> TransferRequest:
    """<transfer op="request"> with the domain's auth code (2202 if wrong: permanent).

    ``approved`` when the registry completed it at once (auth-code registries answer 1000 with
    ``serverApproved``), else ``pending``.  Asking again finds the transfer already pending (2300)
    or already ours (2106): both are reconciled with a transfer query or <domain:info>.
    """
    request = DomainTransfer(name=name, op="request", auth_pw=auth_pw, period_years=years)
    try:
        answer = await client.send(request, make_cl_trid(cl_trid_prefix, "domain-transfer-request"))
    except PermanentDeliveryError as exc:
        if exc.result_code == PENDING_TRANSFER:
            query = await client.send(
                DomainTransfer(name=name, op="query", auth_pw=auth_pw),
                make_cl_trid(cl_trid_prefix, "domain-transfer-query"),
            )
            if query.transfer is not None and _same(query.transfer.re_id, client.endpoint.client_id):
                if transfer_status(query.transfer.tr_status) == "pending":
                    return TransferRequest(name, "pending", query.result, query.transfer, reconciled=True)
            raise
        if exc.result_code == NOT_ELIGIBLE_FOR_TRANSFER:
            info = await client.send(DomainInfoQuery(name), make_cl_trid(cl_trid_prefix, "domain-transfer-info"))
            if _same(info.cl_id, client.endpoint.client_id):
                return TransferRequest(name, "approved", info.result, reconciled=True)
        raise
    status = transfer_status(answer.transfer.tr_status) if answer.transfer is not None else None
    if answer.result.pending or status == "pending":
        return TransferRequest(name, "pending", answer.result, answer.transfer)
    if status == "approved" or (status is None and answer.result.code == 1000):
        return TransferRequest(name, "approved", answer.result, answer.transfer)
    raise PermanentDeliveryError(
        "EPP transfer request answered as neither pending nor approved",
        result_code=answer.result.code,
        epp_command="domain:transfer:request",
        object_id=name,
        cl_trid=answer.result.cl_trid,
    )


async def delete_domain_with(client: EppClient, name: str, cl_trid_prefix: str) -> Deletion:
    """<domain:delete>: gone (1000) or queued (1001).

    A domain the registry no longer knows (2303) counts as deleted, and one already in
    ``pendingDelete`` (2304) as queued: an earlier attempt got through.  2305 (hosts under the
    domain still in use) and other refusals are raised.  The domain's contacts stay at the
    registry: deleting them is ``contact:delete`` (2305 while another domain uses them).
    """
    try:
        result = await client.send(DomainDelete(name), make_cl_trid(cl_trid_prefix, "domain-delete"))
    except PermanentDeliveryError as exc:
        if exc.result_code == OBJECT_MISSING:
            return Deletion(name=name, pending=False, result=_result_of(exc), reconciled=True)
        if exc.result_code == STATUS_PROHIBITS:
            info = await client.send(DomainInfoQuery(name), make_cl_trid(cl_trid_prefix, "domain-delete-info"))
            if "pendingDelete" in info.statuses and _same(info.cl_id, client.endpoint.client_id):
                return Deletion(name=name, pending=True, result=info.result, reconciled=True)
        raise
    return Deletion(name=name, pending=result.pending, result=result)


async def poll_request(client: EppClient) -> PollResult:
    """<poll op="req">: the oldest message (``message`` None when the queue is empty, 1300).

    Its clTRID is numbered per session by the client: the frame is the same every time, so there
    is nothing else to derive one from.
    """
    return await client.send(PollRequest())


async def poll_ack(client: EppClient, msg_id: str, cl_trid_prefix: str) -> PollResult | None:
    """<poll op="ack">; ``None`` when the message was already gone (2303: an earlier ack got through)."""
    step = f"poll-ack-{msg_id}"
    if len(step) > _MAX_ACK_STEP:
        step = f"poll-ack-{hashlib.sha256(msg_id.encode()).hexdigest()[:16]}"
    try:
        return await client.send(PollAck(msg_id), make_cl_trid(cl_trid_prefix, step))
    except PermanentDeliveryError as exc:
        if exc.result_code == OBJECT_MISSING:
            return None
        raise


async def poll_once(client: EppClient, cl_trid_prefix: str) -> tuple[PollMessage | None, PollAcker]:
    """The oldest message and a function that acknowledges it.

    Acknowledge only once what the message says is recorded: an unacknowledged message comes back
    on the next request, an acknowledged one never does.
    """
    polled = await poll_request(client)
    message = polled.message

    async def ack() -> PollResult | None:
        if message is None:
            return None
        return await poll_ack(client, message.id, cl_trid_prefix)

    return message, ack
