"""EPP over TLS (RFC 5730/5734) and the registration flow built on it.

Error mapping is the contract with the retry layer: ``TransientDeliveryError`` means "the registry
may not have seen this, or may have seen it and crashed; try again", ``PermanentDeliveryError``
means "retrying cannot help".  A retry after an ambiguous failure is safe because contact ids and
clTRIDs are deterministic and ``register`` reconciles "object exists" answers via <info>.

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
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, TypeVar

from adapters.epp.framing import DEFAULT_MAX_FRAME, FrameError, read_frame, write_frame
from adapters.epp.types import (
    ContactCreate,
    DomainCreate,
    DomainInfo,
    Endpoint,
    EppResult,
    RegistrationCommands,
    RegistrationOutcome,
)
from adapters.epp.xml import (
    SUPPORTED_EXT_URIS,
    ContactInfo,
    EppXmlError,
    Greeting,
    Response,
    build_contact_create,
    build_contact_info,
    build_domain_create,
    build_domain_info,
    build_hello,
    build_login,
    build_logout,
    extension_namespace,
    parse_greeting,
    parse_response,
)
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "ContactInfo",
    "EppClient",
    "Greeting",
    "find_domain",
    "make_cl_trid",
    "register",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SUCCESS: Final = frozenset({1000, 1001})
LOGOUT_OK: Final = frozenset({1500})
TRANSIENT: Final = frozenset({2400, 2500, 2501, 2502})
CLOSING: Final = frozenset({2500, 2501, 2502})  # RFC 5730: the server closes the connection after these
OBJECT_EXISTS: Final = 2302
OBJECT_MISSING: Final = 2303
MAX_CL_TRID: Final = 64


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
    ) -> None:
        self.endpoint = endpoint
        self._trid_prefix = trid_prefix or f"rg-{secrets.token_hex(6)}"
        self._max_frame = max_frame
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
        missing = [
            ns for ns in (extension_namespace(ext) for ext in cmd.extensions) if ns not in self.ext_uris
        ]
        if missing:
            raise PermanentDeliveryError(
                "EPP server does not offer an extension this contact needs",
                epp_command="contact:create",
                object_id=cmd.id,
                cl_trid=cl_trid,
                ext_uris=sorted(set(missing)),
            )
        frame = self._build(build_contact_create, cmd, cl_trid, op="contact:create")
        response = await self._command(frame, "contact:create", cl_trid, object_id=cmd.id)
        self._check(response, "contact:create", object_id=cmd.id)
        return response.result

    async def domain_create(self, cmd: DomainCreate, cl_trid: str) -> EppResult:
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

    # ---- plumbing -----------------------------------------------------------------------------

    def _trid(self, step: str) -> str:
        return make_cl_trid(self._trid_prefix, step)

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
            # Broken until proven otherwise: a cancellation mid-command also leaves the stream unusable.
            self._broken = True
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):
                    await write_frame(writer, frame)
                    data = await read_frame(reader, self._max_frame)
            except TimeoutError as exc:
                log.warning("EPP %s timed out (clTRID %s)", op, cl_trid)
                raise TransientDeliveryError(
                    "EPP command timed out", epp_command=op, cl_trid=cl_trid
                ) from exc
            except (OSError, EOFError, FrameError) as exc:
                log.warning("EPP %s: connection lost (clTRID %s)", op, cl_trid)
                raise TransientDeliveryError(
                    "EPP connection lost during command", epp_command=op, cl_trid=cl_trid
                ) from exc
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
            raise TransientDeliveryError("EPP response unreadable", epp_command=op, cl_trid=cl_trid) from exc
        result = response.result
        if result.cl_trid is not None and result.cl_trid != cl_trid:
            self._broken = True
            raise TransientDeliveryError(
                "EPP response answers another command", epp_command=op, cl_trid=cl_trid
            )
        if result.code in CLOSING:
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
        result = response.result
        if result.code in ok:
            return
        extra: dict[str, Any] = {"epp_command": op, "cl_trid": result.cl_trid, "sv_trid": result.sv_trid}
        if object_id is not None:
            extra["object_id"] = object_id
        if result.code in TRANSIENT:
            raise TransientDeliveryError(
                f"EPP {op} failed with result {result.code}", result_code=result.code, **extra
            )
        raise PermanentDeliveryError(
            f"EPP {op} refused with result {result.code}", result_code=result.code, **extra
        )


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
        domain_result=domain_result, contact_results=contact_results, objects=_objects(domain)
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
