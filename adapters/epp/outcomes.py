"""EPP result codes mapped to outcomes -- the ONE place that decides what is retried.

    code                         outcome     raised as                 retried by ``with_retries``
    1000, 1300, 1301, 1500 ...   SUCCESS     -                         -
    1001                         PENDING     - (result ``pending``)    -
    2400, 2500, 2501, 2502       RETRYABLE   TransientDeliveryError    yes
    timeouts, dropped/garbled    RETRYABLE   TransientDeliveryError    yes
      connections (``transport_error``)
    every other 2xxx             PERMANENT   PermanentDeliveryError    never

2501 ("authentication error; server closing connection") is retryable because RFC 5730 uses it
for a server that ends a session, not for a wrong password (that is 2200, permanent).

``with_retries`` is the single retry loop (tenacity: full-jitter exponential backoff, bounded by
attempts and by total time).  A retry is only safe because commands are idempotent at the
registry: object ids and clTRIDs are deterministic, creates reconcile "2302 object exists" via
<info>, and updates are narrowed to what <info> shows as not yet applied (``reconcile``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from adapters.epp.types import EppResult
from gateway.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Outcome(enum.Enum):
    SUCCESS = "success"
    PENDING = "pending"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


PENDING_CODE: Final = 1001
RETRYABLE_CODES: Final = frozenset({2400, 2500, 2501, 2502})
CLOSING_CODES: Final = frozenset({2500, 2501, 2502})
"""RFC 5730: the server closes the connection after these."""
SESSION_LIMIT: Final = 2502
OBJECT_EXISTS: Final = 2302
OBJECT_MISSING: Final = 2303


def classify(code: int) -> Outcome:
    """Map one EPP result code to its outcome (see the module table)."""
    if code == PENDING_CODE:
        return Outcome.PENDING
    if 1000 <= code < 2000:
        return Outcome.SUCCESS
    if code in RETRYABLE_CODES:
        return Outcome.RETRYABLE
    return Outcome.PERMANENT


def raise_for_result(result: EppResult, op: str, *, object_id: str | None = None) -> None:
    """Return for SUCCESS/PENDING; raise the transient or permanent delivery error otherwise.

    The error carries the result code, clTRID and svTRID, never the registry's message text
    (registries echo submitted personal data in it).
    """
    outcome = classify(result.code)
    if outcome in (Outcome.SUCCESS, Outcome.PENDING):
        return
    extra: dict[str, Any] = {"epp_command": op, "cl_trid": result.cl_trid, "sv_trid": result.sv_trid}
    if object_id is not None:
        extra["object_id"] = object_id
    if outcome is Outcome.RETRYABLE:
        raise TransientDeliveryError(f"EPP {op} failed with result {result.code}", result_code=result.code, **extra)
    raise PermanentDeliveryError(f"EPP {op} refused with result {result.code}", result_code=result.code, **extra)


def transport_error(detail: str, op: str, cl_trid: str | None, *, written: bool = False) -> TransientDeliveryError:
    """A timeout, dropped connection or unreadable frame: the registry may or may not have acted.

    ``written`` says the command's frame had been handed to the connection: the registry may hold what it
    carried (``frame_written`` in the error's extra; see ``frame_may_have_arrived``)."""
    return TransientDeliveryError(detail, epp_command=op, cl_trid=cl_trid, frame_written=written)


def frame_may_have_arrived(exc: BaseException) -> bool:
    """Whether a failed command's frame may have reached the recipient (written, then no answer read)."""
    return isinstance(exc, DeliveryError) and bool(exc.extra.get("frame_written"))


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientDeliveryError)


async def with_retries(
    fn: Callable[[], Awaitable[_T]],
    *,
    attempts: int,
    max_total_s: float,
    initial_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[int, DeliveryError], None] | None = None,
) -> _T:
    """Run ``fn`` until it succeeds, retrying ``TransientDeliveryError`` only.

    Waits are full-jitter exponential (``wait_random_exponential``: uniform in
    ``[0, min(max_wait_s, initial_wait_s * 2**n)]``); gives up after ``attempts`` tries or once
    ``max_total_s`` have passed since the first, re-raising the last error.  ``on_retry(attempt,
    error)`` is called before each wait (for metrics and tests).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(exc, DeliveryError)
        log.warning(
            "EPP retry %d after %s (result %s, clTRID %s)",
            state.attempt_number,
            type(exc).__name__,
            exc.result_code,
            exc.extra.get("cl_trid"),
        )
        if on_retry is not None:
            on_retry(state.attempt_number, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientDeliveryError),
        wait=wait_random_exponential(multiplier=initial_wait_s, max=max_wait_s),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_total_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
