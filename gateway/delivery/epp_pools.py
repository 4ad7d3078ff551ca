"""One bounded EPP session pool per registry endpoint, shared by every delivery to it.

Registrars keep a few long-lived sessions per registry (registries cap them) instead of a TLS
handshake and login per registration; the pool also applies the registry's rate limit.

With ``metrics``, every EPP command a pooled session sends is timed into
``gateway_epp_command_duration_seconds`` (labels: registry, command such as ``contact:create``, result
code or ``error`` when no answer came).  The registry label is ``registry_label(endpoint)``, by default
the endpoint's host; a pool is per endpoint, so recipients sharing an endpoint share its series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager

from adapters.epp.client import CommandObserver, EppClient
from adapters.epp.pool import EppSessionPool
from adapters.epp.pooled import delete_contacts_pooled, register_pooled, update_contact_pooled
from adapters.epp.steps import StepObserver, StepOutcome
from adapters.epp.types import ContactUpdate, Endpoint, RegistrationCommands, RegistrationOutcome, UpdateOutcome
from gateway.logs import DeliveryMetrics


class EppPools:
    def __init__(
        self, *, max_sessions: int, idle_keepalive_s: float | None, rate_limit_per_s: float | None, attempts: int,
        metrics: DeliveryMetrics | None = None, registry_label: Callable[[Endpoint], str] | None = None,
    ) -> None:
        self._pools: dict[tuple[str, int, str], EppSessionPool] = {}
        #: per endpoint, the registrar's own contacts already ensured there (our id -> the registry's)
        self._provisioned: dict[tuple[str, int, str], dict[str, str]] = {}
        self.max_sessions = max_sessions
        self.idle_keepalive_s = idle_keepalive_s
        self.rate_limit_per_s = rate_limit_per_s
        self.attempts = attempts
        self.metrics = metrics
        self.registry_label = registry_label or (lambda endpoint: endpoint.host)

    def _observer(self, endpoint: Endpoint) -> CommandObserver | None:
        if self.metrics is None:
            return None
        histogram, registry = self.metrics.epp_seconds, self.registry_label(endpoint)

        def observe(command: str, code: int | None, seconds: float) -> None:
            histogram.labels(registry, command, "error" if code is None else str(code)).observe(seconds)

        return observe

    def pool(self, endpoint: Endpoint) -> EppSessionPool:
        key = (endpoint.host, endpoint.port, endpoint.client_id)
        if key not in self._pools:
            self._pools[key] = EppSessionPool(
                endpoint, max_sessions=self.max_sessions, idle_keepalive_s=self.idle_keepalive_s,
                rate_limit_per_s=self.rate_limit_per_s, on_command=self._observer(endpoint),
            )
        return self._pools[key]

    async def register(
        self, endpoint: Endpoint, commands: RegistrationCommands, cl_trid_prefix: str, *,
        on_step: StepObserver | None = None, held: Mapping[str, str] | None = None,
    ) -> RegistrationOutcome:
        provisioned = self._provisioned.setdefault((endpoint.host, endpoint.port, endpoint.client_id), {})
        return await register_pooled(self.pool(endpoint), commands, cl_trid_prefix, on_step=on_step, held=held,
                                     provisioned=provisioned, attempts=self.attempts)

    async def delete_contacts(
        self, endpoint: Endpoint, ids: Iterable[str], cl_trid_prefix: str, *, on_step: StepObserver | None = None,
    ) -> dict[str, StepOutcome]:
        return await delete_contacts_pooled(self.pool(endpoint), ids, cl_trid_prefix, on_step=on_step)

    async def update_contact(self, endpoint: Endpoint, cmd: ContactUpdate, cl_trid_prefix: str) -> UpdateOutcome:
        return await update_contact_pooled(self.pool(endpoint), cmd, cl_trid_prefix, attempts=self.attempts)

    def session(self, endpoint: Endpoint) -> AbstractAsyncContextManager[EppClient]:
        """A pooled, logged-in session to ``endpoint`` for one operation (``async with``)."""
        return self.pool(endpoint).acquire()

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
