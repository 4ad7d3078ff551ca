"""RFC 5734 data units: a 4-byte big-endian total length (header included), then the XML.

Both the client and the sandbox speak through these two functions so that a length bug cannot hide
by being symmetric on one side only.  The size cap exists because the length is attacker-controlled:
without it a peer could make us allocate gigabytes with a four-byte header.
"""

from __future__ import annotations

import asyncio

from gateway.errors import FrameError

HEADER_SIZE = 4
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
"""Largest payload we accept; real EPP responses are kilobytes, so 4 MiB is generous, not a limit."""

_MAX_ENCODABLE = 0xFFFFFFFF - HEADER_SIZE


async def read_frame(reader: asyncio.StreamReader, max_size: int = DEFAULT_MAX_FRAME) -> bytes:
    """Read one data unit and return its payload.

    Raises ``asyncio.IncompleteReadError`` when the peer closes mid-frame (or before one starts) and
    ``FrameError`` for a length below the header size, an empty payload or one above ``max_size``.
    """
    header = await reader.readexactly(HEADER_SIZE)
    total = int.from_bytes(header, "big")
    if total <= HEADER_SIZE:
        raise FrameError(f"frame length {total} leaves no payload")
    size = total - HEADER_SIZE
    if size > max_size:
        raise FrameError(f"frame payload of {size} bytes exceeds the limit of {max_size}")
    return await reader.readexactly(size)


async def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Write one data unit and wait for the transport to drain (back-pressure, not buffering)."""
    if not payload:
        raise FrameError("refusing to send an empty frame")
    if len(payload) > _MAX_ENCODABLE:
        raise FrameError("payload too large for a 32-bit EPP length header")
    writer.write((len(payload) + HEADER_SIZE).to_bytes(HEADER_SIZE, "big") + payload)
    await writer.drain()
