"""The transport seam: the client over a ``RecordingTransport`` (no server), ``send`` and the
command bindings, and the pooled retries under a ``RetryPolicy`` on recorded sessions."""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.epp.client import EppClient, command_cl_trid, make_cl_trid, register_with
from adapters.epp.commands import binding_for
from adapters.epp.extensions import EuridContactExt, IisContactExt, iis
from adapters.epp.pool import EppSessionPool
from adapters.epp.pooled import RetryPolicy, register_pooled, run_pooled
from adapters.epp.transport import (
    RECORDING_ENDPOINT,
    RECORDING_GREETING,
    Answer,
    RecordingTransport,
    TlsTransport,
    answer,
    echo,
)
from adapters.epp.types import (
    Command,
    DomainInfo,
    DomainInfoQuery,
    DomainUpdate,
    EppResult,
    PollRequest,
    RegistrationCommands,
    RegistrationOutcome,
)
from adapters.epp.xml import (
    NS_CONTACT,
    NS_DOMAIN,
    NS_HOST,
    build_contact_create,
    build_domain_create,
    build_domain_info,
    build_greeting,
    build_hello,
    build_login,
    build_logout,
    build_response,
    parse_greeting,
)
from gateway.errors import DeliveryError, PermanentDeliveryError, RegistryUnreachable, TransientDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

ORGNO = IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001")


def commands() -> RegistrationCommands:
    return RegistrationCommands(contacts=(sample_contact("RG1A2B", ORGNO),), domain=sample_domain("exempel.se"))


def domain_inf_data(name: str, cl_id: str, registrant: str) -> etree._Element:
    return etree.fromstring(
        f'<domain:infData xmlns:domain="{NS_DOMAIN}"><domain:name>{name}</domain:name><domain:roid>D1-REC</domain:roid>'
        f"<domain:clID>{cl_id}</domain:clID><domain:registrant>{registrant}</domain:registrant></domain:infData>"
    )


# ---- the exact bytes, without a server --------------------------------------------------------------


async def test_register_writes_exactly_the_frames_the_builders_make() -> None:
    transport = RecordingTransport()
    outcome = await register_over(transport, "reg-1")
    greeting = parse_greeting(RECORDING_GREETING)
    cmds = commands()
    assert transport.written == [
        build_login(RECORDING_ENDPOINT.client_id, RECORDING_ENDPOINT.password, greeting, "reg-1-login"),
        build_contact_create(cmds.contacts[0], "reg-1-contact-RG1A2B"),
        build_domain_create(cmds.domain, "reg-1-domain"),
        build_logout("reg-1-logout"),
    ]
    assert (outcome.domain_result.code, outcome.domain_result.cl_trid) == (1000, "reg-1-domain")
    assert (transport.connects, transport.closes, transport.is_open) == (1, 1, False)


async def register_over(transport: RecordingTransport, prefix: str) -> RegistrationOutcome:
    async with EppClient(transport, trid_prefix=prefix) as client:
        return await register_with(client, commands(), prefix)


async def test_a_scripted_session_reconciles_an_existing_domain() -> None:
    script: list[Answer] = [
        build_response(1000, "ok", "p-login", "S1"),
        build_response(1000, "ok", "p-contact-RG1A2B", "S2"),
        build_response(2302, "exists", "p-domain", "S3"),
        build_response(
            1000, "ok", "p-domain-info", "S4", res_data=domain_inf_data("exempel.se", "registrar1", "RG1A2B")
        ),
        build_response(1500, "bye", "p-logout", "S5"),
    ]
    transport = RecordingTransport(script)
    outcome = await register_over(transport, "p")
    assert outcome.reconciled is True and outcome.domain_result.sv_trid == "S4"
    assert transport.written[3] == build_domain_info("exempel.se", "p-domain-info")


async def test_send_returns_what_the_command_is_bound_to() -> None:
    def respond(frame: bytes) -> Answer:
        if b'<domain:name hosts="all">a.se<' in frame:
            return answer(frame, res_data=domain_inf_data("a.se", "registrar1", "C1"))
        return echo()(frame)

    async with EppClient(RecordingTransport(respond)) as client:
        info = await client.send(DomainInfoQuery("a.se"), "t-info")
        assert isinstance(info, DomainInfo) and (info.name, info.registrant) == ("a.se", "C1")
        with pytest.raises(PermanentDeliveryError) as excinfo:  # an answer without infData
            await client.send(DomainInfoQuery("b.se"), "t-info-2")
        assert excinfo.value.extra["cl_trid"] == "t-info-2"


async def test_default_cl_trids_are_derived_or_numbered() -> None:
    transport = RecordingTransport()
    update = DomainUpdate(name="a.se", add_status=("clientHold",))
    async with EppClient(transport, trid_prefix="s") as client:
        first = await client.send(update)
        again = await client.send(update)
        polls = [await client.send(PollRequest()) for _ in range(2)]
    assert first.cl_trid == again.cl_trid == command_cl_trid("s", "domain-update", update)
    assert [p.result.cl_trid for p in polls] == [make_cl_trid("s", "poll-req-1"), make_cl_trid("s", "poll-req-2")]


async def test_an_extension_the_server_did_not_offer_is_refused_before_sending() -> None:
    greeting = build_greeting("thin", "2000-01-01T00:00:00.0Z", (NS_CONTACT, NS_DOMAIN, NS_HOST), (iis.NS,))
    transport = RecordingTransport(greeting=greeting)
    eu = EuridContactExt(type="registrant", natural_person=True)
    async with EppClient(transport) as client:
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(sample_contact("EU1", eu), "t-eu")
    assert excinfo.value.extra["epp_command"] == "contact:create"
    assert len(transport.written) == 2  # login and logout: the create never left


@pytest.mark.parametrize(
    "failure", [TimeoutError(), ConnectionResetError(), EOFError()], ids=["timeout", "reset", "eof"]
)
async def test_a_failed_read_is_transient_and_poisons_the_session(failure: BaseException) -> None:
    transport = RecordingTransport([build_response(1000, "ok", "f-login", "S1"), failure])
    client = EppClient(transport, trid_prefix="f")
    async with client:
        with pytest.raises(TransientDeliveryError) as excinfo:
            await client.send(sample_domain("x.se"), "f-domain")
        assert excinfo.value.result_code is None and excinfo.value.extra["cl_trid"] == "f-domain"
        assert not client.usable
    assert len(transport.written) == 2  # no logout on a broken session


async def test_an_answer_to_another_command_is_transient() -> None:
    transport = RecordingTransport(
        [build_response(1000, "ok", "m-login", "S1"), build_response(1000, "ok", "other", "S2")]
    )
    async with EppClient(transport, trid_prefix="m") as client:
        with pytest.raises(TransientDeliveryError):
            await client.send(sample_domain("x.se"), "m-domain")
        assert not client.usable


async def test_a_missing_scripted_answer_fails_the_test_loudly() -> None:
    with pytest.raises(LookupError):
        async with EppClient(RecordingTransport([])):
            pass


async def test_a_greeting_that_is_not_one_is_transient() -> None:
    # a server that answers something other than a greeting may be a proxy or a restarting registry:
    # tried again later (and counted by the endpoint's circuit breaker), never parked at once
    with pytest.raises(RegistryUnreachable):
        async with EppClient(RecordingTransport(greeting=build_hello())):
            pass


def test_every_command_type_has_a_binding() -> None:
    class Stray(Command[EppResult]):
        pass

    with pytest.raises(TypeError):
        binding_for(Stray())
    assert binding_for(DomainInfoQuery("a.se")).op_of(DomainInfoQuery("a.se")) == "domain:info"


def test_an_endpoint_or_a_transport() -> None:
    assert EppClient(RECORDING_ENDPOINT).endpoint is RECORDING_ENDPOINT  # TLS, connected on entry
    transport = TlsTransport(RECORDING_ENDPOINT)
    assert EppClient(transport).endpoint is RECORDING_ENDPOINT and not transport.is_open


def test_answer_echoes_the_cl_trid() -> None:
    assert b"<epp:clTRID>x-logout</epp:clTRID>" in answer(build_logout("x-logout"), 1500)
    assert echo()(build_hello()) == RECORDING_GREETING


# ---- pooled retries on recorded sessions ----------------------------------------------------------------


async def test_a_pooled_registration_is_retried_on_a_fresh_session() -> None:
    sessions: list[RecordingTransport] = []

    def new_session() -> RecordingTransport:
        transport = RecordingTransport(flaky if not sessions else echo())
        sessions.append(transport)
        return transport

    def flaky(frame: bytes) -> Answer:
        return TimeoutError() if b"<domain:create" in frame else echo()(frame)

    retried: list[DeliveryError] = []
    policy = RetryPolicy(attempts=3, initial_wait_s=0.0, on_retry=lambda _n, exc: retried.append(exc))
    async with EppSessionPool(RECORDING_ENDPOINT, idle_keepalive_s=None, transport=new_session) as pool:
        outcome = await register_pooled(pool, commands(), "pr", policy=policy)
    assert outcome.domain_result.code == 1000
    assert [type(e) for e in retried] == [RegistryUnreachable]
    first, second = sessions
    # The retry on the new session sends the same contact and domain creates, clTRIDs included.
    assert first.written[1:3] == second.written[1:3]
    assert first.closes == 1 and second.written[-1] == build_logout(make_cl_trid(f"{pool.trid_prefix}-s2", "logout"))


async def test_a_permanent_answer_is_not_retried() -> None:
    sessions: list[RecordingTransport] = []

    def new_session() -> RecordingTransport:
        sessions.append(RecordingTransport(lambda f: answer(f, 2306) if b"<domain:create" in f else echo()(f)))
        return sessions[-1]

    async def op(client: EppClient, _after_failure: bool) -> EppResult:
        return await client.send(sample_domain("k.se"), "k-domain")

    async with EppSessionPool(RECORDING_ENDPOINT, idle_keepalive_s=None, transport=new_session) as pool:
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await run_pooled(pool, op, attempts=4, initial_wait_s=0.0)
    assert excinfo.value.result_code == 2306
    assert len(sessions) == 1 and sum(b"<domain:create" in f for f in sessions[0].written) == 1


async def test_retry_policy_and_its_fields_as_keywords_are_exclusive() -> None:
    async def op(client: EppClient, _after_failure: bool) -> EppResult:
        return await client.send(sample_domain("k.se"), "k-domain")

    async with EppSessionPool(RECORDING_ENDPOINT, idle_keepalive_s=None, transport=RecordingTransport) as pool:
        assert (await run_pooled(pool, op, attempts=1)).code == 1000
        with pytest.raises(TypeError):
            await run_pooled(pool, op, policy=RetryPolicy(), attempts=2)
