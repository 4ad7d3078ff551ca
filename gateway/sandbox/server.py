"""A small but real EPP registry for tests and local runs.

It speaks RFC 5734 over TLS with client-certificate authentication, validates every inbound frame
against the official XSDs, keeps objects in memory and can be told to misbehave (fail, stall,
drop).  The point is that the client is tested against the same transport, framing and schema rules
a registry enforces, not against a mock that agrees with whatever the client sends.

Because epp-1.0.xsd validates <extension> children strictly and the iis-1.2 and EURid schemas are
not redistributable, those two extensions are checked by hand here (from the facts in
``shared/reference/registries.md``) and removed before XSD validation; dkhm-4.5 is validated by
its real schema.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import datetime as dt
import itertools
import logging
import os
import re
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, cast

from lxml import etree

from adapters.epp.framing import FrameError, read_frame, write_frame
from adapters.epp.tls import DevPki, ensure_dev_pki
from adapters.epp.types import Endpoint
from adapters.epp.xml import (
    NS_CONTACT,
    NS_DKHM,
    NS_DOMAIN,
    NS_EPP,
    NS_EURID_CONTACT,
    NS_HOST,
    NS_IIS,
    NSMAP,
    EppXmlError,
    parse_document,
)

log = logging.getLogger(__name__)

SCHEMA_ENV: Final = "GATEWAY_EPP_SCHEMAS"
DEFAULT_PASSWORD: Final = "sandbox-secret"  # noqa: S105 - a throw-away test registry's login
SV_ID: Final = "Registrant Gateway EPP sandbox"
OBJ_URIS: Final = (NS_CONTACT, NS_DOMAIN, NS_HOST)
EXT_URIS: Final = (NS_IIS, NS_EURID_CONTACT, NS_DKHM)
MAX_INBOUND_FRAME: Final = 1024 * 1024

MESSAGES: Final = {
    1000: "Command completed successfully",
    1001: "Command completed successfully; action pending",
    1500: "Command completed successfully; ending session",
    2000: "Unknown command",
    2001: "Command syntax error",
    2002: "Command use error",
    2003: "Required parameter missing",
    2004: "Parameter value range error",
    2005: "Parameter value syntax error",
    2101: "Unimplemented command",
    2103: "Unimplemented extension",
    2200: "Authentication error",
    2201: "Authorization error",
    2302: "Object exists",
    2303: "Object does not exist",
    2305: "Object association prohibits operation",
    2306: "Parameter value policy error",
    2307: "Unimplemented object service",
    2400: "Command failed",
    2500: "Command failed; server closing connection",
    2501: "Authentication error; server closing connection",
    2502: "Session limit exceeded; server closing connection",
}

_IIS_ORGNO: Final = re.compile(r"^\[[A-Z]{2}\].+$")
_TOKEN: Final = re.compile(r"^\S+( \S+)*$")
_LANGUAGE: Final = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_COUNTRY: Final = re.compile(r"^[A-Z]{2}$")
_BOOLEAN: Final = frozenset({"true", "false", "1", "0"})
_EURID_TYPES: Final = frozenset({"registrant", "tech", "billing", "onsite", "reseller"})


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _xs_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.0Z")


def _add_years(value: dt.datetime, years: int) -> dt.datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February into a non-leap year
        return value.replace(year=value.year + years, day=28)


# ------------------------------------------------------------------------------------------------
# schema validation


def schema_dir() -> Path:
    """Where the official XSDs live: ``$GATEWAY_EPP_SCHEMAS`` or ``<repo>/../shared/epp-schemas``."""
    override = os.environ.get(SCHEMA_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "epp-schemas"


@lru_cache(maxsize=4)
def _load_schema(directory: Path) -> etree.XMLSchema:
    for name in ("all.xsd", "dkhm-4.5.xsd"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"EPP schema {name} not found in {directory} (set {SCHEMA_ENV})")
    # all.xsd and dkhm-4.5.xsd have different target namespaces, so one in-memory wrapper imports
    # both by absolute URI; libxml2 loads the shared epp/eppcom/contact imports once.
    wrapper = (
        '<schema xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:local:registrant-gateway">'
        f'<import namespace="urn:local:epp-all" schemaLocation="{(directory / "all.xsd").as_uri()}"/>'
        f'<import namespace="{NS_DKHM}" schemaLocation="{(directory / "dkhm-4.5.xsd").as_uri()}"/>'
        "</schema>"
    )
    return etree.XMLSchema(etree.fromstring(wrapper.encode()))


_Check = Callable[[str], bool]


def _check_sequence(
    el: etree._Element, ns: str, spec: Sequence[tuple[str, bool, _Check]], where: str
) -> list[str]:
    """Check ``el``'s children against an ordered (name, required, text check) list, XSD-style."""
    errors: list[str] = []
    if el.attrib:
        errors.append(f"{where}: unexpected attributes")
    if (el.text or "").strip():
        errors.append(f"{where}: unexpected text")
    children = [child for child in el if isinstance(child.tag, str)]
    i = 0
    for name, required, check in spec:
        if i < len(children) and children[i].tag == _q(ns, name):
            child = children[i]
            i += 1
            if len(child) or child.attrib:
                errors.append(f"{where}/{name}: must be a simple element")
            elif not check(child.text or ""):
                errors.append(f"{where}/{name}: invalid value")
        elif required:
            errors.append(f"{where}: missing required element {name}")
    for child in children[i:]:
        errors.append(f"{where}: unexpected element {etree.QName(child).localname}")
    return errors


def _token(value: str) -> bool:
    return bool(_TOKEN.match(value))


def _check_iis(el: etree._Element) -> list[str]:
    if el.tag != _q(NS_IIS, "create"):
        return [f"iis: unexpected element {etree.QName(el).localname}"]
    spec: list[tuple[str, bool, _Check]] = [
        ("orgno", True, lambda v: bool(_IIS_ORGNO.match(v))),
        ("vatno", False, _token),
    ]
    return _check_sequence(el, NS_IIS, spec, "iis:create")


def _check_eurid(el: etree._Element) -> list[str]:
    if el.tag != _q(NS_EURID_CONTACT, "create"):
        return [f"contact-ext: unexpected element {etree.QName(el).localname}"]
    spec: list[tuple[str, bool, _Check]] = [
        ("type", True, lambda v: v in _EURID_TYPES),
        ("vat", False, _token),
        ("lang", False, lambda v: bool(_LANGUAGE.match(v))),
        ("whoisEmail", False, _token),
        ("naturalPerson", True, lambda v: v in _BOOLEAN),
        ("countryOfCitizenship", False, lambda v: bool(_COUNTRY.match(v))),
    ]
    return _check_sequence(el, NS_EURID_CONTACT, spec, "contact-ext:create")


_HAND_CHECKED: Final[dict[str, Callable[[etree._Element], list[str]]]] = {
    NS_IIS: _check_iis,
    NS_EURID_CONTACT: _check_eurid,
}


class FrameValidator:
    """Validate whole EPP frames against the official schemas plus hand-checked iis/EURid elements."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or schema_dir()).resolve()
        self._schema = _load_schema(self.directory)
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
        errors: list[str] = []
        for extension in root.iter(_q(NS_EPP, "extension")):
            for child in list(extension):
                if not isinstance(child.tag, str):
                    continue
                check = _HAND_CHECKED.get(etree.QName(child).namespace or "")
                if check is not None:
                    errors.extend(check(child))
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

    Command types are ``"login"``, ``"logout"``, ``"hello"``, ``"contact:create"``,
    ``"contact:info"``, ``"domain:create"``, ``"domain:info"`` and so on.  Every injection fires
    ``times`` times (``None``: until ``clear()``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: dict[str, tuple[int, int | None]] = {}
        self._stall: dict[str, tuple[float, int | None]] = {}
        self._drop: dict[str, int | None] = {}
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

    def take_drop(self, command: str) -> bool:
        with self._lock:
            if command not in self._drop:
                return False
            keep, left = self._decrement(self._drop[command])
            if keep:
                self._drop[command] = left
            else:
                del self._drop[command]
            return True


# ------------------------------------------------------------------------------------------------
# the server


@dataclass
class _Session:
    client_id: str | None = None
    obj_uris: frozenset[str] = frozenset()
    ext_uris: frozenset[str] = frozenset()


@dataclass
class _Reply:
    frame: bytes | None
    close: bool = False
    stall: float = 0.0


@dataclass
class _Parsed:
    root: etree._Element | None
    kind: str  # "hello", "login", "domain:create", ... or "invalid"
    cl_trid: str | None
    body: etree._Element | None = None  # the object element, e.g. <domain:create>
    extension: etree._Element | None = None
    errors: list[str] = field(default_factory=list)


def _text(el: etree._Element, path: str) -> str | None:
    value = el.findtext(path, namespaces=NSMAP)
    return value.strip() if value is not None else None


def _texts(el: etree._Element, path: str) -> list[str]:
    return [(child.text or "").strip() for child in el.findall(path, namespaces=NSMAP)]


def _parse_extension(extension: etree._Element | None) -> dict[str, dict[str, str]]:
    """Flatten <extension> into {namespace: {local name: text}} for tests to assert on."""
    parsed: dict[str, dict[str, str]] = {}
    if extension is None:
        return parsed
    for child in extension:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        target = parsed.setdefault(qname.namespace or "", {})
        elements = [g for g in child if isinstance(g.tag, str)]
        if elements:
            for grandchild in elements:
                target[etree.QName(grandchild).localname] = (grandchild.text or "").strip()
        else:
            target[qname.localname] = (child.text or "").strip()
    return parsed


class RegistrySandbox:
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
    ) -> None:
        self.host = host
        self._requested_port = port
        self.pki = pki
        self.client_id = client_id
        self.password = password
        self.require_client_cert = require_client_cert
        self.validator = FrameValidator(schema_directory) if validate_schemas else None
        self.faults = Faults()
        self.domains: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.frames: list[bytes] = []
        self.schema_errors: list[str] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._sv_trids = itertools.count(1)
        self._roids = itertools.count(1)
        self._port: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox not started")
        return self._port

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

    def endpoint(
        self,
        *,
        client_id: str | None = None,
        password: str | None = None,
        client_cert: bool = True,
        timeout_s: float = 5.0,
    ) -> Endpoint:
        """An ``Endpoint`` that reaches this sandbox with the dev PKI (convenience for tests)."""
        return Endpoint(
            host=self.host,
            port=self.port,
            client_id=client_id or self.client_id,
            password=self.password if password is None else password,
            ca_file=str(self.pki.ca_cert),
            cert_file=str(self.pki.client_cert) if client_cert else None,
            key_file=str(self.pki.client_key) if client_cert else None,
            server_name="localhost",
            timeout_s=timeout_s,
        )

    # ---- seeding (for tests of foreign-sponsor paths) -------------------------------------------

    def seed_contact(self, contact_id: str, *, cl_id: str) -> None:
        """Put a placeholder contact sponsored by ``cl_id`` into the registry."""
        self.contacts[contact_id] = {
            "id": contact_id,
            "roid": self._roid("C"),
            "postal_info": [
                {
                    "type": "loc",
                    "name": "Seeded",
                    "org": None,
                    "street": [],
                    "city": "Stockholm",
                    "sp": None,
                    "pc": None,
                    "cc": "SE",
                }
            ],
            "voice": None,
            "fax": None,
            "email": "seeded@example.invalid",
            "auth_pw": "seeded-pw",
            "disclose": None,
            "extensions": {},
            "cl_id": cl_id,
            "cr_id": cl_id,
            "cr_date": _xs_datetime(_now()),
        }

    def seed_domain(self, name: str, *, cl_id: str, registrant: str | None = None) -> None:
        """Put a domain sponsored by ``cl_id`` into the registry."""
        now = _now()
        self.domains[name.lower()] = {
            "name": name.lower(),
            "roid": self._roid("D"),
            "period": 1,
            "ns": [],
            "registrant": registrant,
            "contacts": [],
            "auth_pw": "seeded-pw",
            "extensions": {},
            "cl_id": cl_id,
            "cr_id": cl_id,
            "cr_date": _xs_datetime(now),
            "ex_date": _xs_datetime(_add_years(now, 1)),
        }

    # ---- connection handling -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        session = _Session()
        try:
            await write_frame(writer, self._greeting())
            while True:
                try:
                    data = await read_frame(reader, MAX_INBOUND_FRAME)
                except (asyncio.IncompleteReadError, FrameError):
                    break
                self.frames.append(data)
                reply = await self._process(data, session)
                if reply.stall:
                    await asyncio.sleep(reply.stall)
                if reply.frame is not None:
                    await write_frame(writer, reply.frame)
                if reply.close:
                    break
        except (OSError, ssl.SSLError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # stop(): the sandbox is shutting down
        except Exception:
            log.exception("EPP sandbox connection handler failed")
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            if not writer.transport.is_closing():
                writer.transport.abort()

    def _classify(self, data: bytes) -> _Parsed:
        try:
            root = parse_document(data)
        except EppXmlError as exc:
            return _Parsed(root=None, kind="invalid", cl_trid=None, errors=[str(exc)])
        top = next((c for c in root if isinstance(c.tag, str)), None)
        if top is None:
            return _Parsed(root=root, kind="invalid", cl_trid=None, errors=["empty epp element"])
        if top.tag == _q(NS_EPP, "hello"):
            return _Parsed(root=root, kind="hello", cl_trid=None)
        if top.tag != _q(NS_EPP, "command"):
            return _Parsed(root=root, kind=etree.QName(top).localname, cl_trid=None)
        cl_trid = _text(top, "epp:clTRID")
        verb = next((c for c in top if isinstance(c.tag, str)), None)
        extension = top.find("epp:extension", NSMAP)
        if verb is None:
            return _Parsed(root=root, kind="invalid", cl_trid=cl_trid, errors=["empty command"])
        verb_name = etree.QName(verb).localname
        if verb_name in ("login", "logout", "poll"):
            return _Parsed(root=root, kind=verb_name, cl_trid=cl_trid, body=verb, extension=extension)
        body = next((c for c in verb if isinstance(c.tag, str)), None)
        obj = {NS_CONTACT: "contact", NS_DOMAIN: "domain", NS_HOST: "host"}.get(
            etree.QName(body).namespace or "" if body is not None else "", "unknown"
        )
        return _Parsed(root=root, kind=f"{obj}:{verb_name}", cl_trid=cl_trid, body=body, extension=extension)

    async def _process(self, data: bytes, session: _Session) -> _Reply:
        parsed = self._classify(data)
        cl_trid = parsed.cl_trid if parsed.cl_trid and _valid_trid(parsed.cl_trid) else None
        errors = parsed.errors
        if not errors and self.validator is not None and parsed.root is not None:
            errors = self.validator.errors(parsed.root)
        if errors:
            self.schema_errors.extend(f"{parsed.kind}: {error}" for error in errors)
            log.warning("EPP sandbox answered 2001 to an invalid frame (%s)", parsed.kind)
            return _Reply(self._response(2001, cl_trid))

        kind = parsed.kind
        if self.faults.take_drop(kind):
            return _Reply(None, close=True)
        if kind == "hello":
            return _Reply(self._greeting())
        injected = self.faults.take_failure(kind)
        if injected is not None:
            return _Reply(self._response(injected, cl_trid), close=injected in (2500, 2501, 2502))
        if kind == "login":
            reply = self._login(parsed, session, cl_trid)
            reply.stall = self.faults.take_stall(kind)
            return reply
        if session.client_id is None:
            return _Reply(self._response(2002, cl_trid))
        if kind == "logout":
            return _Reply(self._response(1500, cl_trid), close=True)

        handler = self._handlers().get(kind)
        if handler is None:
            if kind in ("greeting", "response", "extension"):
                return _Reply(self._response(2000, cl_trid))
            return _Reply(self._response(2101, cl_trid))
        ext_children = list(parsed.extension) if parsed.extension is not None else []
        used = {etree.QName(c).namespace for c in ext_children if isinstance(c.tag, str)}
        if not used <= session.ext_uris:
            return _Reply(self._response(2103, cl_trid))
        object_ns = {"contact": NS_CONTACT, "domain": NS_DOMAIN, "host": NS_HOST}[kind.split(":")[0]]
        if object_ns not in session.obj_uris:
            return _Reply(self._response(2307, cl_trid))
        assert parsed.body is not None
        code, res_data = handler(parsed.body, parsed.extension, session)
        # Applied first, stalled afterwards: the client sees a timeout for a command that happened.
        return _Reply(self._response(code, cl_trid, res_data), stall=self.faults.take_stall(kind))

    def _handlers(
        self,
    ) -> dict[
        str, Callable[[etree._Element, etree._Element | None, _Session], tuple[int, etree._Element | None]]
    ]:
        return {
            "contact:create": self._contact_create,
            "contact:info": self._contact_info,
            "domain:create": self._domain_create,
            "domain:info": self._domain_info,
        }

    def _login(self, parsed: _Parsed, session: _Session, cl_trid: str | None) -> _Reply:
        assert parsed.body is not None
        if session.client_id is not None:
            return _Reply(self._response(2002, cl_trid))
        client_id = _text(parsed.body, "epp:clID")
        password = _text(parsed.body, "epp:pw")
        if self.faults.reject_login or client_id != self.client_id or password != self.password:
            log.info("EPP sandbox refused a login")
            return _Reply(self._response(2200, cl_trid), close=True)
        obj_uris = frozenset(_texts(parsed.body, "epp:svcs/epp:objURI"))
        ext_uris = frozenset(_texts(parsed.body, "epp:svcs/epp:svcExtension/epp:extURI"))
        if not obj_uris <= set(OBJ_URIS):
            return _Reply(self._response(2307, cl_trid))
        if not ext_uris <= set(EXT_URIS):
            return _Reply(self._response(2103, cl_trid))
        session.client_id = client_id
        session.obj_uris = obj_uris
        session.ext_uris = ext_uris
        return _Reply(self._response(1000, cl_trid))

    # ---- object commands -----------------------------------------------------------------------

    def _roid(self, kind: str) -> str:
        return f"{kind}{next(self._roids)}-SBX"

    def _find_contact(self, contact_id: str) -> dict[str, Any] | None:
        folded = contact_id.casefold()
        return next((c for key, c in self.contacts.items() if key.casefold() == folded), None)

    def _contact_create(
        self, body: etree._Element, extension: etree._Element | None, session: _Session
    ) -> tuple[int, etree._Element | None]:
        contact_id = _text(body, "contact:id") or ""
        if self._find_contact(contact_id) is not None:
            return 2302, None
        postal = []
        for info in body.findall("contact:postalInfo", NSMAP):
            postal.append(
                {
                    "type": info.get("type"),
                    "name": _text(info, "contact:name"),
                    "org": _text(info, "contact:org"),
                    "street": _texts(info, "contact:addr/contact:street"),
                    "city": _text(info, "contact:addr/contact:city"),
                    "sp": _text(info, "contact:addr/contact:sp"),
                    "pc": _text(info, "contact:addr/contact:pc"),
                    "cc": _text(info, "contact:addr/contact:cc"),
                }
            )
        disclose_el = body.find("contact:disclose", NSMAP)
        disclose = None
        if disclose_el is not None:
            disclose = {
                "flag": disclose_el.get("flag"),
                "elements": [etree.QName(c).localname for c in disclose_el if isinstance(c.tag, str)],
            }
        now = _xs_datetime(_now())
        self.contacts[contact_id] = {
            "id": contact_id,
            "roid": self._roid("C"),
            "postal_info": postal,
            "voice": _text(body, "contact:voice"),
            "fax": _text(body, "contact:fax"),
            "email": _text(body, "contact:email"),
            "auth_pw": _text(body, "contact:authInfo/contact:pw"),
            "disclose": disclose,
            "extensions": _parse_extension(extension),
            "cl_id": session.client_id,
            "cr_id": session.client_id,
            "cr_date": now,
        }
        res = etree.Element(_q(NS_CONTACT, "creData"), nsmap={"contact": NS_CONTACT})
        _sub(res, NS_CONTACT, "id", contact_id)
        _sub(res, NS_CONTACT, "crDate", now)
        return 1000, res

    def _contact_info(
        self, body: etree._Element, extension: etree._Element | None, session: _Session
    ) -> tuple[int, etree._Element | None]:
        contact = self._find_contact(_text(body, "contact:id") or "")
        if contact is None:
            return 2303, None
        linked = any(
            d["registrant"] == contact["id"] or contact["id"] in (cid for _, cid in d["contacts"])
            for d in self.domains.values()
        )
        res = etree.Element(_q(NS_CONTACT, "infData"), nsmap={"contact": NS_CONTACT})
        _sub(res, NS_CONTACT, "id", contact["id"])
        _sub(res, NS_CONTACT, "roid", contact["roid"])
        _sub(res, NS_CONTACT, "status").set("s", "linked" if linked else "ok")
        for info in contact["postal_info"]:
            pi = _sub(res, NS_CONTACT, "postalInfo")
            pi.set("type", info["type"])
            _sub(pi, NS_CONTACT, "name", info["name"])
            if info["org"] is not None:
                _sub(pi, NS_CONTACT, "org", info["org"])
            addr = _sub(pi, NS_CONTACT, "addr")
            for line in info["street"]:
                _sub(addr, NS_CONTACT, "street", line)
            _sub(addr, NS_CONTACT, "city", info["city"])
            for name in ("sp", "pc"):
                if info[name] is not None:
                    _sub(addr, NS_CONTACT, name, info[name])
            _sub(addr, NS_CONTACT, "cc", info["cc"])
        for name in ("voice", "fax"):
            if contact[name] is not None:
                _sub(res, NS_CONTACT, name, contact[name])
        _sub(res, NS_CONTACT, "email", contact["email"])
        _sub(res, NS_CONTACT, "clID", contact["cl_id"])
        _sub(res, NS_CONTACT, "crID", contact["cr_id"])
        _sub(res, NS_CONTACT, "crDate", contact["cr_date"])
        if contact["cl_id"] == session.client_id and contact["auth_pw"]:
            _sub(_sub(res, NS_CONTACT, "authInfo"), NS_CONTACT, "pw", contact["auth_pw"])
        return 1000, res

    def _domain_create(
        self, body: etree._Element, extension: etree._Element | None, session: _Session
    ) -> tuple[int, etree._Element | None]:
        name = (_text(body, "domain:name") or "").lower()
        if name in self.domains:
            return 2302, None
        registrant = _text(body, "domain:registrant")
        contacts = [
            (c.get("type") or "", (c.text or "").strip()) for c in body.findall("domain:contact", NSMAP)
        ]
        referenced = ([registrant] if registrant else []) + [cid for _, cid in contacts]
        if any(self._find_contact(cid) is None for cid in referenced):
            return 2303, None
        period_el = body.find("domain:period", NSMAP)
        period = int((period_el.text or "1").strip()) if period_el is not None else 1
        now = _now()
        domain: dict[str, Any] = {
            "name": name,
            "roid": self._roid("D"),
            "period": period,
            "ns": _texts(body, "domain:ns/domain:hostObj"),
            "registrant": registrant,
            "contacts": contacts,
            "auth_pw": _text(body, "domain:authInfo/domain:pw"),
            "extensions": _parse_extension(extension),
            "cl_id": session.client_id,
            "cr_id": session.client_id,
            "cr_date": _xs_datetime(now),
            "ex_date": _xs_datetime(_add_years(now, period)),
        }
        self.domains[name] = domain
        res = etree.Element(_q(NS_DOMAIN, "creData"), nsmap={"domain": NS_DOMAIN})
        _sub(res, NS_DOMAIN, "name", name)
        _sub(res, NS_DOMAIN, "crDate", domain["cr_date"])
        _sub(res, NS_DOMAIN, "exDate", domain["ex_date"])
        return 1000, res

    def _domain_info(
        self, body: etree._Element, extension: etree._Element | None, session: _Session
    ) -> tuple[int, etree._Element | None]:
        domain = self.domains.get((_text(body, "domain:name") or "").lower())
        if domain is None:
            return 2303, None
        res = etree.Element(_q(NS_DOMAIN, "infData"), nsmap={"domain": NS_DOMAIN})
        _sub(res, NS_DOMAIN, "name", domain["name"])
        _sub(res, NS_DOMAIN, "roid", domain["roid"])
        _sub(res, NS_DOMAIN, "status").set("s", "ok")
        if domain["registrant"]:
            _sub(res, NS_DOMAIN, "registrant", domain["registrant"])
        for role, cid in domain["contacts"]:
            _sub(res, NS_DOMAIN, "contact", cid).set("type", role)
        if domain["ns"]:
            ns = _sub(res, NS_DOMAIN, "ns")
            for host in domain["ns"]:
                _sub(ns, NS_DOMAIN, "hostObj", host)
        _sub(res, NS_DOMAIN, "clID", domain["cl_id"])
        _sub(res, NS_DOMAIN, "crID", domain["cr_id"])
        _sub(res, NS_DOMAIN, "crDate", domain["cr_date"])
        _sub(res, NS_DOMAIN, "exDate", domain["ex_date"])
        if domain["cl_id"] == session.client_id and domain["auth_pw"]:
            _sub(_sub(res, NS_DOMAIN, "authInfo"), NS_DOMAIN, "pw", domain["auth_pw"])
        return 1000, res

    # ---- frames ----------------------------------------------------------------------------------

    def _greeting(self) -> bytes:
        root = _epp_root()
        greeting = _sub(root, NS_EPP, "greeting")
        _sub(greeting, NS_EPP, "svID", SV_ID)
        _sub(greeting, NS_EPP, "svDate", _xs_datetime(_now()))
        menu = _sub(greeting, NS_EPP, "svcMenu")
        _sub(menu, NS_EPP, "version", "1.0")
        _sub(menu, NS_EPP, "lang", "en")
        for uri in OBJ_URIS:
            _sub(menu, NS_EPP, "objURI", uri)
        ext = _sub(menu, NS_EPP, "svcExtension")
        for uri in EXT_URIS:
            _sub(ext, NS_EPP, "extURI", uri)
        dcp = _sub(greeting, NS_EPP, "dcp")
        _sub(_sub(dcp, NS_EPP, "access"), NS_EPP, "all")
        statement = _sub(dcp, NS_EPP, "statement")
        purpose = _sub(statement, NS_EPP, "purpose")
        _sub(purpose, NS_EPP, "admin")
        _sub(purpose, NS_EPP, "prov")
        recipient = _sub(statement, NS_EPP, "recipient")
        _sub(recipient, NS_EPP, "ours")
        _sub(recipient, NS_EPP, "public")
        _sub(_sub(statement, NS_EPP, "retention"), NS_EPP, "stated")
        return _serialize(root)

    def _response(self, code: int, cl_trid: str | None, res_data: etree._Element | None = None) -> bytes:
        root = _epp_root()
        response = _sub(root, NS_EPP, "response")
        result = _sub(response, NS_EPP, "result")
        result.set("code", str(code))
        _sub(result, NS_EPP, "msg", MESSAGES.get(code, "Command failed"))
        if res_data is not None:
            _sub(response, NS_EPP, "resData").append(res_data)
        tr_id = _sub(response, NS_EPP, "trID")
        if cl_trid is not None:
            _sub(tr_id, NS_EPP, "clTRID", cl_trid)
        _sub(tr_id, NS_EPP, "svTRID", f"SBX-{next(self._sv_trids):08d}")
        return _serialize(root)


def _valid_trid(value: str) -> bool:
    return 3 <= len(value) <= 64 and _token(value)


def _epp_root() -> etree._Element:
    return etree.Element(_q(NS_EPP, "epp"), nsmap={"epp": NS_EPP})


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name))
    if text is not None:
        el.text = text
    return el


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=False)


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gateway.sandbox``: serve until SIGTERM/SIGINT; prints the bound port on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sandbox", description="Run the EPP sandbox registry."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7700)
    parser.add_argument("--pki-dir", type=Path, default=Path("var/pki"))
    parser.add_argument("--client-id", default="registrar1")
    parser.add_argument(
        "--password",
        default=os.environ.get("GATEWAY_SANDBOX_PASSWORD", DEFAULT_PASSWORD),
        help="login password (default: $GATEWAY_SANDBOX_PASSWORD or a fixed dev value)",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip XSD validation of inbound frames")
    parser.add_argument("--no-client-cert", action="store_true", help="do not require a client certificate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def serve() -> None:
        sandbox = RegistrySandbox(
            args.host,
            args.port,
            pki=ensure_dev_pki(args.pki_dir),
            client_id=args.client_id,
            password=args.password,
            validate_schemas=not args.no_validate,
            require_client_cert=not args.no_client_cert,
        )
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
