"""RFC 9457 problem+json responses, and the middlewares that guarantee every error is one.

Unexpected exceptions become a bare 500 whose log line names only the exception type: exception
messages can quote input, and input is personal data.  An error after a response was started (a CSV
export failing half-way) cannot become a problem any more: the connection is ended without the
final chunk, so the client sees a failed transfer instead of a second status line inside the body.

Oversized request lines and headers: aiohttp's parser answers them itself, in plain text quoting the
start of the line, and logs the line with the traceback.  The app therefore raises the parser's
limits (``PARSER_LIMIT``) and enforces the real ones (``MAX_LINE``, ``MAX_FIELD``) in
``header_limits``, with a problem body; what still exceeds the parser's limits is logged by
``server_logger`` by exception type only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.errors import (
    GatewayError,
    HeaderTooLarge,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestLineTooLong,
    Unauthenticated,
)

log = structlog.get_logger("gateway.api")

#: What the gateway accepts: a request line and each header field (name, colon, value) up to the
#: sizes aiohttp allowed by default, so no client that worked before is refused now.
MAX_LINE = 8190
MAX_FIELD = 8190
#: What the parser accepts, so that anything between the two limits gets a problem body.
PARSER_LIMIT = 32 * 1024

PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: The realm of the bearer challenge on every 401 (RFC 6750 section 3).
REALM = "registrant-gateway"


def bearer_challenge(request: web.Request) -> str:
    """``WWW-Authenticate`` for a 401: ``error="invalid_token"`` when a bearer token was sent but is not
    known (RFC 6750 section 3.1); a request without one gets the bare challenge."""
    sent = request.headers.get("Authorization", "")
    if sent[:7].lower() == "bearer " and sent[7:].strip():
        return f'Bearer realm="{REALM}", error="invalid_token"'
    return f'Bearer realm="{REALM}"'


def problem_response(
    err: GatewayError, request: web.Request, headers: dict[str, str] | None = None
) -> web.Response:
    """The problem for ``err``; a 401 carries its bearer challenge (RFC 9110 section 15.5.2)."""
    out = dict(headers or {})
    if isinstance(err, Unauthenticated):
        out.setdefault("WWW-Authenticate", bearer_challenge(request))
    return web.Response(
        status=err.status,
        body=json.dumps(err.problem(instance=request.path)).encode(),
        content_type=PROBLEM_JSON,
        headers=out or None,
    )


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data, ensure_ascii=False).encode(), content_type="application/json",
        headers=headers,
    )


class ResponseAbandoned(ConnectionResetError):
    """A handler failed after its response had started.  Raised instead of answering, so aiohttp closes
    the connection without the final chunk (a ``ConnectionError`` is how aiohttp itself gives up on a
    response it cannot finish)."""


def response_started(request: web.Request) -> bool:
    """Has any byte of this request's response been written (status line included)?"""
    return request.writer.output_size > 0


def abandon(request: web.Request, event: str, exc: BaseException) -> ResponseAbandoned:
    """Log a failure after the response started (by type only) and give the exception that ends it."""
    log.error(event, error_type=type(exc).__name__, path=request.path, response_started=True)
    return ResponseAbandoned("the response had started; the connection is closed without its final chunk")


@web.middleware
async def header_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request line and header limits, answered with a problem; never logs or quotes a header."""
    method, path = request.method, request.raw_path
    if len(method) + len(path) + len(" HTTP/1.1") + 1 > MAX_LINE:
        return problem_response(RequestLineTooLong(f"the request line exceeds {MAX_LINE} bytes"), request)
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > MAX_FIELD:
            return problem_response(HeaderTooLarge(f"a header field exceeds {MAX_FIELD} bytes"), request)
    return await handler(request)


class _TypeOnly(logging.Filter):
    """Reduce aiohttp's own server log records to their event and exception type: its parser errors
    quote the offending request line or header (a bearer token, a cookie), and its tracebacks can
    quote whatever an exception message held."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        text = record.msg if isinstance(record.msg, str) else "aiohttp.server"
        record.msg = text.split(" from ")[0].split("%")[0].strip() + (
            f" (error_type={type(exc).__name__})" if exc is not None else "")
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def server_logger() -> logging.Logger:
    """The logger handed to aiohttp's request handler (``handler_args``): type-only records."""
    logger = logging.getLogger("gateway.http.server")
    if not any(isinstance(f, _TypeOnly) for f in logger.filters):
        logger.addFilter(_TypeOnly())
    return logger


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ResponseAbandoned:
        raise
    except GatewayError as err:
        if response_started(request):
            raise abandon(request, "request.failed_after_start", err) from None
        if err.status >= 500:
            log.error("request.failed", code=err.code, path=request.path)
        return problem_response(err, request)
    except web.HTTPNotFound:
        return problem_response(NotFound("no such resource"), request)
    except web.HTTPMethodNotAllowed as exc:
        # RFC 9110 section 15.5.6: a 405 names the methods the target supports
        allow = ", ".join(sorted(exc.allowed_methods))
        return problem_response(MethodNotAllowed(f"this path supports {allow}"), request, {"Allow": allow})
    except web.HTTPRequestEntityTooLarge:
        return problem_response(PayloadTooLarge(), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"type": "about:blank", "title": exc.reason, "status": exc.status, "code": f"http_{exc.status}"}
        return web.Response(status=exc.status, body=json.dumps(body).encode(), content_type=PROBLEM_JSON)
    except Exception as exc:  # never leak internals or input
        if response_started(request):
            raise abandon(request, "request.crashed_after_start", exc) from None
        log.error("request.crashed", error_type=type(exc).__name__, path=request.path)
        return problem_response(GatewayError("internal error; the request was not processed"), request)
