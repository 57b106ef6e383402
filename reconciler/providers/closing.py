"""``async with`` for the adapters: an adapter that can close is closed on leaving the block.

Who calls it: the adapters (``CloudflareClient``, ``EvolutionClient``, ``HttpApi``,
``StripeBilling``, the D1 backends), the wiring's worlds and the sandbox's ``LocalStripe``
inherit :class:`AsyncClosing`.
What it calls: the adapter's own :meth:`AsyncClosing.aclose`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing(ABC):
    """Use as ``async with adapter:``: the block gets the adapter, leaving it closes it."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the adapter holds (connection pools, threads, files)."""

    async def __aenter__(self) -> Self:
        """The adapter itself; connections are opened on first use."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on leaving the block."""
        await self.aclose()
