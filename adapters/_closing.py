"""``async with`` for adapter objects that hold a connection (private).

Every client here has the same exit: release the connection whatever happened inside the block,
never swallow the block's exception.  Subclasses implement ``aclose`` (and override ``__aenter__``
when entering has work to do, such as the EPP login).
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class AsyncClosing(abc.ABC):
    """``async with x`` returns ``x`` and ends with ``await x.aclose()``."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds; safe to call more than once."""
