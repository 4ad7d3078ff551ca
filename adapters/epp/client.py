"""EPP over TLS (RFC 5730/5734) and the registration flow built on it.

Error mapping is the contract with the retry layer: ``TransientDeliveryError`` means "the registry
may not have seen this, or may have seen it and crashed; try again", ``PermanentDeliveryError``
means "retrying cannot help".  A retry after an ambiguous failure is safe because contact ids and
clTRIDs are deterministic and ``register`` reconciles "object exists" answers via <info>.

Result codes are classified in ``adapters.epp.outcomes`` (the one place that decides what is
retried); ``with_retries`` there is the retry loop the ``*_pooled`` helpers use, on sessions from
an ``adapters.epp.pool.EppSessionPool``.

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
import ssl
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

from adapters.epp.extensions import AnyExtension
from adapters.epp.framing import DEFAULT_MAX_FRAME, read_frame, write_frame
from adapters.epp.outcomes import (
    CLOSING_CODES,
    OBJECT_EXISTS,
    OBJECT_MISSING,
    RETRYABLE_CODES,
    raise_for_result,
    transport_error,
    with_retries,
)
from adapters.epp.ratelimit import TokenBucket
from adapters.epp.reconcile import narrow_contact_update, narrow_domain_update
from adapters.epp.types import (
    ContactCreate,
    ContactDelete,
    ContactUpdate,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    Endpoint,
    EppResult,
    PollAck,
    PollRequest,
    PollResult,
    RegistrationCommands,
    RegistrationOutcome,
    RenewResult,
    TransferResult,
    UpdateOutcome,
)
from adapters.epp.xml import (
    SUPPORTED_EXT_URIS,
    ContactInfo,
    Greeting,
    Response,
    build_contact_create,
    build_contact_delete,
    build_contact_info,
    build_contact_update,
    build_domain_create,
    build_domain_delete,
    build_domain_info,
    build_domain_renew,
    build_domain_transfer,
    build_domain_update,
    build_hello,
    build_login,
    build_logout,
    build_poll,
    extension_namespace,
    parse_greeting,
    parse_response,
)
from gateway.errors import DeliveryError, EppXmlError, FrameError, PermanentDeliveryError, TransientDeliveryError

if TYPE_CHECKING:
    from adapters.epp.pool import EppSessionPool

__all__ = [
    "ContactInfo",
    "EppClient",
    "Greeting",
    "command_cl_trid",
    "find_domain",
    "make_cl_trid",
    "register",
    "register_pooled",
    "register_with",
    "run_pooled",
    "update_contact_pooled",
    "update_contact_with",
    "update_domain_pooled",
    "update_domain_with",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SUCCESS: Final = frozenset({1000, 1001})
LOGOUT_OK: Final = frozenset({1500})
TRANSIENT: Final = RETRYABLE_CODES  # kept for importers; the mapping lives in adapters.epp.outcomes
CLOSING: Final = CLOSING_CODES
MAX_CL_TRID: Final = 64

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


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext:
    # With a cafile, create_default_context loads only that CA: the registry's CA is pinned and the
    # system trust store plays no part.
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=endpoint.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.cert_file:
        ctx.load_cert_chain(endpoint.cert_file, endpoint.key_file)
    return ctx


class EppClient:
    """One logged-in EPP session; use as ``async with EppClient(endpoint) as client``.

    EPP is strictly request/response on one connection, so commands are serialised with a lock.
    Once a command fails mid-flight (timeout, dropped connection, garbled frame) the session is
    marked broken: whatever the registry sends next could be the late answer to that command.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        trid_prefix: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        rate_limiter: TokenBucket | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._trid_prefix = trid_prefix or f"rg-{secrets.token_hex(6)}"
        self._max_frame = max_frame
        self._rate_limiter = rate_limiter
        self._polls = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._greeting: Greeting | None = None
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
        if not self._logged_in or self._broken or self._writer is None or self._reader is None:
            return False
        return not (self._reader.at_eof() or self._writer.is_closing())

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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        """Open TLS, read the greeting and log in."""
        ep = self.endpoint
        try:
            ctx = _ssl_context(ep)
        except (OSError, ssl.SSLError) as exc:
            raise PermanentDeliveryError("EPP TLS material is unusable") from exc
        try:
            async with asyncio.timeout(ep.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    ep.host, ep.port, ssl=ctx, server_hostname=ep.server_name or ep.host
                )
                data = await read_frame(self._reader, self._max_frame)
        except ssl.SSLCertVerificationError as exc:
            # A certificate that does not chain to the pinned CA is a configuration or security
            # problem for a human, not something a retry fixes.
            raise PermanentDeliveryError("EPP server certificate failed verification") from exc
        except TimeoutError as exc:
            raise TransientDeliveryError("EPP connect timed out") from exc
        except (OSError, EOFError, FrameError) as exc:
            raise TransientDeliveryError("EPP connection failed") from exc
        try:
            self._greeting = parse_greeting(data)
            frame = build_login(ep.client_id, ep.password, self._greeting, self._trid("login"))
        except EppXmlError as exc:
            raise PermanentDeliveryError("EPP server does not speak a protocol we support") from exc
        except ValueError as exc:  # e.g. a clTRID prefix that is not an XML token
            raise PermanentDeliveryError("EPP login cannot be expressed") from exc
        response = await self._command(frame, "login", self._trid("login"))
        self._check(response, "login")
        self._logged_in = True

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._logged_in = False
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(2.0):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            writer.transport.abort()

    async def logout(self) -> EppResult:
        trid = self._trid("logout")
        response = await self._command(build_logout(trid), "logout", trid)
        self._logged_in = False
        self._check(response, "logout", ok=LOGOUT_OK)
        return response.result

    async def hello(self) -> Greeting:
        """Send <hello>; the fresh greeting proves the session is alive without touching objects."""
        data = await self._exchange(build_hello(), "hello", None)
        try:
            greeting = parse_greeting(data)
        except EppXmlError as exc:
            self._broken = True
            raise TransientDeliveryError("EPP hello got no greeting") from exc
        self._greeting = greeting
        return greeting

    # ---- object commands ----------------------------------------------------------------------

    async def contact_create(self, cmd: ContactCreate, cl_trid: str) -> EppResult:
        self._require_extensions(cmd.extensions, "contact:create", cmd.id, cl_trid)
        frame = self._build(build_contact_create, cmd, cl_trid, op="contact:create")
        response = await self._command(frame, "contact:create", cl_trid, object_id=cmd.id)
        self._check(response, "contact:create", object_id=cmd.id)
        return response.result

    async def domain_create(self, cmd: DomainCreate, cl_trid: str) -> EppResult:
        self._require_extensions(cmd.extensions, "domain:create", cmd.name, cl_trid)
        frame = self._build(build_domain_create, cmd, cl_trid, op="domain:create")
        response = await self._command(frame, "domain:create", cl_trid, object_id=cmd.name)
        self._check(response, "domain:create", object_id=cmd.name)
        return response.result

    async def domain_info(self, name: str, cl_trid: str) -> DomainInfo:
        frame = self._build(build_domain_info, name, cl_trid, op="domain:info")
        response = await self._command(frame, "domain:info", cl_trid, object_id=name)
        self._check(response, "domain:info", object_id=name)
        if response.domain_info is None:
            raise PermanentDeliveryError(
                "EPP domain:info answer carried no infData", result_code=response.result.code, cl_trid=cl_trid
            )
        return response.domain_info

    async def contact_info(self, contact_id: str, cl_trid: str) -> ContactInfo:
        frame = self._build(build_contact_info, contact_id, cl_trid, op="contact:info")
        response = await self._command(frame, "contact:info", cl_trid, object_id=contact_id)
        self._check(response, "contact:info", object_id=contact_id)
        if response.contact_info is None:
            raise PermanentDeliveryError(
                "EPP contact:info answer carried no infData",
                result_code=response.result.code,
                cl_trid=cl_trid,
            )
        return response.contact_info

    async def contact_update(self, cmd: ContactUpdate, cl_trid: str | None = None) -> EppResult:
        """<contact:update>; ``cl_trid`` defaults to ``command_cl_trid`` under this session's prefix."""
        trid = cl_trid or command_cl_trid(self._trid_prefix, "contact-update", cmd)
        self._require_extensions(cmd.extensions, "contact:update", cmd.id, trid)
        frame = self._build(build_contact_update, cmd, trid, op="contact:update")
        response = await self._command(frame, "contact:update", trid, object_id=cmd.id)
        self._check(response, "contact:update", object_id=cmd.id)
        return response.result

    async def contact_delete(self, cmd: ContactDelete, cl_trid: str | None = None) -> EppResult:
        trid = cl_trid or command_cl_trid(self._trid_prefix, "contact-delete", cmd)
        frame = self._build(build_contact_delete, cmd, trid, op="contact:delete")
        response = await self._command(frame, "contact:delete", trid, object_id=cmd.id)
        self._check(response, "contact:delete", object_id=cmd.id)
        return response.result

    async def domain_update(self, cmd: DomainUpdate, cl_trid: str | None = None) -> EppResult:
        """<domain:update> (ns, contacts, statuses; registrant and authInfo changes; extensions)."""
        trid = cl_trid or command_cl_trid(self._trid_prefix, "domain-update", cmd)
        self._require_extensions(cmd.extensions, "domain:update", cmd.name, trid)
        frame = self._build(build_domain_update, cmd, trid, op="domain:update")
        response = await self._command(frame, "domain:update", trid, object_id=cmd.name)
        self._check(response, "domain:update", object_id=cmd.name)
        return response.result

    async def domain_delete(self, cmd: DomainDelete, cl_trid: str | None = None) -> EppResult:
        trid = cl_trid or command_cl_trid(self._trid_prefix, "domain-delete", cmd)
        frame = self._build(build_domain_delete, cmd, trid, op="domain:delete")
        response = await self._command(frame, "domain:delete", trid, object_id=cmd.name)
        self._check(response, "domain:delete", object_id=cmd.name)
        return response.result

    async def domain_renew(self, cmd: DomainRenew, cl_trid: str | None = None) -> RenewResult:
        """<domain:renew>; a replay cannot renew twice because ``cur_exp_date`` no longer matches (2306)."""
        trid = cl_trid or command_cl_trid(self._trid_prefix, "domain-renew", cmd)
        frame = self._build(build_domain_renew, cmd, trid, op="domain:renew")
        response = await self._command(frame, "domain:renew", trid, object_id=cmd.name)
        self._check(response, "domain:renew", object_id=cmd.name)
        return RenewResult(result=response.result, name=response.renewed_name or cmd.name, ex_date=response.expiry_date)

    async def domain_transfer(self, cmd: DomainTransfer, cl_trid: str | None = None) -> TransferResult:
        """<transfer op=...>; a request is usually answered 1001 (``pending``) until the sponsor acts."""
        trid = cl_trid or command_cl_trid(self._trid_prefix, f"domain-transfer-{cmd.op}", cmd)
        frame = self._build(build_domain_transfer, cmd, trid, op=f"domain:transfer:{cmd.op}")
        response = await self._command(frame, f"domain:transfer:{cmd.op}", trid, object_id=cmd.name)
        self._check(response, f"domain:transfer:{cmd.op}", object_id=cmd.name)
        return TransferResult(result=response.result, transfer=response.transfer)

    async def poll(self, cmd: PollRequest | PollAck, cl_trid: str | None = None) -> PollResult:
        """<poll op="req"> (1300: queue empty, 1301: a message) or <poll op="ack" msgID=...>."""
        if cl_trid is None:
            if isinstance(cmd, PollAck):
                cl_trid = command_cl_trid(self._trid_prefix, "poll-ack", cmd)
            else:
                self._polls += 1
                cl_trid = make_cl_trid(self._trid_prefix, f"poll-req-{self._polls}")
        op = "poll:ack" if isinstance(cmd, PollAck) else "poll:req"
        frame = self._build(build_poll, cmd, cl_trid, op=op)
        response = await self._command(frame, op, cl_trid)
        self._check(response, op)
        return PollResult(
            result=response.result,
            count=response.msg_count or 0,
            message=response.message,
            msg_id=response.msg_id,
        )

    async def poll_request(self, cl_trid: str | None = None) -> PollResult:
        return await self.poll(PollRequest(), cl_trid)

    async def poll_ack(self, msg_id: str, cl_trid: str | None = None) -> PollResult:
        return await self.poll(PollAck(msg_id), cl_trid)

    # ---- plumbing -----------------------------------------------------------------------------

    def _trid(self, step: str) -> str:
        return make_cl_trid(self._trid_prefix, step)

    def _require_extensions(
        self, exts: Iterable[AnyExtension], op: str, object_id: str, cl_trid: str
    ) -> None:
        needed = {extension_namespace(ext) for ext in exts}
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

    async def _exchange(self, frame: bytes, op: str, cl_trid: str | None) -> bytes:
        if self._reader is None or self._writer is None or self._broken:
            raise TransientDeliveryError("EPP session is not usable", epp_command=op, cl_trid=cl_trid)
        reader, writer = self._reader, self._writer
        async with self._lock:
            if self._rate_limiter is not None:
                # Waiting for a token is not the registry being slow: it stays outside the timeout.
                await self._rate_limiter.acquire()
            # Broken until proven otherwise: a cancellation mid-command also leaves the stream unusable.
            self._broken = True
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):
                    await write_frame(writer, frame)
                    data = await read_frame(reader, self._max_frame)
            except TimeoutError as exc:
                log.warning("EPP %s timed out (clTRID %s)", op, cl_trid)
                raise transport_error("EPP command timed out", op, cl_trid) from exc
            except (OSError, EOFError, FrameError) as exc:
                log.warning("EPP %s: connection lost (clTRID %s)", op, cl_trid)
                raise transport_error("EPP connection lost during command", op, cl_trid) from exc
            self._broken = False
            return data

    async def _command(
        self, frame: bytes, op: str, cl_trid: str, *, object_id: str | None = None
    ) -> Response:
        data = await self._exchange(frame, op, cl_trid)
        try:
            response = parse_response(data)
        except EppXmlError as exc:
            self._broken = True
            raise transport_error("EPP response unreadable", op, cl_trid) from exc
        result = response.result
        if result.cl_trid is not None and result.cl_trid != cl_trid:
            self._broken = True
            raise transport_error("EPP response answers another command", op, cl_trid)
        if result.code in CLOSING_CODES:
            self._broken = True
        log.info(
            "EPP %s %s -> %d (clTRID %s, svTRID %s)",
            op,
            object_id or "-",
            result.code,
            cl_trid,
            result.sv_trid,
        )
        return response

    def _check(
        self,
        response: Response,
        op: str,
        *,
        object_id: str | None = None,
        ok: frozenset[int] = SUCCESS,
    ) -> None:
        if response.result.code in ok:
            return
        raise_for_result(response.result, op, object_id=object_id)


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


async def _ensure_contact(
    client: EppClient, contact: ContactCreate, cl_trid_prefix: str
) -> tuple[EppResult, str]:
    """Create a contact, or accept an existing one with the same id if we sponsor it.

    Contact ids are derived deterministically from the registrant, so "object exists" after a crash
    or for a second domain of the same holder is expected; a foreign sponsor is not.
    """
    try:
        result = await client.contact_create(contact, make_cl_trid(cl_trid_prefix, f"contact-{contact.id}"))
    except PermanentDeliveryError as exc:
        if exc.result_code != OBJECT_EXISTS:
            raise
        info = await client.contact_info(
            contact.id, make_cl_trid(cl_trid_prefix, f"contact-info-{contact.id}")
        )
        if not _same_id(info.cl_id, client.endpoint.client_id):
            raise PermanentDeliveryError(
                "contact id exists at the registry under another sponsor",
                result_code=OBJECT_EXISTS,
                epp_command="contact:create",
                object_id=contact.id,
                cl_trid=info.result.cl_trid,
            ) from exc
        log.info("EPP contact %s already exists and is ours; reusing it", contact.id)
        return info.result, info.id
    return result, contact.id


async def register_with(
    client: EppClient, commands: RegistrationCommands, cl_trid_prefix: str
) -> RegistrationOutcome:
    """``register`` on an already open session (lets callers batch several registrations)."""
    contact_results: dict[str, EppResult] = {}
    id_map: dict[str, str] = {}
    for contact in commands.contacts:
        if contact.id in contact_results:
            continue
        result, registry_id = await _ensure_contact(client, contact, cl_trid_prefix)
        contact_results[contact.id] = result
        if registry_id != contact.id:
            id_map[contact.id] = registry_id

    domain = _remap_domain(commands.domain, id_map)
    try:
        domain_result = await client.domain_create(domain, make_cl_trid(cl_trid_prefix, "domain"))
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
            info = await client.domain_info(domain.name, make_cl_trid(cl_trid_prefix, "domain-info"))
        except PermanentDeliveryError as info_exc:
            # Registries answer info on foreign domains with 2201 or a stripped infData.
            raise refused from info_exc
        if not (
            _same_id(info.cl_id, client.endpoint.client_id) and _same_id(info.registrant, domain.registrant)
        ):
            raise refused from exc
        log.info("EPP domain %s found already registered by us; reconciled", domain.name)
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


async def register(
    endpoint: Endpoint, commands: RegistrationCommands, cl_trid_prefix: str
) -> RegistrationOutcome:
    """Create the contacts, then the domain, in one session; idempotent across retries.

    ``reconciled`` is set only when the domain itself was found via <info> (a previous attempt got
    through); reusing existing contacts is routine and does not set it.
    """
    async with EppClient(endpoint, trid_prefix=cl_trid_prefix) as client:
        return await register_with(client, commands, cl_trid_prefix)


async def find_domain(endpoint: Endpoint, name: str, cl_trid: str) -> DomainInfo | None:
    """<domain:info> in a short session; ``None`` when the registry does not know the domain."""
    async with EppClient(endpoint, trid_prefix=cl_trid) as client:
        try:
            return await client.domain_info(name, cl_trid)
        except PermanentDeliveryError as exc:
            if exc.result_code == OBJECT_MISSING:
                return None
            raise


# ------------------------------------------------------------------------------------------------
# pooled, retried operations


async def run_pooled(
    pool: EppSessionPool,
    op: Callable[[EppClient, bool], Awaitable[_T]],
    *,
    attempts: int = 3,
    max_total_s: float = 60.0,
    initial_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[int, DeliveryError], None] | None = None,
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

    return await with_retries(
        attempt,
        attempts=attempts,
        max_total_s=max_total_s,
        initial_wait_s=initial_wait_s,
        max_wait_s=max_wait_s,
        on_retry=on_retry,
    )


async def register_pooled(
    pool: EppSessionPool,
    commands: RegistrationCommands,
    cl_trid_prefix: str,
    *,
    attempts: int = 3,
    max_total_s: float = 60.0,
    initial_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[int, DeliveryError], None] | None = None,
) -> RegistrationOutcome:
    """``register`` on a pooled session, with transient failures retried (``with_retries``).

    Retrying cannot duplicate anything: contact ids and clTRIDs are deterministic, and a create
    answered "object exists" is reconciled via <info> (``reconciled=True`` for the domain).
    """

    async def op(client: EppClient, _after_failure: bool) -> RegistrationOutcome:
        return await register_with(client, commands, cl_trid_prefix)

    return await run_pooled(
        pool,
        op,
        attempts=attempts,
        max_total_s=max_total_s,
        initial_wait_s=initial_wait_s,
        max_wait_s=max_wait_s,
        on_retry=on_retry,
    )


async def update_domain_with(
    client: EppClient, cmd: DomainUpdate, cl_trid_prefix: str, *, after_failure: bool = False
) -> UpdateOutcome:
    """<domain:update> that is safe to repeat: after a failure, only what <info> lacks is sent.

    Every attempt uses the same clTRID, so the registry's log shows a retry, not a new request.
    """
    trid = command_cl_trid(cl_trid_prefix, "domain-update", cmd)
    to_send: DomainUpdate | None = cmd
    if after_failure:
        info = await client.domain_info(cmd.name, make_cl_trid(cl_trid_prefix, "domain-update-info"))
        to_send = narrow_domain_update(cmd, info)
        if to_send is None:
            log.info("EPP domain update of %s was already applied; reconciled", cmd.name)
            return UpdateOutcome(object_id=cmd.name, result=info.result, reconciled=True)
    assert to_send is not None
    result = await client.domain_update(to_send, trid)
    return UpdateOutcome(object_id=cmd.name, result=result, reconciled=to_send != cmd)


async def update_contact_with(
    client: EppClient, cmd: ContactUpdate, cl_trid_prefix: str, *, after_failure: bool = False
) -> UpdateOutcome:
    """<contact:update> that is safe to repeat (status adds/removes narrowed via <info>)."""
    trid = command_cl_trid(cl_trid_prefix, "contact-update", cmd)
    to_send: ContactUpdate | None = cmd
    if after_failure and (cmd.add_status or cmd.rem_status):
        info = await client.contact_info(cmd.id, make_cl_trid(cl_trid_prefix, "contact-update-info"))
        to_send = narrow_contact_update(cmd, info.statuses)
        if to_send is None:
            log.info("EPP contact update of %s was already applied; reconciled", cmd.id)
            return UpdateOutcome(object_id=cmd.id, result=info.result, reconciled=True)
    assert to_send is not None
    result = await client.contact_update(to_send, trid)
    return UpdateOutcome(object_id=cmd.id, result=result, reconciled=to_send != cmd)


async def update_domain_pooled(
    pool: EppSessionPool,
    cmd: DomainUpdate,
    cl_trid_prefix: str,
    *,
    attempts: int = 3,
    max_total_s: float = 60.0,
    initial_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[int, DeliveryError], None] | None = None,
) -> UpdateOutcome:
    async def op(client: EppClient, after_failure: bool) -> UpdateOutcome:
        return await update_domain_with(client, cmd, cl_trid_prefix, after_failure=after_failure)

    return await run_pooled(
        pool,
        op,
        attempts=attempts,
        max_total_s=max_total_s,
        initial_wait_s=initial_wait_s,
        max_wait_s=max_wait_s,
        on_retry=on_retry,
    )


async def update_contact_pooled(
    pool: EppSessionPool,
    cmd: ContactUpdate,
    cl_trid_prefix: str,
    *,
    attempts: int = 3,
    max_total_s: float = 60.0,
    initial_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
    on_retry: Callable[[int, DeliveryError], None] | None = None,
) -> UpdateOutcome:
    async def op(client: EppClient, after_failure: bool) -> UpdateOutcome:
        return await update_contact_with(client, cmd, cl_trid_prefix, after_failure=after_failure)

    return await run_pooled(
        pool,
        op,
        attempts=attempts,
        max_total_s=max_total_s,
        initial_wait_s=initial_wait_s,
        max_wait_s=max_wait_s,
        on_retry=on_retry,
    )
