"""Parked deliveries for staff (``/ui/outbox``): the outbox rows waiting for a decision, grouped per
registry or partner with their counts, why each was parked, its attempts and last result code; Retry and
Cancel buttons (POST forms with the session's CSRF token, privacy role only); and the latest staff
actions with who took them.

Actions go through ``gateway.services.parked`` like the API's, so the page, the API and the CLI write the
same access-log record.  A retry wakes the delivery worker.  Nothing on the page is personal data: rows
are shown by id, registration id, recipient, purpose and codes.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

from aiohttp import web

from gateway.auth import Role
from gateway.clock import iso, utcnow
from gateway.errors import InputError
from gateway.http.api.outbox import row_id_of
from gateway.http.context import services
from gateway.http.pages.core import N_, STAFF_ROLES, Handler, checked_form, page, render, ui_gettext
from gateway.http.pages.session import Session
from gateway.http.query import QueryModel, RecipientId, parse_query
from gateway.services.parked import PARKED_ACTIONS, ParkedAction, act_on_parked

#: Staff actions shown under the rows.
HISTORY = 50
NOTICES = {
    "retried": N_("Queued again: the delivery worker sends it now. If it fails for good again it comes back here."),
    "cancelled": N_("Cancelled: it will not be sent. The registration's status says what the ordering system sees."),
}
#: The titles of the errors an action can meet (``gateway.errors``), shown translated: listed for the catalogue.
ACTION_ERRORS = (N_("No such outbox row"), N_("The outbox row is not parked (waiting for staff)"))
_DONE: dict[ParkedAction, str] = {"retry": "retried", "cancel": "cancelled"}


class ParkedPageQuery(QueryModel):
    """``/ui/outbox``: one recipient only, and which action just succeeded (after the redirect)."""

    blank_means_absent: ClassVar[bool] = True

    recipient: RecipientId | None = None
    done: Literal["retried", "cancelled"] | None = None


def groups(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The rows per recipient, in the store's order (recipient, then oldest first)."""
    return [(recipient, list(items)) for recipient, items in groupby(rows, key=lambda r: str(r["recipient"]))]


async def _page(request: web.Request, session: Session, recipient: str | None, *, status: int = 200,
                error: str | None = None, notice: str | None = None) -> web.Response:
    store = services(request).store
    rows = await store.parked(recipient)
    return render(request, "outbox.html", session, status=status, groups=groups(rows), total=len(rows),
                  recipient=recipient, history=await store.parked_actions(HISTORY), error=error, notice=notice,
                  can_act=session.role is Role.PRIVACY)


@page(*STAFF_ROLES)
async def parked_page(request: web.Request, session: Session) -> web.StreamResponse:
    q = parse_query(ParkedPageQuery, request.query)
    _ = ui_gettext(request, session)
    return await _page(request, session, q.recipient, notice=_(NOTICES[q.done]) if q.done else None)


def action_handler(action: ParkedAction) -> Handler:
    """The POST handler of one action; answers with a redirect to the list (keeping its recipient filter),
    or the list again with the reason (an unknown row, a row that is no longer parked) and its status."""

    @page(Role.PRIVACY)
    async def handler(request: web.Request, session: Session) -> web.StreamResponse:
        form = await checked_form(request, session)
        try:
            back = parse_query(ParkedPageQuery, {"recipient": form.get("recipient", "")}).recipient
        except InputError:
            back = None
        svc = services(request)
        try:
            await act_on_parked(svc.store, row_id_of(request.match_info["row_id"]), action, actor=session.name,
                                now=iso(utcnow()))
        except InputError as err:
            return await _page(request, session, back, status=err.status, error=ui_gettext(request, session)(err.title))
        if action == "retry":
            svc.wake()
        query = urlencode([("done", _DONE[action]), *([("recipient", back)] if back else [])])
        raise web.HTTPSeeOther(f"/ui/outbox?{query}")

    handler.__name__ = f"{action}_post"
    return handler


def add_routes(router: web.UrlDispatcher) -> None:
    """The page and its actions, relative to the pages' mount point."""
    router.add_get("/outbox", parked_page)
    for action in PARKED_ACTIONS:
        router.add_post(f"/outbox/{{row_id}}/{action}", action_handler(action))
