"""A small but real EPP registry for tests and local runs.

It speaks RFC 5734 over TLS with client-certificate authentication, validates every inbound frame
(and, by default, every frame it sends) against the official XSDs, keeps objects in memory and can
be told to misbehave: fail, stall, drop the connection before or after applying a command, refuse
logins, or enforce a per-registrar session limit (the N+1th concurrent login gets 2502 and the
connection closes).  The point is that the client is tested against the same transport, framing,
schema and session rules a registry enforces, not against a mock that agrees with whatever the
client sends.

Objects, their command semantics and the registry modes (registry-assigned contact ids as at .dk,
contact deletes refused by policy) live in ``objects``.  dkhm-4.5 and EURid's contact-ext-1.3 are
validated by their real schemas, Traficom's (.fi) <contact:create> by Traficom's contact schema
(relaxed) plus its holder rules; the iis, Norid and neulevel extensions have no usable schema and
are checked by hand in ``checks``.  Every command is recorded in ``commands`` (with a monotonic
timestamp, the result code and the connection it came on) so tests can assert on what the
registry saw: retries, login attempts, rate-limit spacing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, cast

from lxml import etree

from adapters.epp._xmlutil import q as _q
from adapters.epp.extensions import dkhm, eurid, iis, neulevel, norid
from adapters.epp.framing import read_frame, write_frame
from adapters.epp.sandbox.checks import FALLBACK_CHECKED, HAND_CHECKED, check_traficom, token
from adapters.epp.sandbox.objects import ObjectStore, Outcome, now, text, texts, xs_datetime
from adapters.epp.tls import DevPki, ensure_dev_pki
from adapters.epp.types import Endpoint
from adapters.epp.xml import (
    NS_CONTACT,
    NS_DOMAIN,
    NS_EPP,
    NS_HOST,
    NSMAP,
    build_greeting,
    build_response,
    parse_document,
)
from gateway.errors import EppXmlError, FrameError
from gateway.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_ENV: Final = "GATEWAY_EPP_SCHEMAS"
EXT_SCHEMA_ENV: Final = "GATEWAY_EPP_EXT_SCHEMAS"
EURID_XSDS: Final = ("euridcom-1.0.xsd", "contact-ext-1.3.xsd")
TRAFICOM_CONTACT_XSD: Final = "traficom-contact1.xsd"
#: The sandbox's login: the gateway's default ``registrar_password``, read from the one place it is set,
#: so a sandbox and a gateway both started with defaults log in (they once differed: every delivery got 2200).
DEFAULT_PASSWORD: Final[str] = Settings.model_fields["registrar_password"].default
SV_ID: Final = "Registrant Gateway EPP sandbox"
OBJ_URIS: Final = (NS_CONTACT, NS_DOMAIN, NS_HOST)
EXT_URIS: Final = (iis.NS, eurid.NS, dkhm.NS, norid.NS, neulevel.NS)
MAX_INBOUND_FRAME: Final = 1024 * 1024
CLOSING_CODES: Final = frozenset({2500, 2501, 2502})

MESSAGES: Final = {
    1000: "Command completed successfully",
    1001: "Command completed successfully; action pending",
    1300: "Command completed successfully; no messages",
    1301: "Command completed successfully; ack to dequeue",
    1500: "Command completed successfully; ending session",
    2000: "Unknown command",
    2001: "Command syntax error",
    2002: "Command use error",
    2003: "Required parameter missing",
    2004: "Parameter value range error",
    2005: "Parameter value syntax error",
    2101: "Unimplemented command",
    2103: "Unimplemented extension",
    2106: "Object is not eligible for transfer",
    2200: "Authentication error",
    2201: "Authorization error",
    2202: "Invalid authorization information",
    2300: "Object pending transfer",
    2301: "Object not pending transfer",
    2302: "Object exists",
    2303: "Object does not exist",
    2304: "Object status prohibits operation",
    2305: "Object association prohibits operation",
    2306: "Parameter value policy error",
    2307: "Unimplemented object service",
    2400: "Command failed",
    2500: "Command failed; server closing connection",
    2501: "Authentication error; server closing connection",
    2502: "Session limit exceeded; server closing connection",
}


# ------------------------------------------------------------------------------------------------
# schema validation


def schema_dir() -> Path:
    """Where the official XSDs live: ``$GATEWAY_EPP_SCHEMAS`` or ``<repo>/../shared/epp-schemas``."""
    override = os.environ.get(SCHEMA_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3].parent / "shared" / "epp-schemas"


def ext_schema_dir(base: Path | None = None) -> Path:
    """Registry extension XSDs: ``$GATEWAY_EPP_EXT_SCHEMAS`` or ``epp-ext-schemas`` beside the base ones."""
    override = os.environ.get(EXT_SCHEMA_ENV)
    if override:
        return Path(override)
    return (base or schema_dir()).parent / "epp-ext-schemas"


def _has_eurid(ext_directory: Path | None) -> bool:
    return ext_directory is not None and all((ext_directory / name).is_file() for name in EURID_XSDS)


@lru_cache(maxsize=4)
def _load_schema(directory: Path, ext_directory: Path | None = None) -> etree.XMLSchema:
    for name in ("all.xsd", "dkhm-4.5.xsd"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"EPP schema {name} not found in {directory} (set {SCHEMA_ENV})")
    # all.xsd and dkhm-4.5.xsd have different target namespaces, so one in-memory wrapper imports
    # both by absolute URI; libxml2 loads the shared epp/eppcom/contact imports once.  EURid's
    # contact-ext imports euridcom and contact-1.0 by namespace only, so those come first.
    imports = [("urn:local:epp-all", directory / "all.xsd"), (dkhm.NS, directory / "dkhm-4.5.xsd")]
    if ext_directory is not None and _has_eurid(ext_directory):
        imports += [
            ("http://www.eurid.eu/xml/epp/euridcom-1.0", ext_directory / "euridcom-1.0.xsd"),
            (eurid.NS, ext_directory / "contact-ext-1.3.xsd"),
        ]
    wrapper = (
        '<schema xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:local:registrant-gateway">'
        + "".join(f'<import namespace="{ns}" schemaLocation="{path.as_uri()}"/>' for ns, path in imports)
        + "</schema>"
    )
    return etree.XMLSchema(etree.fromstring(wrapper.encode()))


_XS: Final = "http://www.w3.org/2001/XMLSchema"


@lru_cache(maxsize=4)
def load_traficom_schema(ext_directory: Path) -> etree.XMLSchema | None:
    """Traficom's contact schema with every ``minOccurs`` relaxed to 0 (``None`` when not installed).

    The published file looks inferred from sample frames -- every element mandatory -- so it is
    the truth about names, order and types, not about which members are required (SOURCES.md).
    It redefines the contact-1.0 namespace, so it is a schema of its own, not part of the frame one.
    """
    path = ext_directory / TRAFICOM_CONTACT_XSD
    if not path.is_file():
        return None
    doc = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    for el in doc.iter(_q(_XS, "element")):
        parent = el.getparent()
        if parent is not None and etree.QName(parent).localname in ("sequence", "choice", "all"):
            el.set("minOccurs", "0")
    return etree.XMLSchema(doc)


_OBJECTS: Final = {NS_CONTACT: "contact", NS_DOMAIN: "domain", NS_HOST: "host"}


def frame_kind(root: etree._Element) -> str:
    """``"contact:update"``, ``"domain:transfer"``, ``"login"``, ``"hello"``, ``"response"`` ..."""
    top = next((c for c in root if isinstance(c.tag, str)), None)
    if top is None:
        return "invalid"
    if top.tag != _q(NS_EPP, "command"):
        return etree.QName(top).localname
    verb = next((c for c in top if isinstance(c.tag, str)), None)
    if verb is None:
        return "invalid"
    verb_name = etree.QName(verb).localname
    if verb_name in ("login", "logout", "poll"):
        return verb_name
    body = next((c for c in verb if isinstance(c.tag, str)), None)
    namespace = etree.QName(body).namespace or "" if body is not None else ""
    return f"{_OBJECTS.get(namespace, 'unknown')}:{verb_name}"


class FrameValidator:
    """Validate whole EPP frames: the official XSDs, dkhm-4.5 and EURid's contact-ext-1.3, Traficom's
    contact schema (relaxed) for .fi contacts, and hand checks for iis, Norid and neulevel."""

    def __init__(self, directory: Path | None = None, ext_directory: Path | None = None) -> None:
        self.directory = (directory or schema_dir()).resolve()
        ext = (ext_directory or ext_schema_dir(self.directory)).resolve()
        self.ext_directory: Path | None = ext if ext.is_dir() else None
        self._schema = _load_schema(self.directory, self.ext_directory)
        self.eurid_schema = _has_eurid(self.ext_directory)
        self.traficom_schema = load_traficom_schema(self.ext_directory) if self.ext_directory is not None else None
        if not self.eurid_schema or self.traficom_schema is None:
            log.warning("EPP sandbox: registry extension schemas missing in %s; hand checks only", ext)
        self._hand_checked = {**HAND_CHECKED, **({} if self.eurid_schema else FALLBACK_CHECKED)}
        # An XMLSchema object keeps its error log as state; one validation at a time per validator.
        self._lock = threading.Lock()

    def errors(self, frame: bytes | etree._Element) -> list[str]:
        """All problems with ``frame``; an empty list means valid."""
        if isinstance(frame, bytes):
            try:
                root = parse_document(frame)
            except EppXmlError as exc:
                return [str(exc)]
        else:
            root = copy.deepcopy(frame)
        kind = frame_kind(root)
        with self._lock:  # check_traficom validates against the shared Traficom schema object
            errors: list[str] = check_traficom(root, kind, self.traficom_schema)  # .fi members, removed
        for extension in root.iter(_q(NS_EPP, "extension")):
            for child in list(extension):
                if not isinstance(child.tag, str):
                    continue
                check = self._hand_checked.get(etree.QName(child).namespace or "")
                if check is not None:
                    errors.extend(check(child, kind))
                    extension.remove(child)
            if not any(isinstance(child.tag, str) for child in extension):
                parent = extension.getparent()
                if parent is not None:
                    parent.remove(extension)
        with self._lock:
            if not self._schema.validate(root):
                log_entries = cast("Iterable[Any]", self._schema.error_log)  # lxml-stubs omit __iter__
                errors.extend(f"line {e.line}: {e.message}" for e in log_entries)
        return errors

    def is_valid(self, frame: bytes | etree._Element) -> bool:
        return not self.errors(frame)


# ------------------------------------------------------------------------------------------------
# fault injection


class Faults:
    """Misbehaviour to inject, settable from any thread while the sandbox runs.

    Command types are ``"login"``, ``"logout"``, ``"hello"``, ``"poll"``, ``"contact:create"``,
    ``"contact:update"``, ``"domain:create"``, ``"domain:transfer"`` and so on.  Every injection
    fires ``times`` times (``None``: until ``clear()``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: dict[str, tuple[int, int | None]] = {}
        self._stall: dict[str, tuple[float, int | None]] = {}
        self._drop: dict[str, int | None] = {}
        self._drop_after: dict[str, int | None] = {}
        self._reject_login = False

    def fail_next(self, command: str, code: int, times: int | None = 1) -> None:
        """Answer ``code`` to the next ``times`` commands of this type, without applying them."""
        with self._lock:
            self._fail[command] = (code, times)

    def stall_seconds(self, command: str, seconds: float, times: int | None = 1) -> None:
        """Apply the command, then wait before answering: a registry that committed and then hung."""
        with self._lock:
            self._stall[command] = (seconds, times)

    def drop_connection_on(self, command: str, times: int | None = 1) -> None:
        """Close the connection on receipt of this command type, without applying or answering it."""
        with self._lock:
            self._drop[command] = times

    def drop_after_applying(self, command: str, times: int | None = 1) -> None:
        """Apply the command, then close the connection without answering (a crash mid-response)."""
        with self._lock:
            self._drop_after[command] = times

    @property
    def reject_login(self) -> bool:
        """Answer every login with 2200 (as for a wrong password) while set."""
        with self._lock:
            return self._reject_login

    @reject_login.setter
    def reject_login(self, value: bool) -> None:
        with self._lock:
            self._reject_login = value

    def clear(self) -> None:
        with self._lock:
            self._fail.clear()
            self._stall.clear()
            self._drop.clear()
            self._drop_after.clear()
            self._reject_login = False

    # -- consumed by the server --

    @staticmethod
    def _decrement(remaining: int | None) -> tuple[bool, int | None]:
        if remaining is None:
            return True, None
        return remaining > 1, remaining - 1

    def take_failure(self, command: str) -> int | None:
        with self._lock:
            entry = self._fail.get(command)
            if entry is None:
                return None
            code, remaining = entry
            keep, left = self._decrement(remaining)
            if keep:
                self._fail[command] = (code, left)
            else:
                del self._fail[command]
            return code

    def take_stall(self, command: str) -> float:
        with self._lock:
            entry = self._stall.get(command)
            if entry is None:
                return 0.0
            seconds, remaining = entry
            keep, left = self._decrement(remaining)
            if keep:
                self._stall[command] = (seconds, left)
            else:
                del self._stall[command]
            return seconds

    def _take(self, table: dict[str, int | None], command: str) -> bool:
        with self._lock:
            if command not in table:
                return False
            keep, left = self._decrement(table[command])
            if keep:
                table[command] = left
            else:
                del table[command]
            return True

    def take_drop(self, command: str) -> bool:
        return self._take(self._drop, command)

    def take_drop_after(self, command: str) -> bool:
        return self._take(self._drop_after, command)


# ------------------------------------------------------------------------------------------------
# the server


@dataclass(frozen=True)
class CommandRecord:
    """One inbound frame as the registry saw it (``at`` is ``time.monotonic()`` on receipt)."""

    at: float
    kind: str
    cl_trid: str | None
    code: int | None  # None: no answer (dropped, or a hello answered with a greeting)
    connection: int
    client_id: str | None
    op: str | None = None  # transfer / poll op
    dropped: bool = False


@dataclass
class _Session:
    serial: int
    client_id: str | None = None
    obj_uris: frozenset[str] = frozenset()
    ext_uris: frozenset[str] = frozenset()
    counted: bool = False  # holds a slot of the per-registrar session limit


@dataclass
class _Reply:
    frame: bytes | None
    code: int | None = None
    close: bool = False
    stall: float = 0.0
    dropped: bool = False


@dataclass
class _Parsed:
    root: etree._Element | None
    kind: str  # "hello", "login", "domain:create", ... or "invalid"
    cl_trid: str | None
    verb: etree._Element | None = None  # e.g. <transfer op="request">, <poll op="req">
    body: etree._Element | None = None  # the object element, e.g. <domain:create>
    extension: etree._Element | None = None
    errors: list[str] = field(default_factory=list)


_Handler = Callable[[etree._Element, etree._Element | None, str | None], Outcome]


class RegistrySandbox(ObjectStore):
    """In-memory EPP registry on loopback; see the module docstring for why it is this strict."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        pki: DevPki,
        client_id: str = "registrar1",
        password: str = DEFAULT_PASSWORD,
        validate_schemas: bool = True,
        require_client_cert: bool = True,
        schema_directory: Path | None = None,
        max_sessions: int | None = None,
        accounts: Mapping[str, str] | None = None,
        validate_responses: bool | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self._requested_port = port
        self.pki = pki
        self.client_id = client_id
        self.password = password
        self.accounts: dict[str, str] = {client_id: password, **(accounts or {})}
        self.require_client_cert = require_client_cert
        self.validator = FrameValidator(schema_directory) if validate_schemas else None
        self.validate_responses = validate_schemas if validate_responses is None else validate_responses
        self.max_sessions = max_sessions
        self.faults = Faults()
        self.frames: list[bytes] = []
        self.commands: list[CommandRecord] = []
        self.schema_errors: list[str] = []
        self.login_attempts = 0
        self.session_limit_refusals = 0
        self.peak_sessions = 0
        self.connections_opened = 0
        self._active: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._sv_trids = itertools.count(1)
        self._serials = itertools.count(1)
        self._port: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox not started")
        return self._port

    @property
    def active_sessions(self) -> int:
        """Logged-in sessions right now, all registrars together."""
        return sum(self._active.values())

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.pki.ca_cert)
        return ctx

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self._requested_port, ssl=self._ssl_context()
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("EPP sandbox listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> RegistrySandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def disconnect_all(self) -> int:
        """Close every open connection (a registry restart); returns how many were closed."""
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        return len(writers)

    def endpoint(
        self,
        *,
        client_id: str | None = None,
        password: str | None = None,
        client_cert: bool = True,
        timeout_s: float = 5.0,
    ) -> Endpoint:
        """An ``Endpoint`` that reaches this sandbox with the dev PKI (convenience for tests)."""
        cid = client_id or self.client_id
        return Endpoint(
            host=self.host,
            port=self.port,
            client_id=cid,
            password=self.accounts.get(cid, self.password) if password is None else password,
            ca_file=str(self.pki.ca_cert),
            cert_file=str(self.pki.client_cert) if client_cert else None,
            key_file=str(self.pki.client_key) if client_cert else None,
            server_name="localhost",
            timeout_s=timeout_s,
        )

    def commands_of(self, kind: str, *, code: int | None = None) -> list[CommandRecord]:
        """Recorded commands of one type (optionally only those answered ``code``)."""
        return [c for c in self.commands if c.kind == kind and (code is None or c.code == code)]

    # ---- connection handling -------------------------------------------------------------------

    async def _send(self, writer: asyncio.StreamWriter, frame: bytes, kind: str) -> None:
        if self.validate_responses and self.validator is not None:
            self.schema_errors.extend(f"response to {kind}: {e}" for e in self.validator.errors(frame))
        await write_frame(writer, frame)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self._writers.add(writer)
        self.connections_opened += 1
        session = _Session(serial=next(self._serials))
        try:
            await self._send(writer, self._greeting(), "connect")
            while True:
                try:
                    data = await read_frame(reader, MAX_INBOUND_FRAME)
                except (asyncio.IncompleteReadError, FrameError):
                    break
                received = time.monotonic()
                self.frames.append(data)
                parsed = self._classify(data)
                reply = await self._process(parsed, session)
                self.commands.append(
                    CommandRecord(
                        at=received,
                        kind=parsed.kind,
                        cl_trid=parsed.cl_trid,
                        code=reply.code,
                        connection=session.serial,
                        client_id=session.client_id,
                        op=parsed.verb.get("op") if parsed.verb is not None else None,
                        dropped=reply.dropped,
                    )
                )
                if reply.stall:
                    await asyncio.sleep(reply.stall)
                if reply.frame is not None:
                    await self._send(writer, reply.frame, parsed.kind)
                if reply.close:
                    break
        except (OSError, ssl.SSLError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # stop(): the sandbox is shutting down
        except Exception:
            log.exception("EPP sandbox connection handler failed")
        finally:
            self._release(session)
            self._writers.discard(writer)
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            if not writer.transport.is_closing():
                writer.transport.abort()

    def _release(self, session: _Session) -> None:
        if session.counted and session.client_id is not None:
            self._active[session.client_id] -= 1
            session.counted = False

    def _classify(self, data: bytes) -> _Parsed:
        try:
            root = parse_document(data)
        except EppXmlError as exc:
            return _Parsed(root=None, kind="invalid", cl_trid=None, errors=[str(exc)])
        kind = frame_kind(root)
        top = next((c for c in root if isinstance(c.tag, str)), None)
        if top is None or kind == "invalid":
            cl_trid = _text_or_none(top, "epp:clTRID")
            return _Parsed(root=root, kind="invalid", cl_trid=cl_trid, errors=["empty epp element or command"])
        if top.tag != _q(NS_EPP, "command"):
            return _Parsed(root=root, kind=kind, cl_trid=None)
        verb = next(c for c in top if isinstance(c.tag, str))
        body = next((c for c in verb if isinstance(c.tag, str)), None)
        return _Parsed(
            root=root,
            kind=kind,
            cl_trid=text(top, "epp:clTRID"),
            verb=verb,
            body=verb if kind in ("login", "logout", "poll") else body,
            extension=top.find("epp:extension", NSMAP),
        )

    def _reply(
        self,
        code: int,
        cl_trid: str | None,
        outcome: Outcome | None = None,
        *,
        stall: float = 0.0,
        close: bool = False,
    ) -> _Reply:
        frame = self._response(
            code,
            cl_trid,
            outcome.res_data if outcome is not None else None,
            outcome.msg_q if outcome is not None else None,
        )
        return _Reply(frame, code=code, stall=stall, close=close or code in CLOSING_CODES)

    async def _process(self, parsed: _Parsed, session: _Session) -> _Reply:
        cl_trid = parsed.cl_trid if parsed.cl_trid and _valid_trid(parsed.cl_trid) else None
        kind = parsed.kind
        if kind == "login":
            self.login_attempts += 1
        errors = parsed.errors
        if not errors and self.validator is not None and parsed.root is not None:
            errors = self.validator.errors(parsed.root)
        if errors:
            self.schema_errors.extend(f"{kind}: {error}" for error in errors)
            log.warning("EPP sandbox answered 2001 to an invalid frame (%s)", kind)
            return self._reply(2001, cl_trid)

        if self.faults.take_drop(kind):
            return _Reply(None, close=True, dropped=True)
        if kind == "hello":
            return _Reply(self._greeting())
        injected = self.faults.take_failure(kind)
        if injected is not None:
            return self._reply(injected, cl_trid)
        if kind == "login":
            reply = self._login(parsed, session, cl_trid)
            reply.stall = self.faults.take_stall(kind)
            return reply
        if session.client_id is None:
            return self._reply(2002, cl_trid)
        if kind == "logout":
            self._release(session)
            return self._reply(1500, cl_trid, close=True)
        if kind == "poll":
            assert parsed.verb is not None
            outcome = self.poll(parsed.verb.get("op") or "", parsed.verb.get("msgID"), session.client_id)
            return self._reply(outcome.code, cl_trid, outcome, stall=self.faults.take_stall(kind))

        handler = self._handler(kind, parsed)
        if handler is None:
            if kind in ("greeting", "response", "extension"):
                return self._reply(2000, cl_trid)
            return self._reply(2101, cl_trid)
        ext_children = list(parsed.extension) if parsed.extension is not None else []
        used = {etree.QName(c).namespace for c in ext_children if isinstance(c.tag, str)}
        if not used <= session.ext_uris:
            return self._reply(2103, cl_trid)
        object_ns = {"contact": NS_CONTACT, "domain": NS_DOMAIN, "host": NS_HOST}[kind.split(":")[0]]
        if object_ns not in session.obj_uris:
            return self._reply(2307, cl_trid)
        assert parsed.body is not None
        outcome = handler(parsed.body, parsed.extension, session.client_id)
        if self.faults.take_drop_after(kind):
            # Applied, then the connection dies before the answer leaves.
            return _Reply(None, code=outcome.code, close=True, dropped=True)
        # Applied first, stalled afterwards: the client sees a timeout for a command that happened.
        return self._reply(outcome.code, cl_trid, outcome, stall=self.faults.take_stall(kind))

    def _handler(self, kind: str, parsed: _Parsed) -> _Handler | None:
        if kind == "domain:transfer":
            op = parsed.verb.get("op") if parsed.verb is not None else None
            return lambda body, ext, client_id: self.domain_transfer(op or "", body, ext, client_id)
        handlers: dict[str, _Handler] = {
            "contact:create": self.contact_create,
            "contact:info": self.contact_info,
            "contact:update": self.contact_update,
            "contact:delete": self.contact_delete,
            "domain:check": self.domain_check,
            "domain:create": self.domain_create,
            "domain:info": self.domain_info,
            "domain:update": self.domain_update,
            "domain:delete": self.domain_delete,
            "domain:renew": self.domain_renew,
        }
        return handlers.get(kind)

    def _login(self, parsed: _Parsed, session: _Session, cl_trid: str | None) -> _Reply:
        assert parsed.body is not None
        if session.client_id is not None:
            return self._reply(2002, cl_trid)
        client_id = text(parsed.body, "epp:clID")
        password = text(parsed.body, "epp:pw")
        if self.faults.reject_login or client_id is None or self.accounts.get(client_id) != password:
            log.info("EPP sandbox refused a login")
            return self._reply(2200, cl_trid, close=True)
        if self.max_sessions is not None and self._active[client_id] >= self.max_sessions:
            self.session_limit_refusals += 1
            log.info("EPP sandbox refused a session over the limit of %d", self.max_sessions)
            return self._reply(2502, cl_trid, close=True)
        obj_uris = frozenset(texts(parsed.body, "epp:svcs/epp:objURI"))
        ext_uris = frozenset(texts(parsed.body, "epp:svcs/epp:svcExtension/epp:extURI"))
        if not obj_uris <= set(OBJ_URIS):
            return self._reply(2307, cl_trid)
        if not ext_uris <= set(EXT_URIS):
            return self._reply(2103, cl_trid)
        session.client_id = client_id
        session.obj_uris = obj_uris
        session.ext_uris = ext_uris
        session.counted = True
        self._active[client_id] += 1
        self.peak_sessions = max(self.peak_sessions, self._active[client_id])
        return self._reply(1000, cl_trid)

    # ---- frames ----------------------------------------------------------------------------------

    def _greeting(self) -> bytes:
        return build_greeting(SV_ID, xs_datetime(now()), OBJ_URIS, EXT_URIS)

    def _response(
        self,
        code: int,
        cl_trid: str | None,
        res_data: etree._Element | None = None,
        msg_q: etree._Element | None = None,
    ) -> bytes:
        message = MESSAGES.get(code, "Command failed")
        sv_trid = f"SBX-{next(self._sv_trids):08d}"
        return build_response(code, message, cl_trid, sv_trid, res_data=res_data, msg_q=msg_q)


def _text_or_none(el: etree._Element | None, path: str) -> str | None:
    return text(el, path) if el is not None else None


def _valid_trid(value: str) -> bool:
    return 3 <= len(value) <= 64 and token(value)


# ------------------------------------------------------------------------------------------------
# running outside an event loop


class SandboxThread:
    """Run a ``RegistrySandbox`` on its own event loop in a daemon thread.

    Synchronous tests (and tests that start the gateway in another process) need a registry that
    keeps answering while the test thread blocks; sharing the test's loop cannot do that.
    """

    def __init__(self, *, pki: DevPki, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.sandbox = RegistrySandbox(host, port, pki=pki, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.sandbox.port

    @property
    def faults(self) -> Faults:
        return self.sandbox.faults

    def endpoint(self, **kwargs: Any) -> Endpoint:
        return self.sandbox.endpoint(**kwargs)

    def start(self, timeout: float = 10.0) -> RegistrySandbox:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="epp-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("EPP sandbox did not start")
        if self._error is not None:
            raise RuntimeError("EPP sandbox failed to start") from self._error
        return self.sandbox

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.sandbox.start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self.sandbox.stop()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread, stopping = self._loop, self._thread, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed: the thread is finishing
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("EPP sandbox thread did not stop")
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None, *, persistent: Callable[..., RegistrySandbox] | None = None) -> int:
    """``python -m adapters.epp.sandbox``: serve until SIGTERM/SIGINT; prints the bound port on stdout.

    ``persistent`` builds the sandbox when ``--state-dir`` is given (``persist.PersistentSandbox``, passed
    in by ``__main__`` because ``persist`` builds on this module).

    The defaults are the gateway's own (``GATEWAY_SANDBOX_HOST``/``_PORT``, ``GATEWAY_REGISTRAR_CLIENT_ID``/
    ``_PASSWORD``, the PKI under ``GATEWAY_VAR_DIR``), so this process and a ``gateway run`` or ``gateway
    serve`` started with the same environment agree on where and how to log in."""
    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m adapters.epp.sandbox", description="Run the EPP sandbox registry."
    )
    parser.add_argument("--host", default=settings.sandbox_host)
    parser.add_argument("--port", type=int, default=settings.sandbox_port)
    parser.add_argument("--pki-dir", type=Path, default=settings.resolved_pki())
    parser.add_argument("--client-id", default=settings.registrar_client_id)
    parser.add_argument(
        "--password",
        default=os.environ.get("GATEWAY_SANDBOX_PASSWORD", settings.registrar_password),
        help="login password (default: $GATEWAY_SANDBOX_PASSWORD, else the gateway's GATEWAY_REGISTRAR_PASSWORD)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None,
        help="keep the registry's objects in DIR/objects.json across restarts (default: in memory only)",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip XSD validation of inbound frames")
    parser.add_argument("--no-client-cert", action="store_true", help="do not require a client certificate")
    parser.add_argument(
        "--max-sessions", type=int, default=None, help="per-registrar session limit (the next login gets 2502)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def serve() -> None:
        options: dict[str, Any] = dict(
            pki=ensure_dev_pki(args.pki_dir),
            client_id=args.client_id,
            password=args.password,
            validate_schemas=not args.no_validate,
            require_client_cert=not args.no_client_cert,
            max_sessions=args.max_sessions,
        )
        if args.state_dir is not None:
            if persistent is None:
                raise SystemExit("--state-dir: run as python -m adapters.epp.sandbox")
            sandbox: RegistrySandbox = persistent(args.host, args.port, state_dir=args.state_dir, **options)
        else:
            sandbox = RegistrySandbox(args.host, args.port, **options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sandbox.start()
        print(f"EPP sandbox listening on {args.host}:{sandbox.port}", flush=True)
        try:
            await stop.wait()
        finally:
            await sandbox.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
