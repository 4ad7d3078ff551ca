"""The HTTP application (aiohttp): the JSON API for the ordering system and staff, and the staff pages.

This module only assembles: middlewares, each resource's route table, the pages' sub-application.
What runs beside the app (delivery worker, checkpoints, escrow deposits, the retention purge) is
chosen by the composition root and handed in as cleanup contexts, so HTTP never imports delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gateway.http.api import (
    disclosures,
    docs,
    ledger,
    lifecycle,
    lookups,
    outbox,
    registrations,
    rights,
    system,
    webhooks,
)
from gateway.http.context import (
    SERVICES,
    AccessLogger,
    CleanupContext,
    Services,
    add_request_id_header,
    request_ids,
    services,
)
from gateway.http.pages import MOUNT, pages_app
from gateway.http.problems import PARSER_LIMIT, header_limits, problem_middleware, server_logger

#: Each resource's routes, in the order the app registers them.
ROUTE_TABLES = (
    registrations.routes, disclosures.routes, system.routes, ledger.routes, rights.routes, lookups.routes,
    docs.routes, webhooks.routes, outbox.routes, lifecycle.routes,
)


@web.middleware
async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    resp: web.StreamResponse = await handler(request)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    services(request).metrics.requests.labels(route, str(resp.status)).inc()
    return resp


def build_app(svc: Services, *, background: Iterable[CleanupContext] = ()) -> web.Application:
    """The app over ``svc``; ``background`` runs for the app's lifetime, started in the order given."""
    # client_max_size is a backstop; read_json enforces the configured limit with a problem body.
    # The parser's line and field limits are raised above the real ones, which header_limits enforces
    # with a problem body; aiohttp's own answer to them is plain text quoting the header, and its log
    # records quote it too, hence the type-only logger.  The access log (on whatever runner serves the
    # app) is structured and names the route template, never the path, a query or a header value.
    app = web.Application(
        middlewares=[request_ids, header_limits, count_requests, problem_middleware],
        client_max_size=svc.max_body_bytes * 4,
        handler_args={
            "max_line_size": PARSER_LIMIT, "max_field_size": PARSER_LIMIT, "logger": server_logger(),
            "access_log": logging.getLogger("aiohttp.access"), "access_log_class": AccessLogger,
        },
    )
    app.on_response_prepare.append(add_request_id_header)
    app[SERVICES] = svc
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    app.add_subapp(MOUNT, pages_app())
    app.cleanup_ctx.extend(background)
    return app
