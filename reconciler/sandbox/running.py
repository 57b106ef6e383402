"""A sandbox part used as a context manager: started on enter, stopped on exit."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Running(abc.ABC):
    """Mix-in for the parts that ``start()`` and ``stop()`` (servers, child processes, worlds)."""

    @abc.abstractmethod
    def start(self) -> object:
        """Start the part (each part says how)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the part (each part says how; safe to call twice)."""

    def __enter__(self) -> Self:
        """Start; see :meth:`start`."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop; see :meth:`stop`."""
        self.stop()
