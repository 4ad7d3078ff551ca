"""RFC 9457 problem+json responses, and the middleware that guarantees every error is one.

Unexpected exceptions become a bare 500 whose log line names only the exception type: exception
messages can quote input, and input is personal data.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.errors import GatewayError, MethodNotAllowed, NotFound, PayloadTooLarge

log = structlog.get_logger("gateway.api")

PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(err: GatewayError, request: web.Request) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.problem(instance=request.path)).encode(),
        content_type=PROBLEM_JSON,
    )


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data, ensure_ascii=False).encode(), content_type="application/json",
        headers=headers,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as err:
        if err.status >= 500:
            log.error("request.failed", code=err.code, path=request.path)
        return problem_response(err, request)
    except web.HTTPNotFound:
        return problem_response(NotFound("no such resource"), request)
    except web.HTTPMethodNotAllowed:
        return problem_response(MethodNotAllowed(), request)
    except web.HTTPRequestEntityTooLarge:
        return problem_response(PayloadTooLarge(), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"type": "about:blank", "title": exc.reason, "status": exc.status, "code": f"http_{exc.status}"}
        return web.Response(status=exc.status, body=json.dumps(body).encode(), content_type=PROBLEM_JSON)
    except Exception as exc:  # never leak internals or input
        log.error("request.crashed", error_type=type(exc).__name__, path=request.path)
        return problem_response(GatewayError("internal error; the request was not processed"), request)
