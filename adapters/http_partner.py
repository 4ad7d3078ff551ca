"""JSON over HTTPS to partners (e-mail delivery, payment, marketing), retried only when retrying helps.

Error mapping is the contract with the delivery worker, as in the EPP client:

=====================================  ============================  ======================================
what happened                          raised                        why
=====================================  ============================  ======================================
connect error, timeout, dropped conn.  ``TransientDeliveryError``    the partner may never have seen it
408, 425, 429                          ``TransientDeliveryError``    the partner asked us to come back
409                                    ``TransientDeliveryError``    see below
500, 502, 503, 504 and other 5xx       ``TransientDeliveryError``    a partner-side fault that usually passes
501, 505                               ``PermanentDeliveryError``    we and the partner disagree on the
                                                                     protocol; no retry changes that
3xx                                    ``PermanentDeliveryError``    redirects are not followed: they could
                                                                     carry personal data to another host
other 4xx                              ``PermanentDeliveryError``    the partner refuses this request
TLS certificate verification failure   ``PermanentDeliveryError``    configuration or attack: for a human
=====================================  ============================  ======================================

500 is retried: behind a load balancer it is as often a crashed instance or a failed dependency as
a request the partner can never handle, and the idempotency key makes a retry harmless.  501 and 505
are the two 5xx that describe the request itself, so they are permanent.

409 is retried although other 4xx are not: the HTTP Idempotency-Key draft
(draft-ietf-httpapi-idempotency-key-header, §2.6) has a server answer 409 while the *first* request
with that key is still being processed.  That is exactly what a retry after our own timeout meets,
and calling it permanent would mark a delivery failed that is in fact going through.  A genuine
conflict costs a few bounded retries and then surfaces as transient.

Every attempt of one call sends the same ``Idempotency-Key`` and byte-identical body, so a partner
that stores keys delivers once however often we retry.  Callers should derive the key from an id
of the work item (delivery id), never from personal data: it reaches the partner's logs and ours.

Nothing raised or logged here quotes a URL path, a request or a response body: partners echo
submitted values in their error bodies and paths may contain ids chosen by others.  Errors carry the
partner name, HTTP status (``result_code``), attempt count and the class name of a transport error.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from adapters._closing import AsyncClosing
from gateway.errors import ConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "HttpPartnerClient",
    "PartnerEndpoint",
    "PartnerReceipt",
    "PartnerResponse",
    "Sleep",
    "is_transient_status",
    "partner_ref",
    "retry_policy",
]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

USER_AGENT: Final = "registrant-gateway/0.1"
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_PERMANENT_5XX: Final = frozenset({501, 505})
_TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})
_MAX_PARTNER_REF: Final = 200


def _redact(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}/<redacted>"


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a path can hold an e-mail address or a number.

    Installed once on the ``httpx`` logger when this module is imported, it keeps scheme, host and
    port and drops path and query.  (Setting that logger to WARNING in the logging configuration
    would also do; this filter holds whatever the configuration says.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(_redact(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


def _install_redaction() -> None:
    target = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactHttpxUrls) for f in target.filters):
        target.addFilter(_RedactHttpxUrls())


_install_redaction()


def is_transient_status(status: int) -> bool:
    """Whether an HTTP error status is worth retrying (the table in the module docstring)."""
    if status in _TRANSIENT_4XX:
        return True
    return 500 <= status <= 599 and status not in _PERMANENT_5XX


@dataclass(frozen=True)
class PartnerEndpoint:
    """Where and how to reach one partner.

    ``verify`` is a CA file (PEM) to pin, ``True`` for the system/certifi trust store, or ``False``
    (only ever for loopback tests).  ``max_total_s`` bounds the time spent *between* attempts; the
    whole call can take up to ``max_total_s + timeout_s`` because an attempt already started is not
    cut short.  A ``Retry-After`` longer than ``retry_after_cap_s`` (or than the remaining budget)
    ends the call at once with a transient error carrying ``retry_after_s``, so that the durable
    worker, not a coroutine, does the long wait.
    """

    base_url: str
    token: str = field(repr=False)
    timeout_s: float = 10.0
    verify: str | bool = True
    max_attempts: int = 4
    max_total_s: float = 30.0
    name: str = "partner"
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 10.0
    max_response_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"partner {self.name}: base_url must be an absolute https URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            # Personal data never crosses a network in clear text; loopback is for tests only.
            raise ConfigError(f"partner {self.name}: plain http is allowed for loopback hosts only")
        if parts.query or parts.fragment:
            raise ConfigError(f"partner {self.name}: base_url must not have a query or fragment")
        if self.max_attempts < 1:
            raise ConfigError(f"partner {self.name}: max_attempts must be at least 1")
        for label, value in (
            ("timeout_s", self.timeout_s),
            ("max_total_s", self.max_total_s),
            ("backoff_max_s", self.backoff_max_s),
        ):
            if not value > 0:
                raise ConfigError(f"partner {self.name}: {label} must be positive")
        if self.backoff_base_s < 0 or self.retry_after_cap_s < 0:
            raise ConfigError(f"partner {self.name}: backoff_base_s and retry_after_cap_s must not be negative")


@dataclass(frozen=True)
class PartnerReceipt:
    """What a successful call leaves for the processing log: status, the partner's id for it, attempts."""

    status: int
    partner_ref: str | None
    attempts: int


@dataclass(frozen=True)
class PartnerResponse:
    """A successful (or explicitly accepted) answer; ``body`` is ``None`` when it exceeded the size cap."""

    status: int
    headers: httpx.Headers = field(repr=False)
    body: bytes | None = field(repr=False)
    attempts: int


def _ssl_context(verify: str | bool) -> ssl.SSLContext | bool:
    if not isinstance(verify, str):
        return verify
    # With a cafile, create_default_context trusts only that CA: the partner's CA is pinned.
    # (httpx 0.28 deprecates verify=<path>, and filterwarnings=error would turn that into a failure.)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=verify)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _retry_after_s(value: str | None, now: datetime) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; anything unparseable is ignored."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _cert_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # the chain is httpx -> httpcore -> ssl; bounded in case of a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after_of(exc: BaseException | None) -> float | None:
    if isinstance(exc, TransientDeliveryError):
        value = exc.extra.get("retry_after_s")
        if isinstance(value, int | float):
            return float(value)
    return None


def _remaining_s(endpoint: PartnerEndpoint, state: RetryCallState) -> float:
    return endpoint.max_total_s - (state.seconds_since_start or 0.0)


def retry_policy(endpoint: PartnerEndpoint, sleep: Sleep | None = None) -> AsyncRetrying:
    """The one retry policy for partner HTTP calls (send, delete, escrow upload, address lookup).

    Full-jitter exponential backoff spreads the retries of many workers hitting one recovering
    partner.  Each wait is cut to the remaining ``max_total_s`` budget so the stop condition, which
    tenacity checks only after an attempt, bounds the total.  ``sleep`` is a seam for tests.
    """
    backoff = wait_random_exponential(multiplier=endpoint.backoff_base_s, max=endpoint.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = _retry_after_of(exc)
        if asked is not None:
            return asked  # used only if stop() agreed, i.e. it fits the cap and the budget
        return max(0.0, min(backoff(state), _remaining_s(endpoint, state)))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= endpoint.max_attempts:
            return True
        remaining = _remaining_s(endpoint, state)
        if remaining <= 0:
            return True
        asked = _retry_after_of(state.outcome.exception() if state.outcome else None)
        return asked is not None and asked > min(endpoint.retry_after_cap_s, remaining)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        code = exc.result_code if isinstance(exc, DeliveryError) else None
        cause = exc.extra.get("cause") if isinstance(exc, DeliveryError) else None
        log.warning(
            "partner %s attempt %d failed (status=%s cause=%s); retrying in %.2fs",
            endpoint.name,
            state.attempt_number,
            code,
            cause,
            state.upcoming_sleep,
        )

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception_type(TransientDeliveryError),
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )


def _check_path(path: str) -> str:
    # An absolute URL here would make httpx ignore base_url and send our bearer token elsewhere.
    if not path.startswith("/") or path.startswith("//") or "://" in path:
        raise ValueError("path must be relative to the partner's base_url and start with a single '/'")
    return path


def _encode_json(payload: Mapping[str, Any], partner: str) -> bytes:
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        # The message of either could quote a value; say only that the payload is unusable.
        raise PermanentDeliveryError(f"payload for partner {partner} is not JSON-serialisable") from None


def partner_ref(response: PartnerResponse) -> str | None:
    """The partner's id for what it accepted: JSON ``id`` or ``reference``, else a ``Location`` header."""
    ref: object = None
    if response.body:
        try:
            data = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            ref = data.get("id", data.get("reference"))
    if not isinstance(ref, str | int) or isinstance(ref, bool):
        ref = response.headers.get("location")
    if ref is None:
        return None
    text = str(ref)
    return text if 0 < len(text) <= _MAX_PARTNER_REF else None


class HttpPartnerClient(AsyncClosing):
    """One partner's connection pool; use as ``async with HttpPartnerClient(endpoint) as client``.

    ``transport`` is the test seam (``respx`` or ``httpx.MockTransport``); when given, ``verify``
    is the transport's business.  ``sleep`` replaces the back-off sleep, so tests can check the
    delays chosen without waiting for them.
    """

    def __init__(
        self,
        endpoint: PartnerEndpoint,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._sleep = sleep
        try:
            verify = _ssl_context(endpoint.verify)
        except (OSError, ssl.SSLError):
            raise ConfigError(f"partner {endpoint.name}: the CA file cannot be read as PEM certificates") from None
        self._client = httpx.AsyncClient(
            base_url=endpoint.base_url,
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(endpoint.timeout_s),
            follow_redirects=False,
            headers={"Authorization": f"Bearer {endpoint.token}", "User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, path: str, payload: Mapping[str, Any], idempotency_key: str) -> PartnerReceipt:
        """POST ``payload`` as JSON; the partner must de-duplicate on ``idempotency_key``."""
        body = _encode_json(payload, self.endpoint.name)
        response = await self.request(
            "POST", path, idempotency_key=idempotency_key, content=body, content_type="application/json"
        )
        return PartnerReceipt(response.status, partner_ref(response), response.attempts)

    async def delete(self, path: str, idempotency_key: str) -> PartnerReceipt:
        """DELETE for an erasure request (GDPR Art. 17, notified under Art. 19).

        404 and 410 count as success: the data is gone either way, and a retry whose first attempt
        did erase (but whose answer was lost) meets exactly that.  The receipt keeps the status so
        the log can tell "erased now" from "was not there".
        """
        response = await self.request("DELETE", path, idempotency_key=idempotency_key, accept=frozenset({404, 410}))
        return PartnerReceipt(response.status, partner_ref(response), response.attempts)

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str | None,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> PartnerResponse:
        """One logical call under the retry policy; 2xx and the statuses in ``accept`` succeed.

        Shared by the escrow and address-lookup adapters so that every partner call classifies
        failures and backs off the same way.
        """
        _check_path(path)
        sent: dict[str, str] = {"Accept": "application/json"}
        if headers:
            sent.update(headers)
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > 255 or not idempotency_key.isprintable():
                raise ValueError("idempotency_key must be 1-255 printable characters")
            sent["Idempotency-Key"] = idempotency_key
        if content_type is not None:
            sent["Content-Type"] = content_type

        attempts = 0
        written = False  # whether any attempt may have delivered the body (a later one's failure hides it)
        result: PartnerResponse | None = None
        try:
            async for attempt in retry_policy(self.endpoint, self._sleep):
                with attempt:
                    attempts += 1
                    try:
                        result = await self._once(method, path, sent, content, accept)
                    except DeliveryError as exc:
                        written = written or bool(exc.extra.get("frame_written"))
                        raise
        except DeliveryError as exc:
            exc.extra["attempts"] = attempts
            if written and exc.result_code is None:
                exc.extra["frame_written"] = True
            log.warning(
                "partner %s %s key=%s failed after %d attempt(s): %s (status=%s)",
                self.endpoint.name,
                method,
                idempotency_key,
                attempts,
                exc.code,
                exc.result_code,
            )
            raise
        assert result is not None
        return dataclasses.replace(result, attempts=attempts)

    async def _once(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        content: bytes | None,
        accept: frozenset[int],
    ) -> PartnerResponse:
        name = self.endpoint.name
        try:
            async with self._client.stream(method, path, headers=headers, content=content) as response:
                status = response.status_code
                if not (200 <= status <= 299 or status in accept):
                    # The body is never read: partners echo what we sent, and that is personal data.
                    raise self._status_error(status, response.headers.get("retry-after"))
                body = await self._read_capped(response)
                return PartnerResponse(status, response.headers, body, 0)
        except httpx.TimeoutException as exc:
            # a connect or pool timeout sent nothing; a write or read timeout may have delivered the body
            written = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            raise TransientDeliveryError(f"partner {name} timed out", partner=name, cause=type(exc).__name__,
                                         frame_written=written) from None
        except httpx.ConnectError as exc:
            if _cert_failure(exc):
                raise PermanentDeliveryError(
                    f"partner {name} TLS certificate failed verification",
                    partner=name,
                    cause="SSLCertVerificationError",
                ) from None
            raise TransientDeliveryError(
                f"partner {name} connection failed", partner=name, cause=type(exc).__name__
            ) from None
        except httpx.UnsupportedProtocol:
            raise PermanentDeliveryError(
                f"partner {name} URL scheme is unsupported", partner=name, cause="UnsupportedProtocol"
            ) from None
        except httpx.InvalidURL:
            raise ValueError("path does not form a valid URL") from None
        except httpx.RequestError as exc:  # read/write errors, dropped connections, bad content-encoding
            raise TransientDeliveryError(
                f"partner {name} connection failed", partner=name, cause=type(exc).__name__, frame_written=True
            ) from None
        # ``from None`` everywhere: httpx exceptions hold the request (URL, headers, body) and a
        # chained traceback is the easiest way for those to reach a log.

    def _status_error(self, status: int, retry_after: str | None) -> DeliveryError:
        name = self.endpoint.name
        if is_transient_status(status):
            extra: dict[str, Any] = {"partner": name}
            delay = _retry_after_s(retry_after, datetime.now(UTC))
            if delay is not None and math.isfinite(delay):
                extra["retry_after_s"] = delay
            return TransientDeliveryError(f"partner {name} answered HTTP {status}", result_code=status, **extra)
        if 300 <= status <= 399:
            return PermanentDeliveryError(
                f"partner {name} answered a redirect (HTTP {status}), which is not followed",
                result_code=status,
                partner=name,
            )
        return PermanentDeliveryError(
            f"partner {name} refused the request (HTTP {status})", result_code=status, partner=name
        )

    async def _read_capped(self, response: httpx.Response) -> bytes | None:
        limit = self.endpoint.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                log.warning("partner %s response exceeded %d bytes; body ignored", self.endpoint.name, limit)
                return None
            chunks.append(chunk)
        return b"".join(chunks)


class PartnerClientBase(AsyncClosing):
    """Async context management for clients built on one :class:`HttpPartnerClient` (``self._http``)."""

    _http: HttpPartnerClient

    async def aclose(self) -> None:
        await self._http.aclose()
