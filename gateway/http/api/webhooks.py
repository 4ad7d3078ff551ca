"""Webhooks for the ordering system: register a callback URL instead of polling a registration.

``POST /v1/webhooks`` answers the subscription with its signing secret, shown this once;
``GET /v1/webhooks`` lists the caller's own subscriptions with their delivery counts and latest
notifications (a notification that was given up on shows ``failed``); ``DELETE /v1/webhooks/{id}`` ends
one.  Another client's subscription looks absent.  What is sent is described in ``gateway.webhooks``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.auth import Role, require
from gateway.clock import iso, utcnow
from gateway.errors import NotFound, ValidationFailed
from gateway.http.context import principal, read_json, services, validation_problem
from gateway.http.problems import json_response
from gateway.store.base import NewWebhook
from gateway.webhooks.events import EVENT_TYPES, EventType
from gateway.webhooks.signature import new_secret
from gateway.webhooks.urls import MAX_URL, BadCallbackUrl, check_callback_url

routes = web.RouteTableDef()

WEBHOOK_ID_PATTERN = r"^[0-9a-f]{32}$"
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN)
#: How many live subscriptions one client may hold.
MAX_WEBHOOKS = 10


@dataclass(frozen=True)
class WebhookSettings:
    """Set by the composition root; without it only https URLs to public hosts are accepted."""

    allow_loopback_http: bool = False


WEBHOOK_SETTINGS = web.AppKey("webhook_settings", WebhookSettings)


class WebhookCreate(BaseModel):
    """A callback subscription: where to POST, and which event types (all when omitted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: Annotated[str, Field(min_length=8, max_length=MAX_URL, description="https URL to POST events to")]
    events: Annotated[
        list[EventType] | None, Field(min_length=1, max_length=len(EVENT_TYPES), description="event types wanted")
    ] = None


def _settings(request: web.Request) -> WebhookSettings:
    return request.config_dict.get(WEBHOOK_SETTINGS) or WebhookSettings()


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    body, _ = await read_json(request)
    try:
        req = WebhookCreate.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    try:
        url = check_callback_url(req.url, allow_loopback_http=_settings(request).allow_loopback_http)
    except BadCallbackUrl as exc:
        raise ValidationFailed("1 field(s) failed validation", errors=[
            {"loc": ["url"], "type": "callback_url", "msg": f"url {exc}"}]) from None
    events = tuple(dict.fromkeys(req.events)) if req.events else EVENT_TYPES
    if len(await svc.store.webhooks(who.name)) >= MAX_WEBHOOKS:
        raise ValidationFailed("too many webhooks", errors=[
            {"loc": ["url"], "type": "too_many_webhooks", "msg": f"at most {MAX_WEBHOOKS} webhooks per client"}])
    hook = NewWebhook(id=uuid.uuid4().hex, client=who.name, url=url, events=events, secret=new_secret())
    now = iso(utcnow())
    await svc.store.add_webhook(hook, now)
    answer = {"id": hook.id, "url": hook.url, "events": list(events), "secret": hook.secret, "created_at": now}
    return json_response(answer, status=201, headers={"Location": f"/v1/webhooks/{hook.id}",
                                                      "Cache-Control": "no-store"})


@routes.get("/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    items = await svc.store.webhooks(who.name)
    for item in items:
        item["recent"] = await svc.store.webhook_events(item["id"], limit=20)
    return json_response({"items": items})


@routes.delete("/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    webhook_id = request.match_info["webhook_id"]
    if not _WEBHOOK_ID.fullmatch(webhook_id) or not await svc.store.delete_webhook(
        who.name, webhook_id, iso(utcnow())
    ):
        raise NotFound("no such webhook")
    return web.Response(status=204)
