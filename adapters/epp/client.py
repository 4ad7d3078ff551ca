"""One EPP session (RFC 5730) over a transport, and the registration flow built on it.

Error mapping is the contract with the retry layer: ``TransientDeliveryError`` means "the registry
may not have seen this, or may have seen it and crashed; try again", ``PermanentDeliveryError``
means "retrying cannot help".  A retry after an ambiguous failure is safe because contact ids and
clTRIDs are deterministic and ``register`` reconciles "object exists" answers via <info>.

Result codes are classified in ``adapters.epp.outcomes`` (the one place that decides what is
retried); the pooled, retried operations are in ``adapters.epp.pooled``.

Nothing raised or logged here quotes a frame or a registry message: registries echo submitted
values in their messages, and those values are personal data.  Only result codes, object ids
(contact ids, domain names) and transaction ids leave this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar, cast

from adapters._closing import AsyncClosing
from adapters.epp import extensions
from adapters.epp.commands import Binding, binding_for
from adapters.epp.outcomes import (
    CLOSING_CODES,
    OBJECT_EXISTS,
    OBJECT_MISSING,
    frame_may_have_arrived,
    raise_for_result,
    transport_error,
)
from adapters.epp.ratelimit import TokenBucket
from adapters.epp.reconcile import narrow_contact_update, narrow_domain_update
from adapters.epp.steps import StepObserver, StepOutcome
from adapters.epp.transport import TlsTransport, Transport
from adapters.epp.types import (
    Command,
    ContactCreate,
    ContactDelete,
    ContactInfoQuery,
    ContactRole,
    ContactUpdate,
    DomainCreate,
    DomainInfo,
    DomainInfoQuery,
    DomainUpdate,
    Endpoint,
    EppResult,
    Greeting,
    RegistrationCommands,
    RegistrationOutcome,
    UpdateOutcome,
)
from adapters.epp.xml import (
    MAX_CL_TRID,
    SUPPORTED_EXT_URIS,
    Response,
    build_hello,
    build_login,
    build_logout,
    parse_greeting,
    parse_response,
)
from gateway.errors import (
    DeliveryError,
    EppXmlError,
    FrameError,
    PermanentDeliveryError,
    RegistryUnreachable,
    TransientDeliveryError,
)

__all__ = [
    "CommandObserver",
    "EppClient",
    "adopt_with",
    "command_cl_trid",
    "delete_contacts_with",
    "find_domain",
    "make_cl_trid",
    "register",
    "register_with",
    "update_contact_with",
    "update_domain_with",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")
_U = TypeVar("_U", DomainUpdate, ContactUpdate)

CommandObserver = Callable[[str, int | None, float], None]
"""``on_command(command, result_code_or_None, seconds)``: see ``EppClient``."""

_OPAQUE_FIELDS: Final = frozenset({"postal_info", "voice", "fax", "email", "auth_pw", "disclose", "extensions"})
"""Command fields that hold personal data or secrets: they shape a clTRID only by being present."""


def make_cl_trid(prefix: str, step: str) -> str:
    """``f"{prefix}-{step}"``, shortened deterministically when longer than the 64 allowed characters.

    Determinism matters more than readability: the same registration retried must send the same
    clTRIDs so that registry-side logs line up with ours.  An over-long prefix is cut and suffixed
    with a hash of the whole prefix, so two long prefixes sharing a start still differ.
    """
    trid = f"{prefix}-{step}"
    if len(trid) <= MAX_CL_TRID:
        return trid
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:12]
    keep = MAX_CL_TRID - len(step) - len(digest) - 2
    if keep < 1:
        raise ValueError("clTRID step name too long")
    return f"{prefix[:keep]}~{digest}-{step}"


def command_cl_trid(prefix: str, verb: str, cmd: object) -> str:
    """A clTRID derived from the operation: the same command under the same prefix always gets it.

    A retried command therefore carries the clTRID of the first attempt, which makes it
    recognisable in the registry's logs and ours.  The digest covers the verb, the object and the
    non-personal members (name servers, statuses, contact ids); members that hold personal data or
    secrets contribute only whether they are set, so a clTRID cannot be used to confirm a guess.
    """
    if dataclasses.is_dataclass(cmd) and not isinstance(cmd, type):
        parts = []
        for f in dataclasses.fields(cmd):
            value = getattr(cmd, f.name)
            if f.name in _OPAQUE_FIELDS:
                value = bool(value) if value is not None else None
            parts.append(f"{f.name}={value!r}")
        shape = f"{type(cmd).__name__}({', '.join(parts)})"
    else:
        shape = repr(cmd)
    digest = hashlib.sha256(f"{verb}|{shape}".encode()).hexdigest()[:10]
    return make_cl_trid(prefix, f"{verb}-{digest}")


class CommandSender(Protocol):
    """What a registration needs of a session: send a command, know the endpoint (our client id).

    An ``EppClient`` is one; so is ``adapters.epp.pooled.SessionPerCommand``, which borrows a pooled
    session for each command alone, so no session sits idle while its caller records a step."""

    @property
    def endpoint(self) -> Endpoint: ...

    async def send(self, command: Command[_R], cl_trid: str | None = None) -> _R: ...


class EppClient(AsyncClosing):
    """One logged-in EPP session over a transport; ``async with EppClient(endpoint) as client``.

    ``EppClient(endpoint)`` speaks TLS to the endpoint (``TlsTransport``); ``EppClient(transport)``
    speaks over any ``Transport``, e.g. a ``RecordingTransport`` in tests.  Commands go through
    ``send``, which returns what the command's type is bound to (``adapters.epp.commands``).

    EPP is strictly request/response on one connection, so commands are serialised with a lock.
    Once a command fails mid-flight (timeout, dropped connection, garbled frame) the session is
    marked broken: whatever the registry sends next could be the late answer to that command.

    ``on_command``, if given, is called once per command exchanged with the registry (login, logout
    and everything sent through ``send``; not ``<hello>``, which is no command) with the command name
    (``"contact:create"``), its result code (``None`` when no readable answer came: timeout, lost
    connection, garbled or foreign response) and the seconds from writing the frame to reading the
    answer (waiting for the lock or a rate-limit token is not counted).  It is for metrics: it
    must not block, and an exception it raises is logged and otherwise ignored.
    """

    def __init__(
        self,
        transport: Transport | Endpoint,
        *,
        trid_prefix: str | None = None,
        rate_limiter: TokenBucket | None = None,
        on_command: CommandObserver | None = None,
    ) -> None:
        self._transport = transport if isinstance(transport, Transport) else TlsTransport(transport)
        self.endpoint = self._transport.endpoint
        self._trid_prefix = trid_prefix or f"rg-{secrets.token_hex(6)}"
        self._rate_limiter = rate_limiter
        self._on_command = on_command
        self._polls = 0
        self._greeting: Greeting | None = None
        self._connected = False
        self._logged_in = False
        self._broken = False
        self._lock = asyncio.Lock()

    # ---- session ------------------------------------------------------------------------------

    @property
    def greeting(self) -> Greeting:
        if self._greeting is None:
            raise RuntimeError("not connected")
        return self._greeting

    @property
    def usable(self) -> bool:
        """Logged in, connected and not poisoned by a failed command (a pool may hand it out).

        A connection the server has already closed (EOF seen while idle) is not usable either.
        """
        return self._logged_in and not self._broken and self._connected and self._transport.is_open

    @property
    def ext_uris(self) -> tuple[str, ...]:
        """Extensions offered by the server that we also support (what login announced)."""
        return tuple(uri for uri in self.greeting.ext_uris if uri in SUPPORTED_EXT_URIS)

    async def __aenter__(self) -> EppClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def aclose(self) -> None:
        """Log out if the session is still good, then close; what ``async with`` does on exit."""
        try:
            if self._logged_in and not self._broken:
                try:
                    await self.logout()
                except (TransientDeliveryError, PermanentDeliveryError):
                    # The work is done or already failed; a failed goodbye must not mask either.
                    log.warning("EPP logout failed for %s", self.endpoint.client_id)
        finally:
            await self.close()

    async def connect(self) -> None:
        """Open the transport, read the greeting and log in; each step under its own deadline.

        The connection (TCP and TLS handshake), the greeting and the login each get ``timeout_s``: a
        registry that accepts TCP and never speaks costs one deadline, not a worker.  Everything that
        says "the registry could not be reached" (refused, reset, timed out, TLS failure, a first frame
        that is no greeting) is ``RegistryUnreachable``, a transient error the scheduler's circuit
        breaker counts; a greeting that offers nothing we can use stays permanent.
        """
        ep = self.endpoint
        try:
            async with asyncio.timeout(ep.timeout_s):
                await self._transport.connect()
        except TimeoutError as exc:
            raise RegistryUnreachable("EPP connect timed out", epp_command="connect") from exc
        except (OSError, EOFError, FrameError) as exc:
            raise RegistryUnreachable("EPP connection failed", epp_command="connect") from exc
        self._connected = True
        try:
            async with asyncio.timeout(ep.timeout_s):
                data = await self._transport.read_frame()
        except TimeoutError as exc:
            raise RegistryUnreachable("EPP greeting timed out", epp_command="greeting") from exc
        except (OSError, EOFError, FrameError) as exc:
            raise RegistryUnreachable("EPP connection lost before the greeting", epp_command="greeting") from exc
        try:
            self._greeting = parse_greeting(data)
        except EppXmlError as exc:
            # Not XML, or XML but no greeting: a proxy, a load balancer or a half-started server answering
            # on the registry's port.  The registry itself may be fine again in a minute.
            raise RegistryUnreachable("EPP server sent no greeting", epp_command="greeting") from exc
        try:
            frame = build_login(ep.client_id, ep.password, self._greeting, self._trid("login"))
        except EppXmlError as exc:  # ProtocolMismatch: no object service or version we support
            raise PermanentDeliveryError("EPP server does not speak a protocol we support") from exc
        except ValueError as exc:  # e.g. a clTRID prefix that is not an XML token
            raise PermanentDeliveryError("EPP login cannot be expressed") from exc
        response = await self._command(frame, "login", self._trid("login"))
        raise_for_result(response.result, "login")
        self._logged_in = True

    async def close(self) -> None:
        """Close the transport without logging out (a broken session, or after ``logout``)."""
        self._connected = False
        self._logged_in = False
        await self._transport.close()

    async def logout(self) -> EppResult:
        trid = self._trid("logout")
        response = await self._command(build_logout(trid), "logout", trid)
        self._logged_in = False
        raise_for_result(response.result, "logout")
        return response.result

    async def hello(self) -> Greeting:
        """Send <hello>; the fresh greeting proves the session is alive without touching objects."""
        data, _ = await self._exchange(build_hello(), "hello", None)
        try:
            greeting = parse_greeting(data)
        except EppXmlError as exc:
            self._broken = True
            raise TransientDeliveryError("EPP hello got no greeting") from exc
        self._greeting = greeting
        return greeting

    # ---- commands -----------------------------------------------------------------------------

    async def send(self, command: Command[_R], cl_trid: str | None = None) -> _R:
        """Send ``command`` and return what its type is bound to (``EppResult``, ``DomainInfo`` ...).

        ``cl_trid`` defaults to one derived from the command under this session's prefix (see
        ``command_cl_trid``), so sending the same command again carries the same clTRID.  A result
        code that is not success raises as ``adapters.epp.outcomes`` decides.
        """
        binding = binding_for(command)
        op, object_id = binding.op_of(command), binding.object_id(command)
        trid = cl_trid or self._default_trid(binding, command, op)
        self._require_extensions(getattr(command, "extensions", ()), op, object_id, trid)
        frame = self._build(binding.build, command, trid, op=op)
        response = await self._command(frame, op, trid, object_id=object_id)
        raise_for_result(response.result, op, object_id=object_id)
        return binding.result(response, command, trid)

    # ---- plumbing -----------------------------------------------------------------------------

    def _trid(self, step: str) -> str:
        return make_cl_trid(self._trid_prefix, step)

    def _default_trid(self, binding: Binding[_T, Any], command: _T, op: str) -> str:
        step = op.replace(":", "-")
        if binding.numbered:
            self._polls += 1
            return self._trid(f"{step}-{self._polls}")
        return command_cl_trid(self._trid_prefix, step, command)

    def _require_extensions(
        self, exts: Iterable[extensions.AnyExtension], op: str, object_id: str | None, cl_trid: str
    ) -> None:
        needed = {extensions.namespace(ext) for ext in exts}
        missing = sorted(ns for ns in needed if ns is not None and ns not in self.ext_uris)
        if missing:
            raise PermanentDeliveryError(
                "EPP server does not offer an extension this command needs",
                epp_command=op,
                object_id=object_id,
                cl_trid=cl_trid,
                ext_uris=missing,
            )

    @staticmethod
    def _build(builder: Callable[[_T, str], bytes], value: _T, cl_trid: str, *, op: str) -> bytes:
        try:
            frame = builder(value, cl_trid)
        except ValueError as exc:
            # Our own data cannot be expressed in EPP (e.g. four street lines): retrying will not help.
            raise PermanentDeliveryError(
                "command cannot be expressed in EPP", epp_command=op, cl_trid=cl_trid
            ) from exc
        return frame

    async def _exchange(
        self, frame: bytes, op: str, cl_trid: str | None, *, observe: bool = False
    ) -> tuple[bytes, float]:
        """Write ``frame``, read the answer; returns it with the seconds the exchange took.

        With ``observe``, a failed exchange is reported to ``on_command`` (code ``None``) here; a
        successful one is reported by the caller once it has read the result code.  A timeout or a lost
        connection is ``RegistryUnreachable`` (what ``transport_error`` makes, as the subclass the circuit
        breaker counts); ``frame_written`` says whether the registry may hold the command.
        """
        if not self._connected or self._broken:
            raise TransientDeliveryError("EPP session is not usable", epp_command=op, cl_trid=cl_trid)
        async with self._lock:
            if self._rate_limiter is not None:
                # Waiting for a token is not the registry being slow: it stays outside the timeout.
                await self._rate_limiter.acquire()
            # Broken until proven otherwise: a cancellation mid-command also leaves the stream unusable.
            self._broken = True
            t0 = time.perf_counter()
            # once the frame is handed to the transport the registry may have it: a failure after that point
            # is "possibly delivered" to the log, never "not sent"
            written = False
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):
                    written = True
                    await self._transport.write_frame(frame)
                    data = await self._transport.read_frame()
            except TimeoutError as exc:
                log.warning("EPP %s timed out (clTRID %s)", op, cl_trid)
                if observe:
                    self._observe(op, None, time.perf_counter() - t0)
                raise RegistryUnreachable(
                    "EPP command timed out", epp_command=op, cl_trid=cl_trid, frame_written=written
                ) from exc
            except (OSError, EOFError, FrameError) as exc:
                log.warning("EPP %s: connection lost (clTRID %s)", op, cl_trid)
                if observe:
                    self._observe(op, None, time.perf_counter() - t0)
                raise RegistryUnreachable(
                    "EPP connection lost during command", epp_command=op, cl_trid=cl_trid, frame_written=written
                ) from exc
            self._broken = False
            return data, time.perf_counter() - t0

    def _observe(self, op: str, code: int | None, seconds: float) -> None:
        if self._on_command is None:
            return
        try:
            self._on_command(op, code, seconds)
        except Exception:  # a metrics hook must never change what a command does
            log.exception("EPP on_command hook failed for %s", op)

    async def _command(
        self, frame: bytes, op: str, cl_trid: str, *, object_id: str | None = None
    ) -> Response:
        data, seconds = await self._exchange(frame, op, cl_trid, observe=True)
        try:
            response = parse_response(data)
        except EppXmlError as exc:
            self._broken = True
            self._observe(op, None, seconds)
            raise transport_error("EPP response unreadable", op, cl_trid, written=True) from exc
        result = response.result
        if result.cl_trid is not None and result.cl_trid != cl_trid:
            self._broken = True
            self._observe(op, None, seconds)
            raise transport_error("EPP response answers another command", op, cl_trid, written=True)
        self._observe(op, result.code, seconds)
        if result.code in CLOSING_CODES:
            self._broken = True
        # a command that succeeded at DEBUG (a line per command cost ~4% of delivery); a refusal stays at INFO,
        # timeouts and lost connections are WARNING above
        log.log(
            logging.DEBUG if result.code < 2000 else logging.INFO,
            "EPP %s %s -> %d (clTRID %s, svTRID %s)",
            op,
            object_id or "-",
            result.code,
            cl_trid,
            result.sv_trid,
        )
        return response


def _same_id(a: str | None, b: str | None) -> bool:
    # Some registries normalise contact ids to upper case; ids are ASCII tokens, so casefold is exact.
    if a is None or b is None:
        return a is b
    return a.casefold() == b.casefold()


def _remap_domain(domain: DomainCreate, id_map: dict[str, str]) -> DomainCreate:
    """Point the domain at registry-assigned contact ids (e.g. .dk ignores the id we asked for)."""
    if not id_map:
        return domain
    return dataclasses.replace(
        domain,
        registrant=id_map.get(domain.registrant, domain.registrant) if domain.registrant else None,
        contacts=tuple((role, id_map.get(cid, cid)) for role, cid in domain.contacts),
    )


def _objects(domain: DomainCreate) -> dict[str, str]:
    objects = {"domain": domain.name}
    if domain.registrant is not None:
        objects["contact:registrant"] = domain.registrant
    for role, contact_id in domain.contacts:
        key, n = f"contact:{role}", 2
        while key in objects and objects[key] != contact_id:
            key, n = f"contact:{role}{n}", n + 1
        objects[key] = contact_id
    return objects


def _contact_roles(domain: DomainCreate) -> dict[str, tuple[str, ...]]:
    """The roles each contact id fills on the domain (registrant, admin, tech, billing)."""
    roles: dict[str, list[str]] = {}
    if domain.registrant is not None:
        roles.setdefault(domain.registrant, []).append("registrant")
    for role, contact_id in domain.contacts:
        roles.setdefault(contact_id, []).append(role)
    return {cid: tuple(r) for cid, r in roles.items()}


def _failed_step(
    command: str, object_id: str, exc: DeliveryError, roles: tuple[str, ...] = ()
) -> StepOutcome | None:
    """What a failed command left at the registry: refused (it answered), possibly delivered (the frame was
    written and no answer came), or nothing to log (None: the frame never left, e.g. connection refused)."""
    if exc.result_code is not None:
        return StepOutcome(command, object_id, "refused", code=str(exc.result_code), roles=roles)
    if frame_may_have_arrived(exc):
        return StepOutcome(command, object_id, "possibly_delivered", code=exc.code, roles=roles)
    return None


async def _report(on_step: StepObserver | None, step: StepOutcome | None) -> None:
    if on_step is not None and step is not None:
        await on_step(step)


async def _ensure_contact(
    client: CommandSender, contact: ContactCreate, cl_trid_prefix: str
) -> tuple[EppResult, str, bool]:
    """Create a contact, or accept an existing one with the same id if we sponsor it.

    Contact ids are derived deterministically from the registrant, so "object exists" after a crash
    or for a second domain of the same holder is expected (one contact object per holder and registry
    while the released data is unchanged); a foreign sponsor is not.  Returns the answer, the id the
    registry holds it under (``<contact:creData>``: .dk assigns its own) and whether it already existed.
    """
    try:
        result = await client.send(contact, make_cl_trid(cl_trid_prefix, f"contact-{contact.id}"))
    except PermanentDeliveryError as exc:
        if exc.result_code != OBJECT_EXISTS:
            raise
        try:
            info = await client.send(
                ContactInfoQuery(contact.id), make_cl_trid(cl_trid_prefix, f"contact-info-{contact.id}")
            )
        except DeliveryError as info_exc:
            # the create itself was answered (2302: nothing of ours kept); only the <info> failed
            info_exc.extra["frame_written"] = False
            raise
        if not _same_id(info.cl_id, client.endpoint.client_id):
            raise PermanentDeliveryError(
                "contact id exists at the registry under another sponsor",
                result_code=OBJECT_EXISTS,
                epp_command="contact:create",
                object_id=contact.id,
                cl_trid=info.result.cl_trid,
            ) from exc
        log.debug("EPP contact %s already exists and is ours; reusing it", contact.id)
        return info.result, info.id, True
    return result, result.created_id or contact.id, False


async def _ensure_contacts(
    client: CommandSender,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    on_step: StepObserver | None,
    held: Mapping[str, str] | None,
    provisioned: dict[str, str] | None,
) -> tuple[dict[str, EppResult], dict[str, str]]:
    """The contacts ``commands`` needs at the registry: created, or found already there; returns the answers
    and the ids the registry holds them under where they differ from ours (see ``register_with``)."""
    contact_results: dict[str, EppResult] = {}
    id_map: dict[str, str] = {}
    roles = _contact_roles(commands.domain)
    earlier = dict(held or {})
    for contact in commands.contacts:
        if contact.id in contact_results or contact.id in id_map:
            continue
        if contact.id in commands.registrar_contacts:
            known = provisioned.get(contact.id) if provisioned is not None else None
            if known is None:
                _, known, _ = await _ensure_contact(client, contact, cl_trid_prefix)
                if provisioned is not None:
                    provisioned[contact.id] = known
            if known != contact.id:
                id_map[contact.id] = known
            continue
        if contact.id in earlier:
            if earlier[contact.id] != contact.id:
                id_map[contact.id] = earlier[contact.id]
            continue
        try:
            result, registry_id, existed = await _ensure_contact(client, contact, cl_trid_prefix)
        except DeliveryError as exc:
            await _report(on_step, _failed_step("contact:create", contact.id, exc, roles.get(contact.id, ())))
            raise
        contact_results[contact.id] = result
        if registry_id != contact.id:
            id_map[contact.id] = registry_id
        await _report(on_step, StepOutcome(
            "contact:create", contact.id, "delivered", result, registry_id=registry_id,
            roles=roles.get(contact.id, ()), reconciled=existed,
        ))

    return contact_results, id_map


async def register_with(
    client: CommandSender,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    on_step: StepObserver | None = None,
    held: Mapping[str, str] | None = None,
    provisioned: dict[str, str] | None = None,
) -> RegistrationOutcome:
    """``register`` through ``client``: an open session (lets callers batch several registrations), or a
    ``SessionPerCommand`` that borrows a pooled session for each command.

    ``on_step`` hears each command that carried a data subject's values (each ``contact:create`` of a
    subject contact, and the ``domain:create``) before the next one is sent.  ``held`` maps the subject
    contacts earlier attempts already left at the registry (our id → the registry's) to skip them.
    ``provisioned`` is a cache, per registry, of the registrar's own contacts already ensured there: they
    are created once (when missing), never per registration, and never reported as a disclosure.
    """
    contact_results, id_map = await _ensure_contacts(
        client, commands, cl_trid_prefix, on_step=on_step, held=held, provisioned=provisioned
    )
    domain = _remap_domain(commands.domain, id_map)
    try:
        outcome = await _create_domain(client, domain, contact_results, cl_trid_prefix)
    except DeliveryError as exc:
        await _report(on_step, _failed_step("domain:create", domain.name, exc))
        raise
    await _report(on_step, StepOutcome(
        "domain:create", domain.name, "delivered", outcome.domain_result, reconciled=outcome.reconciled,
        links=_subject_links(domain, commands, id_map),
    ))
    return outcome


def _subject_links(domain: DomainCreate, commands: RegistrationCommands, id_map: Mapping[str, str]) -> tuple[
    tuple[str, str], ...
]:
    """(role, registry id) of the subject contacts ``domain`` points at (not the registrar's own)."""
    registrar = {id_map.get(c, c) for c in commands.registrar_contacts}
    pairs = ([("registrant", domain.registrant)] if domain.registrant else []) + list(domain.contacts)
    return tuple((role, cid) for role, cid in pairs if cid not in registrar)


async def _create_domain(
    client: CommandSender, domain: DomainCreate, contact_results: dict[str, EppResult], cl_trid_prefix: str
) -> RegistrationOutcome:
    try:
        domain_result = await client.send(domain, make_cl_trid(cl_trid_prefix, "domain"))
    except PermanentDeliveryError as exc:
        if exc.result_code != OBJECT_EXISTS:
            raise
        refused = PermanentDeliveryError(
            "domain exists at the registry and is not this registration",
            result_code=OBJECT_EXISTS,
            epp_command="domain:create",
            object_id=domain.name,
            cl_trid=exc.extra.get("cl_trid"),
        )
        try:
            info = await client.send(DomainInfoQuery(domain.name), make_cl_trid(cl_trid_prefix, "domain-info"))
        except PermanentDeliveryError as info_exc:
            # Registries answer info on foreign domains with 2201 or a stripped infData.
            raise refused from info_exc
        except DeliveryError as info_exc:
            info_exc.extra["frame_written"] = False  # the create was answered; only the <info> failed
            raise
        if not (
            _same_id(info.cl_id, client.endpoint.client_id) and _same_id(info.registrant, domain.registrant)
        ):
            raise refused from exc
        log.debug("EPP domain %s found already registered by us; reconciled", domain.name)
        return RegistrationOutcome(
            domain_result=info.result,
            contact_results=contact_results,
            objects=_objects(domain),
            reconciled=True,
        )
    return RegistrationOutcome(
        domain_result=domain_result,
        contact_results=contact_results,
        objects=_objects(domain),
        pending=domain_result.pending,
    )


async def adopt_with(
    client: EppClient,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    on_step: StepObserver | None = None,
    held: Mapping[str, str] | None = None,
    provisioned: dict[str, str] | None = None,
) -> EppResult:
    """After a domain was transferred to us: our contacts for it (created or reused, each a step), then one
    ``domain:update`` that makes them its registrant and role contacts in place of the previous registrar's
    (a step too: it links the holder's contact to the domain).  Safe to repeat: contacts reconcile as in
    ``register_with``, and the update is narrowed to what <info> does not show yet."""
    _, id_map = await _ensure_contacts(
        client, commands, cl_trid_prefix, on_step=on_step, held=held, provisioned=provisioned
    )
    wanted = _remap_domain(commands.domain, id_map)
    info = await client.send(DomainInfoQuery(wanted.name), make_cl_trid(cl_trid_prefix, "adopt-info"))
    have = {(role, cid.casefold()) for role, cid in info.contacts}
    want = {(role, cid) for role, cid in wanted.contacts}
    update = DomainUpdate(
        name=wanted.name,
        registrant=wanted.registrant if not _same_id(info.registrant, wanted.registrant) else None,
        add_contacts=tuple(sorted((r, c) for r, c in want if (r, c.casefold()) not in have)),
        rem_contacts=tuple(sorted((cast(ContactRole, r), c) for r, c in info.contacts
                                  if (r, c.casefold()) not in {(wr, wc.casefold()) for wr, wc in want})),
        auth_pw=wanted.auth_pw,
    )
    try:
        result = await client.send(update, command_cl_trid(cl_trid_prefix, "adopt", update))
    except DeliveryError as exc:
        await _report(on_step, _failed_step("domain:update", wanted.name, exc))
        raise
    await _report(on_step, StepOutcome("domain:update", wanted.name, "delivered", result,
                                       links=_subject_links(wanted, commands, id_map)))
    return result


async def delete_contacts_with(
    client: EppClient, ids: Iterable[str], cl_trid_prefix: str, *, on_step: StepObserver | None = None
) -> dict[str, StepOutcome]:
    """``contact:delete`` for each id (undoing a registration that failed after its contacts were
    created); never raises for a refusal: a contact the registry keeps (2305 in use, a policy refusal) is
    reported as refused, so staff can see that the registry still holds it.  An id the registry does not
    know (2303) counts as deleted."""
    done: dict[str, StepOutcome] = {}
    for contact_id in ids:
        try:
            result = await client.send(
                ContactDelete(contact_id), make_cl_trid(cl_trid_prefix, f"contact-delete-{contact_id}")
            )
            step = StepOutcome("contact:delete", contact_id, "delivered", result)
        except DeliveryError as exc:
            if exc.result_code == OBJECT_MISSING:
                step = StepOutcome("contact:delete", contact_id, "delivered", code=str(OBJECT_MISSING))
            else:
                # refused, or no answer: either way the registry may still hold the contact (a delete that
                # never left is reported as refused with the transport's code, so it is listed, not taken
                # as done)
                step = _failed_step("contact:delete", contact_id, exc) or StepOutcome(
                    "contact:delete", contact_id, "refused", code=exc.code
                )
        done[contact_id] = step
        await _report(on_step, step)
    return done


async def register(
    endpoint: Endpoint,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    on_step: StepObserver | None = None,
    held: Mapping[str, str] | None = None,
    provisioned: dict[str, str] | None = None,
) -> RegistrationOutcome:
    """Create the contacts, then the domain, in one session; idempotent across retries.

    ``reconciled`` is set only when the domain itself was found via <info> (a previous attempt got
    through); reusing existing contacts is routine and does not set it.
    """
    async with EppClient(endpoint, trid_prefix=cl_trid_prefix) as client:
        return await register_with(
            client, commands, cl_trid_prefix, on_step=on_step, held=held, provisioned=provisioned
        )


async def find_domain(endpoint: Endpoint, name: str, cl_trid: str) -> DomainInfo | None:
    """<domain:info> in a short session; ``None`` when the registry does not know the domain."""
    async with EppClient(endpoint, trid_prefix=cl_trid) as client:
        try:
            return await client.send(DomainInfoQuery(name), cl_trid)
        except PermanentDeliveryError as exc:
            if exc.result_code == OBJECT_MISSING:
                return None
            raise


async def _update(
    client: EppClient,
    cmd: _U,
    object_id: str,
    step: str,
    cl_trid_prefix: str,
    narrow: Callable[[], Awaitable[tuple[_U | None, EppResult]]] | None,
) -> UpdateOutcome:
    """Send ``cmd``, or what ``narrow`` (after a failure) says is still missing at the registry.

    Every attempt uses the clTRID derived from the whole update, so the registry's log shows a
    retry, not a new request, even when less is sent.
    """
    trid = command_cl_trid(cl_trid_prefix, step, cmd)
    to_send = cmd
    if narrow is not None:
        narrowed, info_result = await narrow()
        if narrowed is None:
            log.info("EPP %s of %s was already applied; reconciled", step.replace("-", " "), object_id)
            return UpdateOutcome(object_id=object_id, result=info_result, reconciled=True)
        to_send = narrowed
    result = await client.send(to_send, trid)
    return UpdateOutcome(object_id=object_id, result=result, reconciled=to_send != cmd)


async def update_domain_with(
    client: EppClient, cmd: DomainUpdate, cl_trid_prefix: str, *, after_failure: bool = False
) -> UpdateOutcome:
    """<domain:update> that is safe to repeat: after a failure, only what <info> lacks is sent."""

    async def narrow() -> tuple[DomainUpdate | None, EppResult]:
        info = await client.send(DomainInfoQuery(cmd.name), make_cl_trid(cl_trid_prefix, "domain-update-info"))
        return narrow_domain_update(cmd, info), info.result

    return await _update(client, cmd, cmd.name, "domain-update", cl_trid_prefix, narrow if after_failure else None)


async def update_contact_with(
    client: EppClient, cmd: ContactUpdate, cl_trid_prefix: str, *, after_failure: bool = False
) -> UpdateOutcome:
    """<contact:update> that is safe to repeat (status adds/removes narrowed via <info>)."""

    async def narrow() -> tuple[ContactUpdate | None, EppResult]:
        info = await client.send(ContactInfoQuery(cmd.id), make_cl_trid(cl_trid_prefix, "contact-update-info"))
        return narrow_contact_update(cmd, info.statuses), info.result

    statuses = bool(cmd.add_status or cmd.rem_status)  # only they can fail on a replay; chg is idempotent
    return await _update(
        client, cmd, cmd.id, "contact-update", cl_trid_prefix, narrow if after_failure and statuses else None
    )
