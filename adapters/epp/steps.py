"""What each command of a multi-command operation did at the registry: the unit of the disclosure log.

A registration is several EPP commands (``contact:create`` for each contact that carries a person's
data, then ``domain:create``); each may be accepted, refused, or left without an answer after its frame
was written.  The registry holds a person's data from the moment one ``contact:create`` is accepted,
whatever happens to the domain afterwards, so the log records every command on its own.  The flows in
``adapters.epp.client`` report each step to an observer (the delivery worker records it durably before
the next command goes out) and take back what earlier attempts already left at the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from adapters.epp.types import EppResult

__all__ = ["StepObserver", "StepOutcome", "StepState"]

StepState = Literal["delivered", "refused", "possibly_delivered"]
"""``delivered``: answered with success (or found ours via <info>); ``refused``: answered with an error
code, nothing kept; ``possibly_delivered``: the frame was written and no answer came (the registry may
hold it until an <info> settles it)."""


@dataclass(frozen=True)
class StepOutcome:
    """One command's outcome.

    ``object_id`` is the id we asked for; ``registry_id`` the one the registry uses (it differs where the
    registry assigns its own, as .dk does).  ``roles`` are the domain roles a contact fills (a contact
    created once and used as registrant and admin is one object, one disclosure).  ``result`` is the
    registry's answer (None when none came)."""

    command: str  # contact:create | domain:create | contact:delete | contact:update
    object_id: str
    state: StepState
    result: EppResult | None = None
    registry_id: str | None = None
    roles: tuple[str, ...] = ()
    reconciled: bool = False
    #: for a refusal or a lost answer: the result code or the transport's error code (never a message)
    code: str | None = None
    #: for a domain command: the subject contacts it points the domain at, as (role, registry id); the
    #: registrar's own contacts are left out.  What links a person's contact to a domain, for holdings.
    links: tuple[tuple[str, str], ...] = ()

    @property
    def held_id(self) -> str:
        """The id under which the registry holds the object."""
        return self.registry_id or self.object_id


StepObserver = Callable[[StepOutcome], Awaitable[None]]
"""Called after each command, before the next one is sent; if it raises, the flow stops there."""
