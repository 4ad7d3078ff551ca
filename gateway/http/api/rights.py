"""Data-subject rights endpoints (privacy role; the auditor may read requests and the Art. 30 record).

Bodies are validated strictly (unknown fields rejected); problems name fields, never values.  The
extract endpoints return decrypted personal data and are never cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.auth import Principal, Role, require
from gateway.errors import NotFound, ValidationFailed
from gateway.http.app import SERVICES, _periodic, _principal, _read_json, validation_problem
from gateway.http.problems import json_response
from gateway.models import Registrant
from gateway.rights.config import default_config_dir, load_controller, load_retention
from gateway.rights.recipients import PartnerEndpoints, art19_notices, push_rectification, request_deletions
from gateway.rights.service import RightsService

log = structlog.get_logger("gateway.rights")

Short = Annotated[str, Field(min_length=1, max_length=200)]
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True,
                              hide_input_in_errors=True)


class Identifiers(_Body):
    email: Annotated[str, Field(min_length=3, max_length=254)] | None = None
    national_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    national_id_scheme: Annotated[str, Field(max_length=32)] | None = None
    contact_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    domain: Annotated[str, Field(min_length=1, max_length=253)] | None = None


class OpenRequest(_Body):
    kind: Literal["access", "rectification", "erasure", "restriction", "objection"]
    channel: Annotated[str, Field(min_length=1, max_length=40)]
    identity_check: Short
    verified_by: Annotated[str, Field(min_length=1, max_length=80)]
    identifiers: Identifiers


class ExtendBody(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ExtractBody(_Body):
    lang: Literal["sv", "en"] = "sv"


class RestrictBody(_Body):
    scope: Annotated[str, Field(min_length=1, max_length=64)] = "all"


class ObjectBody(_Body):
    scope: Annotated[str, Field(min_length=1, max_length=64)] = "marketing"


class LiftBody(_Body):
    restriction_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class EmptyBody(_Body):
    pass


class CloseBody(_Body):
    outcome: Short


class RectifyBody(_Body):
    registrant: Registrant


class ExplainBody(_Body):
    tld: Annotated[str, Field(min_length=2, max_length=63)]
    registrant: Registrant


class _Routes:
    def __init__(self, config_dir: Path | None) -> None:
        # loaded now, so a bad retention.yaml / controller.yaml stops start-up like a bad policy file
        cfg = config_dir or default_config_dir()
        self.retention = load_retention(cfg)
        self.controller = load_controller(cfg)
        self._service: RightsService | None = None

    def service(self, request: web.Request) -> RightsService:
        return self.service_for(request.app)

    def service_for(self, app: web.Application) -> RightsService:
        if self._service is None:
            svc = app[SERVICES]
            self._service = RightsService(svc.store, svc.ledger, svc.registrations.policies,
                                          retention_config=self.retention, controller=self.controller)
        return self._service

    @staticmethod
    def _privacy(request: web.Request) -> Principal:
        p = _principal(request)
        require(p, Role.PRIVACY)
        return p

    @staticmethod
    async def _body(request: web.Request, model: type[M]) -> M:
        try:
            if not request.body_exists:
                return model.model_validate({})
            raw, _ = await _read_json(request, request.app[SERVICES].max_body_bytes)
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_problem(exc) from None

    @staticmethod
    def _lang(request: web.Request) -> Literal["sv", "en"]:
        lang = request.query.get("lang", "sv")
        if lang == "sv":
            return "sv"
        if lang == "en":
            return "en"
        raise ValidationFailed("'lang' must be 'sv' or 'en'", errors=[{"loc": ["query", "lang"], "type": "enum"}])

    # -- handlers --------------------------------------------------------------------------------------

    async def open_request(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, OpenRequest)
        ids = {k: v for k, v in b.identifiers.model_dump().items() if v is not None}
        out = await self.service(request).open_request(
            kind=b.kind, channel=b.channel, identity_check=b.identity_check, verified_by=b.verified_by,
            actor=p.name, identifiers=ids,
        )
        return json_response(out, status=201, headers={"Location": f"/v1/requests/{out['id']}"})

    async def list_requests(self, request: web.Request) -> web.Response:
        require(_principal(request), Role.PRIVACY, Role.AUDITOR)
        unknown = set(request.query) - {"state"}
        if unknown:
            raise ValidationFailed("unknown query parameter",
                                   errors=[{"loc": ["query", sorted(unknown)[0][:64]], "type": "extra_forbidden"}])
        return json_response({"items": await self.service(request).list(request.query.get("state"))})

    async def get_request(self, request: web.Request) -> web.Response:
        require(_principal(request), Role.PRIVACY, Role.AUDITOR)
        return json_response(await self.service(request).get(request.match_info["request_id"]))

    async def extend(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, ExtendBody)
        return json_response(await self.service(request).extend(request.match_info["request_id"], p.name, b.reason))

    async def post_extract(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, ExtractBody)
        out = await self.service(request).extract(request.match_info["request_id"], p.name, b.lang)
        return json_response(out, headers={"Cache-Control": "no-store"})

    async def get_extract(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        fmt = request.match_info["fmt"]
        rights = self.service(request)
        request_id = request.match_info["request_id"]
        extract = await rights.extract(request_id, p.name, self._lang(request))
        headers = {"Cache-Control": "no-store"}
        if fmt == "json":
            headers["Content-Disposition"] = f'attachment; filename="extract-{request_id}.json"'
            return json_response(extract, headers=headers)
        if fmt == "html":
            return web.Response(text=rights.render_html(extract), content_type="text/html", charset="utf-8",
                                headers=headers)
        headers["Content-Disposition"] = f'inline; filename="extract-{request_id}.pdf"'
        return web.Response(body=rights.render_pdf(extract), content_type="application/pdf", headers=headers)

    async def restrict(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, RestrictBody)
        out = await self.service(request).restrict(request.match_info["request_id"], p.name, b.scope)
        out["notices"] = await self._notify(request, p.name, "restriction", b.scope)
        return json_response(out, status=201)

    async def object(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, ObjectBody)
        out = await self.service(request).object(request.match_info["request_id"], p.name, b.scope)
        out["notices"] = await self._notify(request, p.name, "objection", b.scope)
        return json_response(out, status=201)

    async def _notify(self, request: web.Request, actor: str, kind: str, scope: str) -> list[dict[str, Any]]:
        svc = request.app[SERVICES]
        request_id = request.match_info["request_id"]
        row = await self.service(request).get(request_id)
        return await art19_notices(svc.store, svc.registrations.policies, partner_endpoints(request.app),
                                   request_id=request_id, subject_id=row.get("subject_id"), actor=actor, kind=kind,
                                   scope=scope)

    async def lift(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, LiftBody)
        return json_response(await self.service(request).lift(request.match_info["request_id"], b.restriction_id,
                                                              p.name))

    async def erase(self, request: web.Request) -> web.Response:
        """Crypto-shred, then ask every HTTPS partner that may delete to do so (Art. 17(2), 19)."""
        p = self._privacy(request)
        await self._body(request, EmptyBody)
        request_id = request.match_info["request_id"]
        report = await self.service(request).erase(request_id, p.name)
        svc = request.app[SERVICES]
        await request_deletions(svc.store, svc.registrations.policies, partner_endpoints(request.app),
                                request_id=request_id, actor=p.name, report=report)
        return json_response(report)

    async def rectify(self, request: web.Request) -> web.Response:
        """Art. 16 + 19: the corrected data goes, minimised, to every recipient of the old data."""
        p = self._privacy(request)
        b = await self._body(request, RectifyBody)
        request_id = request.match_info["request_id"]
        row = await self.service(request).get(request_id)
        if not row.get("subject_id"):
            raise NotFound("the request has no subject to rectify")
        svc = request.app[SERVICES]
        report = await push_rectification(svc.store, svc.ledger, svc.registrations.policies, request_id=request_id,
                                          subject_id=row["subject_id"], actor=p.name, registrant=b.registrant)
        if svc.worker is not None:
            svc.worker.wakeup.set()
        return json_response({"request_id": request_id, "recipients": report}, status=202)

    async def close(self, request: web.Request) -> web.Response:
        p = self._privacy(request)
        b = await self._body(request, CloseBody)
        return json_response(await self.service(request).close(request.match_info["request_id"], p.name, b.outcome))

    async def art30(self, request: web.Request) -> web.Response:
        require(_principal(request), Role.PRIVACY, Role.AUDITOR)
        return json_response(await self.service(request).art30())

    async def explain(self, request: web.Request) -> web.Response:
        self._privacy(request)
        if not request.body_exists:
            raise ValidationFailed("a JSON body with 'tld' and 'registrant' is required",
                                   errors=[{"loc": [], "type": "missing"}])
        b = await self._body(request, ExplainBody)
        return json_response(self.service(request).explain(b.registrant, b.tld))

    async def purge(self, request: web.Request) -> web.Response:
        self._privacy(request)
        unknown = set(request.query) - {"dry_run"}
        raw = request.query.get("dry_run", "true")
        if unknown or raw not in ("true", "false"):
            raise ValidationFailed("'dry_run' must be 'true' or 'false'",
                                   errors=[{"loc": ["query", "dry_run"], "type": "bool_parsing"}])
        out: dict[str, Any] = await self.service(request).retention(dry_run=raw == "true")
        return json_response(out)


RIGHTS_SERVICE = web.AppKey("rights_service", RightsService)


def rights_service(app: web.Application) -> RightsService:
    """The one RightsService of this app, shared by the API and the staff pages."""
    return app[RIGHTS_SERVICE]


def partner_endpoints(app: web.Application) -> PartnerEndpoints | None:
    worker = app[SERVICES].worker
    return worker.partner_endpoints if worker is not None else None


def add_routes(app: web.Application, *, config_dir: Path | None = None) -> None:
    """``config_dir`` holds retention.yaml and controller.yaml (default: $GATEWAY_CONFIG_DIR or config/)."""
    services = app[SERVICES]
    r = _Routes(config_dir or services.config_dir)
    app[RIGHTS_SERVICE] = r.service_for(app)
    if services.retention_interval_s > 0:  # the purge job, on a timer for the app's lifetime

        async def purge() -> None:
            report = await r.service_for(app).retention(dry_run=False)
            log.info("retention.purged", purged=report.get("purged", 0))

        app.cleanup_ctx.append(_periodic(services.retention_interval_s, purge, "retention.purge"))
    rid = "/v1/requests/{request_id}"
    app.router.add_post("/v1/requests", r.open_request)
    app.router.add_get("/v1/requests", r.list_requests)
    app.router.add_get(rid, r.get_request)
    app.router.add_post(f"{rid}/extend", r.extend)
    app.router.add_post(f"{rid}/extract", r.post_extract)
    app.router.add_get(rid + "/extract.{fmt:json|html|pdf}", r.get_extract)
    app.router.add_post(f"{rid}/restrict", r.restrict)
    app.router.add_post(f"{rid}/object", r.object)
    app.router.add_post(f"{rid}/lift", r.lift)
    app.router.add_post(f"{rid}/erase", r.erase)
    app.router.add_post(f"{rid}/rectify", r.rectify)
    app.router.add_post(f"{rid}/close", r.close)
    app.router.add_get("/v1/art30", r.art30)
    app.router.add_post("/v1/explain", r.explain)
    app.router.add_post("/v1/retention/purge", r.purge)
