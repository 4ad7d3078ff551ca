"""What ``EppClient`` speaks EPP over: connect, write a frame, read a frame, close.

``TlsTransport`` is the production one (RFC 5734: TLS 1.2+, the registry's CA pinned, our client
certificate, 4-byte length-prefixed frames).  ``RecordingTransport`` never touches a network: it
keeps every frame the client writes and answers from a script or a callable, so a unit test sees the
exact bytes a command produces (as httpx's ``MockTransport`` or epplib's ``Transport`` ABC allow).

The contract, which the client's error mapping relies on:

* ``connect`` raises ``PermanentDeliveryError`` when the connection can never work as configured
  (unusable TLS material, a server certificate that does not chain to the pinned CA);
* every method raises ``OSError``, ``EOFError`` or ``FrameError`` when the connection is lost or
  a frame is unreadable, and may raise ``TimeoutError``; the client turns these into transient
  errors naming the command, because only it knows which command was in flight;
* ``endpoint`` says which registry account the session logs in as, and ``endpoint.timeout_s`` is
  the deadline the client gives each network step: the connection (TCP, then the TLS handshake), the
  greeting, and each command with its answer.  ``TlsTransport`` bounds its own connect too, so no
  caller can forget to: a registry that accepts TCP and never answers costs a deadline, not a worker.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from lxml import etree

from adapters.epp.framing import DEFAULT_MAX_FRAME, read_frame, write_frame
from adapters.epp.types import Endpoint
from adapters.epp.xml import (
    NSMAP,
    SUPPORTED_EXT_URIS,
    SUPPORTED_OBJ_URIS,
    build_greeting,
    build_response,
    parse_document,
)
from gateway.errors import EppXmlError, PermanentDeliveryError

__all__ = [
    "RECORDING_ENDPOINT",
    "Answer",
    "RecordingTransport",
    "Responder",
    "TlsTransport",
    "Transport",
    "answer",
    "echo",
]


class Transport(abc.ABC):
    """One connection to a registry, frame by frame (see the module docstring for the contract)."""

    endpoint: Endpoint

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection; the server's greeting is the first frame ``read_frame`` returns."""

    @abc.abstractmethod
    async def read_frame(self) -> bytes:
        """The next frame's payload."""

    @abc.abstractmethod
    async def write_frame(self, frame: bytes) -> None:
        """Send one frame's payload (the transport adds any framing)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; safe to call at any time, more than once."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Connected, and the peer has not closed its side (a pool must not hand out a dead session)."""


# ---- TLS ------------------------------------------------------------------------------------------


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext:
    # With a cafile, create_default_context loads only that CA: the registry's CA is pinned and the
    # system trust store plays no part.
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=endpoint.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.cert_file:
        ctx.load_cert_chain(endpoint.cert_file, endpoint.key_file)
    return ctx


class TlsTransport(Transport):
    """RFC 5734 over TLS: pinned CA, client certificate, SNI/hostname check, capped frame size."""

    def __init__(
        self, endpoint: Endpoint, *, max_frame: int = DEFAULT_MAX_FRAME, connect_timeout_s: float | None = None
    ) -> None:
        self.endpoint = endpoint
        self._max_frame = max_frame
        #: the TCP connect and the TLS handshake are each bounded by this (default: the endpoint's timeout):
        #: a registry that accepts TCP and never completes the handshake must not hold a worker
        self.connect_timeout_s = connect_timeout_s if connect_timeout_s is not None else endpoint.timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        ep = self.endpoint
        try:
            ctx = _ssl_context(ep)
        except (OSError, ssl.SSLError) as exc:
            raise PermanentDeliveryError("EPP TLS material is unusable") from exc
        try:
            # The outer deadline covers DNS and TCP; the handshake has its own (asyncio's default is 60 s).
            async with asyncio.timeout(2 * self.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    ep.host, ep.port, ssl=ctx, server_hostname=ep.server_name or ep.host,
                    ssl_handshake_timeout=self.connect_timeout_s,
                )
        except ssl.SSLCertVerificationError as exc:
            # A certificate that does not chain to the pinned CA is a configuration or security
            # problem for a human, not something a retry fixes.
            raise PermanentDeliveryError("EPP server certificate failed verification") from exc

    async def read_frame(self) -> bytes:
        if self._reader is None:
            raise ConnectionError("EPP transport is not connected")
        return await read_frame(self._reader, self._max_frame)

    async def write_frame(self, frame: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("EPP transport is not connected")
        await write_frame(self._writer, frame)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(2.0):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            writer.transport.abort()

    @property
    def is_open(self) -> bool:
        if self._reader is None or self._writer is None:
            return False
        return not (self._reader.at_eof() or self._writer.is_closing())


# ---- recording ------------------------------------------------------------------------------------

Answer = bytes | BaseException
"""What a read returns: a frame, or an exception the read raises (``TimeoutError``, ``EOFError`` ...)."""

Responder = Callable[[bytes], Answer]
"""Gets each frame the client writes and returns the answer to it."""

RECORDING_ENDPOINT: Final = Endpoint(
    host="recording.invalid",
    port=700,
    client_id="registrar1",
    password="recorded-secret",  # noqa: S106 - nothing is ever sent anywhere with it
    timeout_s=5.0,
)
"""Who a ``RecordingTransport`` session logs in as unless told otherwise (``.invalid``: reaches nothing)."""

RECORDING_GREETING: Final = build_greeting(
    "Registrant Gateway recording transport", "2000-01-01T00:00:00.0Z", SUPPORTED_OBJ_URIS, SUPPORTED_EXT_URIS
)
"""A greeting offering every object service and extension the client supports."""


def _cl_trid(frame: bytes) -> str | None:
    try:
        return parse_document(frame).findtext("epp:command/epp:clTRID", namespaces=NSMAP)
    except EppXmlError:
        return None


def answer(
    frame: bytes,
    code: int = 1000,
    *,
    res_data: etree._Element | None = None,
    sv_trid: str = "REC-1",
    message: str = "recorded answer",
) -> bytes:
    """A <response> with ``code`` (and ``res_data``) to ``frame``, carrying its clTRID back as a registry would."""
    return build_response(code, message, _cl_trid(frame), sv_trid, res_data=res_data)


def echo(code: int = 1000) -> Responder:
    """Answer every command ``code`` (a logout 1500, a <hello> the recording greeting)."""

    def respond(frame: bytes) -> Answer:
        try:
            root = parse_document(frame)
        except EppXmlError:
            return answer(frame, 2001)
        if root.find("epp:hello", NSMAP) is not None:
            return RECORDING_GREETING
        if root.find("epp:command/epp:logout", NSMAP) is not None:
            return answer(frame, 1500)
        return answer(frame, code)

    return respond


class RecordingTransport(Transport):
    """No network: records what the client writes, answers from a script or a callable.

    ``answers`` is either an iterable of answers, one per frame written, in order, or a
    ``Responder`` called with each frame (default: ``echo()``, 1000 to everything).  The first read
    after ``connect`` returns ``greeting``.  An answer that is an exception is raised by the read
    that would have returned it, which is how tests script timeouts and dropped connections.
    Running out of scripted answers is a ``LookupError``, not a quiet EOF: a test that forgot an
    answer should fail, not pass as "connection lost".
    """

    def __init__(
        self,
        answers: Iterable[Answer] | Responder | None = None,
        *,
        greeting: Answer = RECORDING_GREETING,
        endpoint: Endpoint = RECORDING_ENDPOINT,
    ) -> None:
        self.endpoint = endpoint
        self.greeting = greeting
        self.written: list[bytes] = []
        self.connects = 0
        self.closes = 0
        self._respond: Responder | None = None
        self._script: deque[Answer] = deque()
        if answers is None:
            self._respond = echo()
        elif callable(answers):
            self._respond = answers
        else:
            self._script.extend(answers)
        self._pending: deque[Answer] = deque()
        self._open = False

    async def connect(self) -> None:
        self.connects += 1
        self._open = True
        self._pending = deque([self.greeting])

    async def write_frame(self, frame: bytes) -> None:
        if not self._open:
            raise ConnectionResetError("recording transport is closed")
        self.written.append(frame)
        if self._respond is not None:
            self._pending.append(self._respond(frame))
        elif self._script:
            self._pending.append(self._script.popleft())
        else:
            raise LookupError(f"recording transport has no scripted answer for frame {len(self.written)}")

    async def read_frame(self) -> bytes:
        if not self._open or not self._pending:
            raise EOFError("recording transport has nothing to read")
        item = self._pending.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        if self._open:
            self.closes += 1
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open
