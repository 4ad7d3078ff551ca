"""Waking delivery processes on this host when rows are queued, instead of waiting for their next poll.

With delivery in ``gateway worker`` processes the API cannot set the scheduler's ``asyncio.Event``: it
writes one byte to a named pipe (FIFO) beside the store instead, and each worker process reads the pipe
and sets its own event.  A pipe, not a socket: any number of readers share it with no registry of who
listens (a worker that starts simply opens it), its path has no length limit, and a write to a pipe
nobody reads fails at once (``ENXIO``) rather than queueing.

The wake-up is only a hint that shortens the wait: every worker still polls the store every
``worker_poll_s``, which is what serves workers on other hosts (PostgreSQL) and any byte that is lost
(pipe full, no reader yet, another worker read it).  So nothing here ever raises to its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import structlog

__all__ = ["WakeListener", "ensure_fifo", "wake_sender"]

log = structlog.get_logger("gateway.delivery")


def ensure_fifo(path: Path) -> bool:
    """Create the pipe if it is missing (never replace what is there); whether ``path`` is a FIFO."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path, 0o600)
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


def wake_sender(path: Path) -> Callable[[], None]:
    """A ``wake()`` for the API process: one non-blocking byte to every worker listening on ``path``.

    The write end is opened on first use and kept; it is dropped (and opened again at the next wake-up)
    when no worker reads any more, so a worker restarted later is woken too.  Costs one ``write`` per
    accepted registration."""
    fd: int | None = None

    def wake() -> None:
        nonlocal fd
        if fd is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:  # ENXIO: no worker reads yet; ENOENT: none ever started here
                return
        try:
            os.write(fd, b"\1")
        except BlockingIOError:  # the pipe is full: the workers have plenty of wake-ups unread
            pass
        except OSError:  # EPIPE: every reader went away; reopen next time
            with contextlib.suppress(OSError):
                os.close(fd)
            fd = None

    return wake


class WakeListener:
    """A worker process's end of the pipe: sets ``event`` whenever a byte arrives.

    The pipe is opened read-write: a reader with no writer would see end-of-file and be woken in a busy
    loop whenever no API process is running; holding a write end itself, it just waits."""

    def __init__(self, path: Path, event: asyncio.Event) -> None:
        self.path = path
        self.event = event
        self._fd: int | None = None

    def start(self) -> bool:
        """Listen on the running loop; False (and polling alone) if the pipe cannot be used."""
        if not ensure_fifo(self.path):
            log.warning("delivery.wake_pipe_unusable")
            return False
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return True

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            os.read(self._fd, 4096)
        except BlockingIOError:  # another worker read it first
            return
        except OSError as exc:
            if exc.errno != errno.EINTR:
                log.warning("delivery.wake_pipe_error", error_type=type(exc).__name__)
            return
        self.event.set()

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
