"""The EPP client against the sandbox registry: real TLS with client certificates on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.epp.client import EppClient, find_domain, make_cl_trid, register
from adapters.epp.extensions import DkhmContactExt, EuridContactExt, IisContactExt, dkhm, eurid, iis, neulevel, norid
from adapters.epp.framing import read_frame, write_frame
from adapters.epp.sandbox import Faults, RegistrySandbox, SandboxThread
from adapters.epp.tls import DevPki, ensure_dev_pki
from adapters.epp.types import ContactInfoQuery, DomainInfoQuery, Endpoint, RegistrationCommands
from adapters.epp.xml import build_domain_info, build_login, parse_greeting, parse_response
from gateway.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

pytestmark = pytest.mark.integration

ORGNO = IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001")


def commands(domain: str = "exempel.se", contact_id: str = "RG1A2B", *ext: object) -> RegistrationCommands:
    return RegistrationCommands(
        contacts=(sample_contact(contact_id, *(ext or (ORGNO,))),),
        domain=sample_domain(domain, contact_id),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, validate_schemas=True, require_client_cert=True) as sb:
        yield sb
        # Every frame the client sent in any test must have passed the official schemas.
        assert sb.schema_errors == []


# ---- happy paths -------------------------------------------------------------------------------


async def test_register_contact_and_domain(sandbox: RegistrySandbox) -> None:
    outcome = await register(sandbox.endpoint(), commands(), "reg-0001")

    assert outcome.domain_result.code == 1000
    assert outcome.domain_result.cl_trid == "reg-0001-domain"
    assert outcome.contact_results["RG1A2B"].code == 1000
    assert outcome.objects == {
        "domain": "exempel.se",
        "contact:registrant": "RG1A2B",
        "contact:admin": "RG1A2B",
        "contact:tech": "RG1A2B",
    }
    assert outcome.reconciled is False
    domain = sandbox.domains["exempel.se"]
    assert (domain["cl_id"], domain["registrant"], domain["period"]) == ("registrar1", "RG1A2B", 2)
    assert domain["ns"] == ["ns1.example.net", "ns2.example.net"]
    contact = sandbox.contacts["RG1A2B"]
    assert contact["extensions"] == {iis.NS: {"orgno": "[SE]802405-0190", "vatno": "SE802405019001"}}
    assert contact["postal_info"][0]["name"] == "Anna <Svensson> & Co"
    assert contact["disclose"] == {"flag": "0", "elements": ["name", "org", "addr", "voice", "fax", "email"]}
    # greeting is not inbound; login, contact, domain, logout are.
    assert len(sandbox.frames) == 4
    assert sandbox.schema_errors == []


async def test_eurid_and_dkhm_extensions_pass_the_registry(sandbox: RegistrySandbox) -> None:
    eu = EuridContactExt(type="registrant", natural_person=True, lang="sv", country_of_citizenship="SE")
    await register(sandbox.endpoint(), commands("exempel.eu", "EU1", eu), "reg-eu")
    dk = DkhmContactExt(user_type="company", cvr="29403473", ean="5798000000001")
    await register(sandbox.endpoint(), commands("exempel.dk", "DK1", dk), "reg-dk")
    assert sandbox.contacts["EU1"]["extensions"][eurid.NS]["naturalPerson"] == "true"
    assert sandbox.contacts["DK1"]["extensions"][dkhm.NS] == {
        "userType": "company",
        "CVR": "29403473",
        "EAN": "5798000000001",
    }


async def test_session_methods(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        greeting = await client.hello()
        assert greeting.sv_id == "Registrant Gateway EPP sandbox"
        assert set(client.ext_uris) == {iis.NS, eurid.NS, dkhm.NS, norid.NS, neulevel.NS}
        result = await client.send(sample_contact("c-1", full=False), "t-contact")
        assert (result.code, result.cl_trid) == (1000, "t-contact")
        info = await client.send(ContactInfoQuery("c-1"), "t-cinfo")
        assert (info.id, info.cl_id) == ("c-1", "registrar1")
        await client.send(dataclasses.replace(sample_domain("a.se", "c-1"), nameservers=()), "t-dom")
        domain = await client.send(DomainInfoQuery("a.se"), "t-dinfo")
        assert (domain.name, domain.cl_id, domain.registrant) == ("a.se", "registrar1", "c-1")
        assert domain.roid and domain.roid.endswith("-SBX")
    assert await find_domain(sandbox.endpoint(), "a.se", "t-find1") is not None
    assert await find_domain(sandbox.endpoint(), "absent.se", "t-find2") is None


# ---- idempotency and reconciliation ----------------------------------------------------------------


async def test_second_attempt_reconciles_via_info(sandbox: RegistrySandbox) -> None:
    first = await register(sandbox.endpoint(), commands(), "reg-0002")
    again = await register(sandbox.endpoint(), commands(), "reg-0002")
    assert first.reconciled is False
    assert again.reconciled is True
    assert again.domain_result.code == 1000
    assert again.domain_result.cl_trid == "reg-0002-domain-info"
    assert again.contact_results["RG1A2B"].cl_trid == "reg-0002-contact-info-RG1A2B"
    assert len(sandbox.domains) == 1 and len(sandbox.contacts) == 1


async def test_crash_after_registry_committed_is_recovered(sandbox: RegistrySandbox) -> None:
    sandbox.faults.stall_seconds("domain:create", 2.0)
    with pytest.raises(TransientDeliveryError) as excinfo:
        await register(sandbox.endpoint(timeout_s=0.4), commands(), "reg-0003")
    assert excinfo.value.result_code is None
    assert "exempel.se" in sandbox.domains  # applied before the stall
    outcome = await register(sandbox.endpoint(), commands(), "reg-0003")
    assert outcome.reconciled is True


async def test_domain_of_another_registrar_is_permanent(sandbox: RegistrySandbox) -> None:
    sandbox.seed_domain("exempel.se", cl_id="otherreg", registrant="XYZ1")
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0004")
    assert excinfo.value.result_code == 2302


async def test_same_sponsor_but_other_registrant_is_permanent(sandbox: RegistrySandbox) -> None:
    sandbox.seed_contact("OTHER1", cl_id="registrar1")
    sandbox.seed_domain("exempel.se", cl_id="registrar1", registrant="OTHER1")
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0005")
    assert excinfo.value.result_code == 2302


async def test_contact_id_of_another_registrar_is_permanent(sandbox: RegistrySandbox) -> None:
    sandbox.seed_contact("RG1A2B", cl_id="otherreg")
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0006")
    assert excinfo.value.result_code == 2302
    assert "exempel.se" not in sandbox.domains


# ---- error mapping -------------------------------------------------------------------------------


async def test_wrong_password_is_permanent(sandbox: RegistrySandbox) -> None:
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(password="wrong-password"), commands(), "reg-0007")
    assert excinfo.value.result_code == 2200
    sandbox.faults.reject_login = True
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await find_domain(sandbox.endpoint(), "exempel.se", "reg-0008")
    assert excinfo.value.result_code == 2200


async def test_fail_next_2400_is_transient_then_retry_succeeds(sandbox: RegistrySandbox) -> None:
    sandbox.faults.fail_next("domain:create", 2400)
    with pytest.raises(TransientDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0009")
    assert excinfo.value.result_code == 2400
    assert excinfo.value.extra["cl_trid"] == "reg-0009-domain"
    assert "exempel.se" not in sandbox.domains
    outcome = await register(sandbox.endpoint(), commands(), "reg-0009")
    assert (outcome.domain_result.code, outcome.reconciled) == (1000, False)


@pytest.mark.parametrize(("code", "kind"), [(2502, TransientDeliveryError), (2306, PermanentDeliveryError)])
async def test_result_code_classes(sandbox: RegistrySandbox, code: int, kind: type[DeliveryError]) -> None:
    sandbox.faults.fail_next("contact:create", code)
    with pytest.raises(kind) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0010")
    assert excinfo.value.result_code == code


async def test_missing_contact_reference_is_permanent(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(sample_domain("orphan.se", "NOSUCH"), "t-orphan")
    assert excinfo.value.result_code == 2303


async def test_dropped_connection_is_transient(sandbox: RegistrySandbox) -> None:
    sandbox.faults.drop_connection_on("domain:create")
    with pytest.raises(TransientDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0011")
    assert excinfo.value.result_code is None
    assert "exempel.se" not in sandbox.domains
    outcome = await register(sandbox.endpoint(), commands(), "reg-0011")
    assert outcome.domain_result.code == 1000


async def test_nothing_listening_is_transient(sandbox: RegistrySandbox) -> None:
    endpoint = sandbox.endpoint()
    await sandbox.stop()
    with pytest.raises(TransientDeliveryError):
        await find_domain(endpoint, "exempel.se", "reg-0012")


async def test_unpinned_server_certificate_is_permanent(sandbox: RegistrySandbox, tmp_path: Path) -> None:
    other = ensure_dev_pki(tmp_path / "other")
    endpoint = dataclasses.replace(sandbox.endpoint(), ca_file=str(other.ca_cert))
    with pytest.raises(PermanentDeliveryError):
        await find_domain(endpoint, "exempel.se", "reg-0013")


async def test_client_without_certificate_is_refused(sandbox: RegistrySandbox) -> None:
    with pytest.raises(DeliveryError):
        await find_domain(sandbox.endpoint(client_cert=False), "exempel.se", "reg-0014")
    assert sandbox.frames == []


async def test_errors_carry_no_personal_data(sandbox: RegistrySandbox) -> None:
    sandbox.faults.fail_next("contact:create", 2306)
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(), commands(), "reg-0015")
    text = str(excinfo.value) + repr(excinfo.value.problem())
    for personal in ("Anna", "Svensson", "anna@example.se", "Storgatan", "+46.8", "802405"):
        assert personal not in text


# ---- schema enforcement ----------------------------------------------------------------------------


async def test_invalid_frames_get_2001(sandbox: RegistrySandbox) -> None:
    # Through the client: an orgno without its [CC] prefix is what .se would refuse.
    bad = commands("bad.se", "BAD1", IisContactExt(orgno="802405-0190"))
    with pytest.raises(PermanentDeliveryError) as excinfo:
        await register(sandbox.endpoint(), bad, "reg-0016")
    assert excinfo.value.result_code == 2001
    assert any("orgno" in e for e in sandbox.schema_errors)
    assert "BAD1" not in sandbox.contacts

    # Raw: a frame that is not even well-formed, on a logged-in session.
    endpoint = sandbox.endpoint()
    ctx = ssl.create_default_context(cafile=endpoint.ca_file)
    ctx.load_cert_chain(str(endpoint.cert_file), endpoint.key_file)
    reader, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, ssl=ctx, server_hostname="localhost"
    )
    try:
        greeting = parse_greeting(await read_frame(reader))
        await write_frame(writer, build_login(endpoint.client_id, endpoint.password, greeting, "raw-login"))
        assert parse_response(await read_frame(reader)).result.code == 1000
        await write_frame(writer, b"<epp><command>")
        assert parse_response(await read_frame(reader)).result.code == 2001
        await write_frame(
            writer,
            b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command><check>'
            b'<host:check xmlns:host="urn:ietf:params:xml:ns:host-1.0"><host:name>ns1.a.se</host:name>'
            b"</host:check></check></command></epp>",
        )
        assert parse_response(await read_frame(reader)).result.code == 2101  # not implemented here
    finally:
        writer.close()
        await writer.wait_closed()
    assert len(sandbox.schema_errors) >= 2
    sandbox.schema_errors.clear()


async def test_commands_before_login_are_refused(sandbox: RegistrySandbox) -> None:
    endpoint = sandbox.endpoint()
    ctx = ssl.create_default_context(cafile=endpoint.ca_file)
    ctx.load_cert_chain(str(endpoint.cert_file), endpoint.key_file)
    reader, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, ssl=ctx, server_hostname="localhost"
    )
    try:
        await read_frame(reader)
        await write_frame(writer, build_domain_info("exempel.se", "raw-info"))
        response = parse_response(await read_frame(reader))
        assert (response.result.code, response.result.cl_trid) == (2002, "raw-info")
    finally:
        writer.close()
        await writer.wait_closed()


# ---- helpers ----------------------------------------------------------------------------------------


def test_cl_trids_are_deterministic_and_bounded() -> None:
    assert make_cl_trid("reg-1", "domain") == "reg-1-domain"
    long_prefix = "registration-" + "x" * 80
    trid = make_cl_trid(long_prefix, "contact-info-ABCDEFGHIJKLMNOP")
    assert len(trid) == 64 and trid.endswith("-contact-info-ABCDEFGHIJKLMNOP")
    assert trid == make_cl_trid(long_prefix, "contact-info-ABCDEFGHIJKLMNOP")
    assert trid != make_cl_trid(long_prefix + "y", "contact-info-ABCDEFGHIJKLMNOP")


def test_faults_are_counted() -> None:
    faults = Faults()
    faults.fail_next("domain:create", 2400, times=2)
    assert [faults.take_failure("domain:create") for _ in range(3)] == [2400, 2400, None]
    faults.drop_connection_on("login", times=None)
    assert all(faults.take_drop("login") for _ in range(5))
    faults.clear()
    assert not faults.take_drop("login")


def test_sandbox_thread_serves_sync_callers(pki: DevPki) -> None:
    with SandboxThread(pki=pki) as thread:
        outcome = asyncio.run(register(thread.endpoint(), commands(), "reg-thread"))
        assert outcome.domain_result.code == 1000
        thread.faults.fail_next("domain:info", 2400)
        with pytest.raises(TransientDeliveryError):
            asyncio.run(find_domain(thread.endpoint(), "exempel.se", "reg-thread-2"))
        assert thread.sandbox.schema_errors == []
        assert "exempel.se" in thread.sandbox.domains


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "GATEWAY_SANDBOX_PASSWORD": "cli-password"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.epp.sandbox", "--port", "0", "--pki-dir", str(tmp_path / "pki")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("EPP sandbox listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        pki = ensure_dev_pki(tmp_path / "pki")
        endpoint = Endpoint(
            host="127.0.0.1",
            port=port,
            client_id="registrar1",
            password="cli-password",
            ca_file=str(pki.ca_cert),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
            server_name="localhost",
        )
        assert asyncio.run(find_domain(endpoint, "exempel.se", "cli-find")) is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
