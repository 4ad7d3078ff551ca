"""Registrations and updates on pooled sessions, retried under a ``RetryPolicy``.

What is retried is decided in ONE place, ``adapters.epp.outcomes`` (transient errors only: 2400,
2500-2502, timeouts, dropped or garbled connections); a ``RetryPolicy`` only says how often and how
long (attempts, a time limit, full-jitter exponential backoff via tenacity in
``outcomes.with_retries``).  Each attempt takes a fresh session from the pool, and retrying cannot
duplicate anything: contact ids and clTRIDs are deterministic, creates reconcile "object exists"
via <info>, and updates after a failure send only what <info> does not show yet.

This module sits above both ``client`` and ``pool``, so neither imports the other's users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypedDict, TypeVar, Unpack

from adapters.epp.client import (
    EppClient,
    delete_contacts_with,
    register_with,
    update_contact_with,
    update_domain_with,
)
from adapters.epp.outcomes import with_retries
from adapters.epp.pool import EppSessionPool
from adapters.epp.steps import StepObserver, StepOutcome
from adapters.epp.types import (
    Command,
    ContactUpdate,
    DomainUpdate,
    Endpoint,
    RegistrationCommands,
    RegistrationOutcome,
    UpdateOutcome,
)
from gateway.errors import DeliveryError

__all__ = [
    "OnRetry",
    "RetryOptions",
    "RetryPolicy",
    "SessionPerCommand",
    "delete_contacts_pooled",
    "register_pooled",
    "run_pooled",
    "update_contact_pooled",
    "update_domain_pooled",
    "update_pooled",
]

_T = TypeVar("_T")

OnRetry = Callable[[int, DeliveryError], None]
"""Called with the attempt number and its error before each wait (metrics, tests)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a pooled operation is retried; *what* is retried is ``outcomes``' call.

    ``attempts`` tries at most, none started after ``max_total_s``; waits are uniform in
    ``[0, min(max_wait_s, initial_wait_s * 2**n)]`` so that many workers retrying one recovering
    registry spread out.
    """

    attempts: int = 3
    max_total_s: float = 60.0
    initial_wait_s: float = 0.1
    max_wait_s: float = 5.0
    on_retry: OnRetry | None = field(default=None, compare=False, repr=False)

    async def run(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """``fn()`` until it succeeds, a permanent error or the policy ends (last error re-raised)."""
        return await with_retries(
            fn,
            attempts=self.attempts,
            max_total_s=self.max_total_s,
            initial_wait_s=self.initial_wait_s,
            max_wait_s=self.max_wait_s,
            on_retry=self.on_retry,
        )


class RetryOptions(TypedDict, total=False):
    """``RetryPolicy``'s fields as keywords, for callers that tune one or two of them."""

    attempts: int
    max_total_s: float
    initial_wait_s: float
    max_wait_s: float
    on_retry: OnRetry | None


def _policy(policy: RetryPolicy | None, options: RetryOptions) -> RetryPolicy:
    if policy is None:
        return RetryPolicy(**options)
    if options:
        raise TypeError("pass a RetryPolicy or its fields as keywords, not both")
    return policy


async def run_pooled(
    pool: EppSessionPool,
    op: Callable[[EppClient, bool], Awaitable[_T]],
    *,
    policy: RetryPolicy | None = None,
    **options: Unpack[RetryOptions],
) -> _T:
    """Run ``op(client, after_failure)`` on a pooled session, retrying transient failures.

    Each attempt takes a fresh session from the pool (a broken one is dropped and replaced);
    ``after_failure`` tells the operation that an earlier attempt may have reached the registry,
    so it must reconcile before sending again.
    """
    tries = 0

    async def attempt() -> _T:
        nonlocal tries
        tries += 1
        async with pool.acquire() as client:
            return await op(client, tries > 1)

    return await _policy(policy, options).run(attempt)


class SessionPerCommand:
    """A ``CommandSender`` that borrows a pooled session for each command alone.

    Why: between a registration's commands the worker records each step durably (the entry and the row's
    progress, before the next command goes out).  Holding the session through that commit left it idle
    for the length of an fsync; borrowed per command, the session serves another row's command meanwhile,
    so a registry's few sessions stay busy while many rows are in flight.  EPP objects do not belong to a
    session, so the contact created on one session is there for the domain:create on another."""

    def __init__(self, pool: EppSessionPool) -> None:
        self._pool = pool

    @property
    def endpoint(self) -> Endpoint:
        return self._pool.endpoint

    async def send(self, command: Command[_T], cl_trid: str | None = None) -> _T:
        async with self._pool.acquire() as client:
            return await client.send(command, cl_trid)


async def register_pooled(
    pool: EppSessionPool,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    on_step: StepObserver | None = None,
    held: Mapping[str, str] | None = None,
    provisioned: dict[str, str] | None = None,
    policy: RetryPolicy | None = None,
    **options: Unpack[RetryOptions],
) -> RegistrationOutcome:
    """``register`` on a pooled session, with transient failures retried.

    Retrying cannot duplicate anything: contact ids and clTRIDs are deterministic, and a create
    answered "object exists" is reconciled via <info> (``reconciled=True`` for the domain).  ``held`` is
    read afresh by every attempt, so contacts an earlier attempt reported (and the caller recorded into
    it) are not sent again.
    """

    async def attempt() -> RegistrationOutcome:
        # each command on whichever session is free (a broken one is dropped when it is handed back)
        return await register_with(
            SessionPerCommand(pool), commands, cl_trid_prefix, on_step=on_step, held=held, provisioned=provisioned
        )

    return await _policy(policy, options).run(attempt)


async def delete_contacts_pooled(
    pool: EppSessionPool, ids: Iterable[str], cl_trid_prefix: str, *, on_step: StepObserver | None = None
) -> dict[str, StepOutcome]:
    """``delete_contacts_with`` on a pooled session (each outcome reported; refusals are not raised)."""
    async with pool.acquire() as client:
        return await delete_contacts_with(client, ids, cl_trid_prefix, on_step=on_step)


async def update_pooled(
    pool: EppSessionPool,
    cmd: DomainUpdate | ContactUpdate,
    cl_trid_prefix: str,
    *,
    policy: RetryPolicy | None = None,
    **options: Unpack[RetryOptions],
) -> UpdateOutcome:
    """A domain or contact update on a pooled session; a retry first narrows it via <info>.

    See ``update_domain_with`` / ``update_contact_with``: every attempt carries the same clTRID, and
    after a failure only what the registry does not show yet is sent again.
    """

    async def op(client: EppClient, after_failure: bool) -> UpdateOutcome:
        if isinstance(cmd, DomainUpdate):
            return await update_domain_with(client, cmd, cl_trid_prefix, after_failure=after_failure)
        return await update_contact_with(client, cmd, cl_trid_prefix, after_failure=after_failure)

    return await run_pooled(pool, op, policy=policy, **options)


update_domain_pooled = update_pooled
"""The name the pooled domain update has always had (``update_pooled`` takes either kind)."""
update_contact_pooled = update_pooled
"""The name the gateway imports for a pooled contact update."""
