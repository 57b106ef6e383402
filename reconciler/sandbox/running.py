"""A sandbox part used as a context manager: started on enter, stopped on exit.

:class:`Listening` is such a part that serves on a loopback port (the sandbox's app hosts and
the Worker host).
"""

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


LOOPBACK = "127.0.0.1"
"""The address every sandbox server binds and its clients reach."""


class Listening(Running):
    """A :class:`Running` part that serves on a loopback port (``port`` is 0 until started)."""

    port: int = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"
