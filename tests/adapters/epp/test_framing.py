"""RFC 5734 framing: the length counts its own four bytes, and hostile lengths are refused."""

from __future__ import annotations

import asyncio
import struct

import pytest

from adapters.epp.framing import DEFAULT_MAX_FRAME, read_frame, write_frame
from gateway.errors import FrameError


class _Sink:
    """Just enough of ``asyncio.StreamWriter`` for ``write_frame``."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.drained = 0

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        self.drained += 1


def _reader(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_write_frame_length_includes_header() -> None:
    sink = _Sink()
    await write_frame(sink, b"<epp/>")  # type: ignore[arg-type]
    assert bytes(sink.data) == struct.pack(">I", 10) + b"<epp/>"
    assert sink.drained == 1


async def test_round_trip_of_consecutive_frames() -> None:
    sink = _Sink()
    payloads = [b"<a/>", "<b>\u00e5\u00e4\u00f6</b>".encode(), b"x" * 70_000]
    for payload in payloads:
        await write_frame(sink, payload)  # type: ignore[arg-type]
    reader = _reader(bytes(sink.data))
    assert [await read_frame(reader) for _ in payloads] == payloads


async def test_read_frame_rejects_oversized_length_without_reading_body() -> None:
    reader = _reader(struct.pack(">I", 0xFFFFFFFF), eof=False)
    with pytest.raises(FrameError):
        await read_frame(reader)


async def test_read_frame_honours_custom_limit() -> None:
    reader = _reader(struct.pack(">I", 4 + 101) + b"x" * 101)
    with pytest.raises(FrameError):
        await read_frame(reader, max_size=100)
    assert DEFAULT_MAX_FRAME >= 1024 * 1024


@pytest.mark.parametrize("length", [0, 3, 4])
async def test_read_frame_rejects_lengths_without_payload(length: int) -> None:
    with pytest.raises(FrameError):
        await read_frame(_reader(struct.pack(">I", length)))


async def test_truncated_frame_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(_reader(struct.pack(">I", 20) + b"short"))
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(_reader(b"\x00\x00"))


async def test_write_frame_refuses_empty_payload() -> None:
    with pytest.raises(FrameError):
        await write_frame(_Sink(), b"")  # type: ignore[arg-type]
