"""The session pool and the retry policy against the TLS sandbox: every failure mode, and proof
that no retry duplicates an object."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from collections.abc import AsyncIterator

import pytest

from adapters.epp.client import EppClient
from adapters.epp.extensions import IisContactExt
from adapters.epp.pool import EppSessionPool
from adapters.epp.pooled import register_pooled, run_pooled, update_contact_pooled, update_domain_pooled
from adapters.epp.sandbox import RegistrySandbox
from adapters.epp.tls import DevPki
from adapters.epp.types import (
    ContactUpdate,
    DomainInfo,
    DomainInfoQuery,
    DomainRenew,
    DomainUpdate,
    RegistrationCommands,
)
from gateway.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

pytestmark = pytest.mark.integration

ORGNO = IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001")
WAIT = 0.02  # first retry wait in tests; production uses the default 0.1 s


def commands(domain: str = "exempel.se", contact_id: str = "RG1A2B") -> RegistrationCommands:
    return RegistrationCommands(contacts=(sample_contact(contact_id, ORGNO),), domain=sample_domain(domain, contact_id))


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, validate_schemas=True, require_client_cert=True, max_sessions=2) as sb:
        yield sb
        assert sb.schema_errors == []


class Retries:
    """Records what ``with_retries`` retried (``on_retry`` hook)."""

    def __init__(self) -> None:
        self.seen: list[DeliveryError] = []

    def __call__(self, attempt: int, error: DeliveryError) -> None:
        self.seen.append(error)


async def _seed_domain(pool: EppSessionPool, name: str = "exempel.se") -> None:
    outcome = await register_pooled(pool, commands(name), f"seed-{name}")
    assert outcome.domain_result.code == 1000


# ---- the pool itself ------------------------------------------------------------------------------


async def test_pool_reuses_one_session_and_logs_out_on_close(sandbox: RegistrySandbox) -> None:
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        for i in range(4):
            async with pool.acquire() as client:
                assert client.usable
                await client.hello()
        assert (pool.stats.logins, pool.open_sessions, pool.idle_sessions) == (1, 1, 1)
        assert sandbox.active_sessions == 1
    assert pool.closed and pool.stats.logouts == 1
    assert [c.code for c in sandbox.commands_of("logout")] == [1500]
    assert sandbox.connections_opened == 1
    await asyncio.sleep(0.05)
    assert sandbox.active_sessions == 0
    with pytest.raises(TransientDeliveryError):
        async with pool.acquire():
            pass


async def test_concurrent_registrations_stay_within_max_sessions(sandbox: RegistrySandbox) -> None:
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        outcomes = await asyncio.gather(
            *(register_pooled(pool, commands(f"d{i}.se", f"RGC{i}"), f"reg-{i}") for i in range(6))
        )
        assert pool.stats.logins == 2
    assert all(o.domain_result.code == 1000 and not o.reconciled for o in outcomes)
    assert sandbox.peak_sessions == 2 and sandbox.session_limit_refusals == 0
    assert len(sandbox.domains) == 6


async def test_session_limit_2502_is_retried_and_the_pool_learns_the_limit(sandbox: RegistrySandbox) -> None:
    retries = Retries()
    # The pool thinks it may open 3 sessions; the registry allows 2, so one login gets 2502.
    pool = EppSessionPool(sandbox.endpoint(), max_sessions=3, idle_keepalive_s=None, limit_recovery_s=0.3)
    async with pool:
        outcomes = await asyncio.gather(
            *(
                register_pooled(
                    pool, commands(f"d{i}.se", f"RGC{i}"), f"reg-{i}", on_retry=retries, initial_wait_s=WAIT
                )
                for i in range(3)
            )
        )
        assert pool.limit == 2 and pool.stats.session_limit_hits == 1
        await asyncio.sleep(0.3)
        async with pool.acquire():  # after limit_recovery_s the pool tries one more session again
            assert pool.limit == 3
    assert [type(e) for e in retries.seen] == [TransientDeliveryError]
    assert retries.seen[0].result_code == 2502
    assert sandbox.session_limit_refusals == 1 and sandbox.peak_sessions == 2
    assert [c.code for c in sandbox.commands_of("login")].count(2502) == 1
    assert all(o.domain_result.code == 1000 for o in outcomes) and len(sandbox.domains) == 3


async def test_keepalive_sends_hello_on_idle_sessions(sandbox: RegistrySandbox) -> None:
    async with EppSessionPool(sandbox.endpoint(), max_sessions=1, idle_keepalive_s=0.15) as pool:
        async with pool.acquire() as client:
            assert client.usable  # nothing sent: the session only has to be logged in
        await asyncio.sleep(0.55)
        hellos = sandbox.commands_of("hello")
        assert len(hellos) >= 2 and pool.stats.keepalives == len(hellos)
        assert {h.connection for h in hellos} == {sandbox.commands_of("login")[0].connection}
        gaps = [b.at - a.at for a, b in itertools.pairwise(hellos)]
        assert all(gap >= 0.1 for gap in gaps)  # only idle sessions are pinged, once per interval
        async with pool.acquire() as client:  # still the same, still alive
            assert (await client.hello()).sv_id
    assert sandbox.connections_opened == 1


async def test_reconnects_after_the_registry_drops_idle_sessions(sandbox: RegistrySandbox) -> None:
    async with EppSessionPool(sandbox.endpoint(), max_sessions=1, idle_keepalive_s=None) as pool:
        await _seed_domain(pool)
        assert sandbox.disconnect_all() == 1
        await asyncio.sleep(0.05)
        outcome = await register_pooled(pool, commands("second.se", "RGC2"), "reg-second", initial_wait_s=WAIT)
        assert outcome.domain_result.code == 1000
        assert pool.stats.logins == 2 and pool.stats.discarded == 1
    assert sandbox.connections_opened == 2


async def test_rate_limit_spaces_commands(sandbox: RegistrySandbox) -> None:
    rate = 20.0
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as seeding:
        await _seed_domain(seeding)
    start = len(sandbox.commands)

    async def info(client: EppClient, _retry: bool) -> DomainInfo:
        return await client.send(DomainInfoQuery("exempel.se"), "rate-info")

    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None, rate_limit_per_s=rate) as pool:
        await asyncio.gather(*(run_pooled(pool, info) for _ in range(8)))
    seen = sorted(c.at for c in sandbox.commands[start:])  # 2 logins + 8 infos + 2 logouts, all limited
    assert len(seen) == 12
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 0.5 / rate, gaps  # loosely: loopback jitter may shift single frames
    assert seen[-1] - seen[0] >= 0.8 * (len(seen) - 1) / rate


# ---- failure modes and retries --------------------------------------------------------------------


async def test_slow_response_times_out_then_retry_reconciles(sandbox: RegistrySandbox) -> None:
    sandbox.faults.stall_seconds("domain:create", 0.6)  # applied at once, answered too late
    retries = Retries()
    endpoint = sandbox.endpoint(timeout_s=0.25)
    async with EppSessionPool(endpoint, max_sessions=2, idle_keepalive_s=None) as pool:
        outcome = await register_pooled(pool, commands(), "reg-slow", on_retry=retries, initial_wait_s=WAIT)
    assert len(retries.seen) == 1
    assert isinstance(retries.seen[0], TransientDeliveryError) and retries.seen[0].result_code is None
    assert outcome.reconciled is True and outcome.domain_result.code == 1000
    creates = sandbox.commands_of("domain:create")
    assert [c.code for c in creates] == [1000, 2302]  # one object made; the retry found it
    assert len({c.cl_trid for c in creates}) == 1  # the retry carried the same clTRID
    assert list(sandbox.domains) == ["exempel.se"] and list(sandbox.contacts) == ["RG1A2B"]


async def test_2400_then_success_creates_exactly_one_object(sandbox: RegistrySandbox) -> None:
    sandbox.faults.fail_next("domain:create", 2400)
    retries = Retries()
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        outcome = await register_pooled(pool, commands(), "reg-2400", on_retry=retries, initial_wait_s=WAIT)
        assert pool.stats.logins == 1  # a 2400 does not poison the session
    assert [e.result_code for e in retries.seen] == [2400]
    assert (outcome.domain_result.code, outcome.reconciled) == (1000, False)
    assert [c.code for c in sandbox.commands_of("domain:create")] == [2400, 1000]
    assert len(sandbox.domains) == 1 and len(sandbox.contacts) == 1
    assert [c.code for c in sandbox.commands_of("contact:create")] == [1000, 2302]  # reused, not duplicated


async def test_update_retried_after_2400_applies_once(sandbox: RegistrySandbox) -> None:
    update = DomainUpdate(name="exempel.se", add_ns=("ns3.example.net",), add_status=("clientHold",))
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        await _seed_domain(pool)
        sandbox.faults.fail_next("domain:update", 2400)
        outcome = await update_domain_pooled(pool, update, "upd-2400", initial_wait_s=WAIT)
    assert (outcome.result.code, outcome.reconciled) == (1000, False)
    assert sandbox.domains["exempel.se"]["ns"] == ["ns1.example.net", "ns2.example.net", "ns3.example.net"]
    assert sandbox.domains["exempel.se"]["status"] == ["clientHold"]
    assert [c.code for c in sandbox.commands_of("domain:update")] == [2400, 1000]


async def test_dropped_connection_mid_command_reconciles_without_duplicate(sandbox: RegistrySandbox) -> None:
    sandbox.faults.drop_after_applying("domain:create")  # committed, then the connection died
    retries = Retries()
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        outcome = await register_pooled(pool, commands(), "reg-drop", on_retry=retries, initial_wait_s=WAIT)
        assert pool.stats.logins == 2  # the dropped session was replaced
    assert isinstance(retries.seen[0], TransientDeliveryError)
    assert outcome.reconciled is True
    creates = sandbox.commands_of("domain:create")
    assert [(c.code, c.dropped) for c in creates] == [(1000, True), (2302, False)]
    assert len(sandbox.domains) == 1


async def test_dropped_update_is_reconciled_via_info_not_resent(sandbox: RegistrySandbox) -> None:
    update = DomainUpdate(name="exempel.se", add_ns=("ns3.example.net",), rem_ns=("ns1.example.net",))
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        await _seed_domain(pool)
        sandbox.faults.drop_after_applying("domain:update")
        outcome = await update_domain_pooled(pool, update, "upd-drop", initial_wait_s=WAIT)
    assert outcome.reconciled is True and outcome.result.code == 1000
    assert len(sandbox.commands_of("domain:update")) == 1  # the retry saw it applied and sent nothing
    assert sandbox.domains["exempel.se"]["ns"] == ["ns2.example.net", "ns3.example.net"]


async def test_dropped_contact_update_is_reconciled(sandbox: RegistrySandbox) -> None:
    update = ContactUpdate(id="RG1A2B", add_status=("clientDeleteProhibited",))
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        await _seed_domain(pool)
        sandbox.faults.drop_after_applying("contact:update")
        outcome = await update_contact_pooled(pool, update, "cupd-drop", initial_wait_s=WAIT)
        again = await update_contact_pooled(pool, dataclasses.replace(update, email="new@example.se"), "cupd-2")
    assert outcome.reconciled is True and len(sandbox.commands_of("contact:update")) == 2
    assert again.reconciled is False and again.result.code == 1000
    assert sandbox.contacts["RG1A2B"]["status"] == ["clientDeleteProhibited"]


async def test_rejected_login_is_permanent_and_never_retried(sandbox: RegistrySandbox) -> None:
    sandbox.faults.reject_login = True
    retries = Retries()
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await register_pooled(pool, commands(), "reg-login", attempts=5, on_retry=retries, initial_wait_s=WAIT)
        assert pool.open_sessions == 0
    assert excinfo.value.result_code == 2200
    assert retries.seen == [] and sandbox.login_attempts == 1


async def test_permanent_results_are_not_retried(sandbox: RegistrySandbox) -> None:
    retries = Retries()
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        await _seed_domain(pool)
        wrong_date = DomainRenew(name="exempel.se", cur_exp_date=dt.date(2001, 1, 1))

        async def renew(client: EppClient, _retry: bool) -> object:
            return await client.send(wrong_date)

        with pytest.raises(PermanentDeliveryError) as excinfo:
            await run_pooled(pool, renew, attempts=4, on_retry=retries, initial_wait_s=WAIT)
        assert excinfo.value.result_code == 2306
        assert len(sandbox.commands_of("domain:renew")) == 1

        sandbox.faults.fail_next("domain:update", 2005)
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await update_domain_pooled(
                pool, DomainUpdate(name="exempel.se", add_status=("clientHold",)), "upd-2005", attempts=4,
                on_retry=retries, initial_wait_s=WAIT,
            )  # fmt: skip
        assert excinfo.value.result_code == 2005
        assert len(sandbox.commands_of("domain:update")) == 1
    assert retries.seen == []


async def test_retries_stop_after_attempts(sandbox: RegistrySandbox) -> None:
    sandbox.faults.fail_next("domain:create", 2400, times=None)
    retries = Retries()
    async with EppSessionPool(sandbox.endpoint(), max_sessions=2, idle_keepalive_s=None) as pool:
        with pytest.raises(TransientDeliveryError) as excinfo:
            await register_pooled(pool, commands(), "reg-stop", attempts=3, on_retry=retries, initial_wait_s=WAIT)
    assert excinfo.value.result_code == 2400
    assert len(retries.seen) == 2 and len(sandbox.commands_of("domain:create")) == 3
    assert sandbox.domains == {}
