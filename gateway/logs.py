"""Structured logging, request ids, and the delivery side's metrics.

Call sites log ids, codes and counts only; never registrant values.  ``configure`` sends every line the
process writes, structlog's and the standard library's (aiohttp's access and server loggers, asyncio,
the EPP adapters), through one ``ProcessorFormatter``: one JSON object per line, with the request id
bound by the HTTP middleware (``structlog.contextvars``) on every line of that request.

The delivery worker runs beside the app, not inside a request: the request id is stored with each outbox
row it queued (beside the sealed payload, never in its digest or the ledger entry), and the worker binds it
on that delivery's lines, whichever instance sends it and after a restart too.

The delivery metrics (``DeliveryMetrics``) live on a process-wide registry because the worker and the
app are composed separately; the app's ``/metrics`` forwards them (``gateway.http.context.Metrics``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

#: Library loggers that are noise at INFO (fontTools logs every glyph subset of a PDF extract) or that
#: may quote a URL (httpx logs each request URL at INFO; a partner path may carry an identifier).
QUIET = ("fontTools", "weasyprint", "PIL", "httpx", "httpcore", "asyncpg", "hpack", "charset_normalizer")

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def configure(level: str = "INFO", *, stream: IO[str] | None = None, cache: bool = True) -> logging.Handler:
    """Route structlog and the standard library through one JSON formatter on ``stream`` (stderr).

    Returns the handler installed on the root logger (tests remove it again)."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=cache,
    )
    return handler


# -- request ids -------------------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` if it is 1-64 printable ASCII characters, else a fresh one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_COUNTER):016x}"


#: Generated request ids: a random per-process prefix and a counter.  Unique across processes and restarts
#: like a random id, but without an ``os.urandom`` call on every request (it showed in the accept profile).
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_REQUEST_COUNTER = itertools.count(1)


# -- delivery metrics --------------------------------------------------------------------------------

#: Seconds; EPP commands over TLS take milliseconds on a good day and the configured timeout on a bad one.
EPP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class WorkerBeat:
    """A delivery loop's liveness: when it last went round, and whether it ended by accident."""

    lease_s: float
    at: float = field(default_factory=time.monotonic)
    crashed: bool = False
    #: the event loop it runs on: only loops of the running event loop count (a test's loop is gone after it)
    loop: object = field(default_factory=asyncio.get_running_loop)

    def alive(self, now: float | None = None) -> bool:
        return not self.crashed and (now if now is not None else time.monotonic()) - self.at <= self.lease_s


@dataclass
class DeliveryMetrics:
    """Deliveries by recipient and outcome, and each EPP command's latency per registry, command and result code.
    Labels are recipient ids, commands and codes; never a value."""

    registry: CollectorRegistry
    deliveries: Counter
    epp_seconds: Histogram
    workers: dict[int, WorkerBeat] = field(default_factory=dict)

    @classmethod
    def create(cls) -> DeliveryMetrics:
        reg = CollectorRegistry(auto_describe=True)
        return cls(
            registry=reg,
            deliveries=Counter("gateway_deliveries", "Delivery attempts by recipient and outcome "
                               "(delivered, retry, failed, blocked)", ["recipient", "outcome"], registry=reg),
            epp_seconds=Histogram("gateway_epp_command_duration_seconds",
                                  "EPP command latency (contact:create, domain:create, ...) by registry and code",
                                  ["registry", "command", "code"], buckets=EPP_BUCKETS, registry=reg),
        )

    def workers_alive(self) -> bool:
        """No delivery loop of this process has crashed or stalled beyond its lease."""
        now, loop = time.monotonic(), asyncio.get_running_loop()
        return all(w.alive(now) for w in self.workers.values() if w.loop is loop)


class Forward(Collector):
    """Another registry's metrics, exposed through this one (the app's registry forwards the process's)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        yield from self.source.collect()


_DELIVERY: DeliveryMetrics | None = None


def delivery_metrics() -> DeliveryMetrics:
    """The process's delivery metrics (created on first use)."""
    global _DELIVERY
    if _DELIVERY is None:
        _DELIVERY = DeliveryMetrics.create()
    return _DELIVERY
