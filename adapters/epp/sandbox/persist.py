"""The sandbox registry's objects on disk, so a registry process outlives a crash of its own.

A real registry keeps what it answered 1000 to.  When the sandbox ran inside the gateway, a ``kill -9``
of the gateway took the registry's memory with it, and a crash test could not tell a gateway that
forgot a delivery from a registry that forgot an object.  Run as its own process with a state
directory, the sandbox writes every object (contacts, domains with their transfers, the poll
queues and the counters that number them) to one JSON file after each command that changed
something, before the answer leaves: what a client saw confirmed is on disk.

The file is replaced atomically (temporary file, ``fsync``, ``rename``, ``fsync`` of the directory),
so a kill at any moment leaves the previous state or the new one, never half of either.  It is
development data about made-up registrants; it is still written ``0600``, as a registry's would be.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from lxml import etree

from adapters.epp.sandbox.objects import ObjectStore
from adapters.epp.sandbox.server import RegistrySandbox, _Parsed, _Reply, _Session

log = logging.getLogger(__name__)

STATE_FILE: Final = "objects.json"
FORMAT: Final = 1

#: Commands that may change an object or a poll queue; saved when answered 1000 or 1001.
MUTATING: Final = frozenset({
    "contact:create", "contact:update", "contact:delete",
    "domain:create", "domain:update", "domain:delete", "domain:renew", "domain:transfer",
    "poll",
})
APPLIED: Final = frozenset({1000, 1001})


# -- a JSON form for the objects' plain values ---------------------------------------------------------
# Objects are dicts of strings and lists, except two shapes JSON would lose: tuples (a domain's
# (type, id) contact pairs, compared by value against new tuples) and the lxml resData elements the
# poll queue holds.  Both are tagged on the way out and rebuilt on the way in.


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, etree._Element):
        return {"__xml__": etree.tostring(value, encoding="unicode")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        if set(value) == {"__xml__"}:
            return etree.fromstring(value["__xml__"].encode())
        return {k: _decode(v) for k, v in value.items()}
    return value


def _peek(counter: itertools.count[int]) -> tuple[int, itertools.count[int]]:
    """The next value of ``counter`` and a counter that will still yield it (a count cannot be read)."""
    value = next(counter)
    return value, itertools.count(value)


def snapshot(objects: ObjectStore) -> dict[str, Any]:
    """Everything the registry must remember, as JSON-ready data (the counters are left unconsumed)."""
    next_roid, objects._roids = _peek(objects._roids)
    next_msg, objects._msg_ids = _peek(objects._msg_ids)
    return {
        "format": FORMAT,
        "contacts": _encode(objects.contacts),
        "domains": _encode(objects.domains),
        "poll_queues": _encode(objects.poll_queues),
        "next_roid": next_roid,
        "next_msg_id": next_msg,
    }


def restore(objects: ObjectStore, data: dict[str, Any]) -> None:
    """Put a ``snapshot`` back; a file of another format is refused rather than half read."""
    if data.get("format") != FORMAT:
        raise ValueError(f"sandbox state format {data.get('format')!r}, expected {FORMAT}")
    objects.contacts = _decode(data["contacts"])
    objects.domains = _decode(data["domains"])
    objects.poll_queues = _decode(data["poll_queues"])
    objects._roids = itertools.count(int(data["next_roid"]))
    objects._msg_ids = itertools.count(int(data["next_msg_id"]))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text``: whole or not at all, durable once this returns."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class PersistentSandbox(RegistrySandbox):
    """A ``RegistrySandbox`` whose objects live in ``state_dir/objects.json``: loaded at construction,
    saved after every command that changed them and before its answer is sent."""

    def __init__(self, *args: Any, state_dir: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_file = state_dir / STATE_FILE
        self.saves = 0
        if self.state_file.exists():
            restore(self, json.loads(self.state_file.read_text(encoding="utf-8")))
            log.info("EPP sandbox loaded %d contacts and %d domains", len(self.contacts), len(self.domains))

    def save(self) -> None:
        write_atomically(self.state_file, json.dumps(snapshot(self), sort_keys=True))
        self.saves += 1

    async def _process(self, parsed: _Parsed, session: _Session) -> _Reply:
        reply = await super()._process(parsed, session)
        if parsed.kind in MUTATING and reply.code in APPLIED:
            self.save()  # before the answer leaves: a client that saw 1000 finds the object after a crash
        return reply

    # What the registry does on its own changes objects and poll queues without a command: saved too.

    def approve_pending_transfers(self) -> list[str]:
        names = super().approve_pending_transfers()
        self.save()
        return names

    def purge_pending_deletes(self) -> list[str]:
        names = super().purge_pending_deletes()
        self.save()
        return names

    def expire_domain(self, name: str) -> None:
        super().expire_domain(name)
        self.save()

    def registry_delete_domain(self, name: str) -> None:
        super().registry_delete_domain(name)
        self.save()

    def registry_update_contact(self, contact_id: str, **changes: Any) -> None:
        super().registry_update_contact(contact_id, **changes)
        self.save()
