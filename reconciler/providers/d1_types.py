"""The D1 ``Database`` protocol and what both backends share: limits, errors, statements, results.

:class:`Database` is what the reconciler needs from D1; :class:`D1QueryAPI` is the one Cloudflare
call the REST backend needs. The values (:class:`Statement`, :class:`ExecResult`,
:class:`StatementResult`, :class:`D1Result`) and the errors (:class:`SqlError` and its kinds)
cross the seam between the backends and their callers. :class:`D1Backend` is the backends'
common base. ``reconciler.providers.d1`` re-exports the public names.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.provider import Provider
from reconciler.errors import PermanentError
from reconciler.providers.closing import AsyncClosing

__all__ = [
    "MAX_BOUND_PARAMETERS",
    "MAX_STATEMENT_BYTES",
    "PROVIDER",
    "ConstraintError",
    "D1Backend",
    "D1QueryAPI",
    "D1Result",
    "Database",
    "ExecResult",
    "Row",
    "SqlError",
    "SqlValue",
    "Statement",
    "StatementResult",
    "StatementTooLargeError",
]

PROVIDER = Provider.D1
MAX_BOUND_PARAMETERS = 100
MAX_STATEMENT_BYTES = 100_000

SqlValue = str | int | float | bytes | None
Row = dict[str, SqlValue]


# --------------------------------------------------------------------------- errors


class SqlError(PermanentError):
    """The database refused a statement; retrying the same SQL cannot help.

    ``sql_message`` is the database's own message (``no such table: x``), without the provider
    prefix; ``statement_index`` is the failing statement's position in a batch, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        statement_index: int | None = None,
        status: int | None = None,
    ) -> None:
        """Keep the database's message and where in a batch it happened."""
        super().__init__(PROVIDER, message, status=status)
        self.sql_message = message
        self.statement_index = statement_index


class ConstraintError(SqlError):
    """A UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint rejected a write."""


class StatementTooLargeError(SqlError):
    """A statement exceeds D1's bound-parameter or statement-size limit."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its positional parameters (``?`` placeholders)."""

    sql: str
    params: tuple[SqlValue, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a write did: rows changed and the rowid of the last insert (0 when none)."""

    changes: int
    last_row_id: int


@dataclass(frozen=True, slots=True)
class StatementResult:
    """One statement's outcome inside a batch: its rows (for a SELECT) and its write effect."""

    rows: tuple[Row, ...]
    changes: int
    last_row_id: int


@dataclass(frozen=True, slots=True)
class D1Result:
    """One element of the D1 query endpoint's ``result`` array (one per statement).

    Mirrors ``d1_query-result-response`` and ``d1_query-meta`` of the Cloudflare contract (§6):
    ``results`` are row objects, ``meta`` numbers are flattened here.
    """

    results: tuple[Row, ...] = ()
    success: bool = True
    changes: int = 0
    last_row_id: int = 0
    rows_read: int = 0
    rows_written: int = 0
    changed_db: bool = False
    duration: float = 0.0

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> D1Result:
        """Build from one decoded ``result`` element; missing meta fields count as 0.

        Args:
            item: ``{"results": [...], "success": bool, "meta": {...}}`` as decoded JSON.

        Returns:
            The typed result.
        """
        meta = item.get("meta") or {}
        raw_rows = item.get("results") or []
        return cls(
            results=tuple(dict(row) for row in raw_rows),
            success=bool(item.get("success", True)),
            changes=int(meta.get("changes") or 0),
            last_row_id=int(meta.get("last_row_id") or 0),
            rows_read=int(meta.get("rows_read") or 0),
            rows_written=int(meta.get("rows_written") or 0),
            changed_db=bool(meta.get("changed_db", False)),
            duration=float(meta.get("duration") or 0.0),
        )


# --------------------------------------------------------------------------- interfaces


class D1QueryAPI(Protocol):
    """The one Cloudflare call D1 needs: ``POST /accounts/{a}/d1/database/{id}/query``.

    Implemented by ``providers/cloudflare.py``'s client. ``sql`` may hold several statements
    joined by ``;`` (D1 runs them as one batch); the result has one element per statement.
    Failures are raised as ``TransientError``/``PermanentError`` (HTTP 400 for invalid SQL).
    """

    async def d1_query(
        self, database_id: str, sql: str, params: Sequence[SqlValue]
    ) -> list[D1Result]:
        """Run ``sql`` with ``params`` on the database and return one result per statement."""
        ...


class Database(Protocol):
    """What the reconciler needs from D1, whichever backend serves it."""

    async def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
        """Run one statement and return its rows as dicts keyed by column name.

        Args:
            sql: one statement with ``?`` placeholders.
            params: the values.
        """
        ...

    async def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> ExecResult:
        """Run one statement (outside any batch) and return its write effect.

        Returns:
            Rows changed and the rowid of the last insert.
        """
        ...

    async def batch(self, statements: Sequence[Statement]) -> list[StatementResult]:
        """Run the statements in order as one transaction: all take effect or none.

        Returns:
            One result per statement, in order.

        Raises:
            SqlError: carrying the failing statement's index; nothing of the batch remains.
        """
        ...

    async def close(self) -> None:
        """Release the backend's resources; the object must not be used afterwards."""
        ...


class D1Backend(AsyncClosing):
    """What both D1 backends share: ``async with`` closes the backend (:meth:`close`)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend's resources."""

    async def aclose(self) -> None:
        """:meth:`close`, the name every adapter closes by."""
        await self.close()
