"""A gateway whose every log line is captured as the process writes it (``gateway.logs.configure``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gateway.logs import configure


class Lines:
    def __init__(self, buf: io.StringIO) -> None:
        self.buf = buf

    @property
    def text(self) -> str:
        return self.buf.getvalue()

    def records(self) -> list[dict[str, Any]]:
        """Every line, each parsed as one JSON object (fails on the first line that is not)."""
        out = []
        for line in self.text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line[:200]!r}")
        return out


@pytest.fixture
def json_logs() -> Iterator[Lines]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("fontTools", "httpx")}
    buf = io.StringIO()
    configure("DEBUG", stream=buf, cache=False)
    try:
        yield Lines(buf)
    finally:
        root.handlers = handlers
        root.setLevel(level)
        for name, lvl in quiet.items():
            logging.getLogger(name).setLevel(lvl)
        structlog.reset_defaults()
