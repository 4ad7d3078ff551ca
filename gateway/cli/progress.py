"""Progress display for long commands (verify, key rotation, retention purge): shown on stderr, and only
when stderr is a terminal, so scripts, pipes and CI logs get the result lines alone."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def interactive(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


def bar(label: str, *, quiet: bool = False) -> Progress:
    """A bar with count and time left, for work whose size is known (``add_task(total=…)``)."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not interactive(quiet), transient=True)


@contextmanager
def status(label: str, *, quiet: bool = False) -> Iterator[None]:
    """A spinner with the elapsed time, for work whose size is not known in advance."""
    with Progress(SpinnerColumn(), TextColumn(label), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=not interactive(quiet), transient=True) as progress:
        progress.add_task(label, total=None)
        yield


@contextmanager
def tracking(label: str, *, quiet: bool = False) -> Iterator[Callable[[int, int | None], None]]:
    """A bar fed by a ``progress(done, total)`` callback (``total`` ``None`` while unknown: the bar pulses and
    counts ``done/?``); the callback is what ``Ledger.rotate`` and ``RightsService.retention`` take."""
    with bar(label, quiet=quiet) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update
