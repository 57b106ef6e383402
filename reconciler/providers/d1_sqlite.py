"""D1's SQLite backend: :class:`SqliteDatabase`, one local file used from one worker thread.

It is the default backend: D1 *is* SQLite, so the same SQL serves both. The file runs in WAL mode
with foreign keys on and a busy timeout; D1's limits are enforced so that a statement that works
locally also works in production. sqlite3 errors become the project's error types: a constraint
violation a :class:`~reconciler.providers.d1_types.ConstraintError`, a busy or locked database a
``TransientError``, other SQL errors a :class:`~reconciler.providers.d1_types.SqlError`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from reconciler.errors import TransientError
from reconciler.providers.d1_sql import check_statement
from reconciler.providers.d1_types import (
    MAX_BOUND_PARAMETERS,
    MAX_STATEMENT_BYTES,
    PROVIDER,
    ConstraintError,
    D1Backend,
    ExecResult,
    Row,
    SqlError,
    SqlValue,
    Statement,
    StatementResult,
    StatementTooLargeError,
)

__all__ = ["SqliteDatabase"]

_T = TypeVar("_T")

_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)


def _translate(exc: sqlite3.Error, index: int | None = None) -> Exception:
    """Map an sqlite3 exception to the project's error types."""
    message = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _BUSY_CODES or "database is locked" in message or "database is busy" in message:
        return TransientError(PROVIDER, message)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintError(message, statement_index=index)
    if "too many SQL variables" in message or "too big" in message or "too long" in message:
        return StatementTooLargeError(message, statement_index=index)
    return SqlError(message, statement_index=index)


class SqliteDatabase(D1Backend):
    """D1's local stand-in: one SQLite file, used from one dedicated worker thread.

    Every call is queued on that thread, so statements from concurrent tasks never interleave
    inside a batch. The connection runs in autocommit mode; :meth:`batch` wraps its statements
    in ``BEGIN IMMEDIATE`` ... ``COMMIT`` and rolls back on any error. D1's limits are enforced
    (``enforce_d1_limits``) so local runs fail where production would.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        enforce_d1_limits: bool = True,
    ) -> None:
        """Prepare the backend; the file is opened on first use, on the worker thread.

        Args:
            path: the SQLite file (created if absent), or ``":memory:"``.
            busy_timeout: seconds to wait for another process's lock before a TransientError.
            enforce_d1_limits: refuse statements over D1's parameter and size limits.
        """
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._enforce = enforce_d1_limits
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d1-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return fn(self._connect())

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                connection = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None
                )
                connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA foreign_keys = ON")
                if self._enforce:
                    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_PARAMETERS)
                    connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            self._connection = connection
        return self._connection

    def _check(self, sql: str, params: Sequence[SqlValue]) -> None:
        if self._enforce:
            check_statement(sql, params)

    async def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
        """Run one statement on the local file (see :meth:`Database.query`)."""
        self._check(sql, params)

        def work(connection: sqlite3.Connection) -> list[Row]:
            try:
                cursor = connection.execute(sql, tuple(params))
                return _rows(cursor)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

        return await self._run(work)

    async def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> ExecResult:
        """Run one write statement in its own implicit transaction (:meth:`Database.execute`)."""
        self._check(sql, params)

        def work(connection: sqlite3.Connection) -> ExecResult:
            try:
                cursor = connection.execute(sql, tuple(params))
                cursor.fetchall()
                return ExecResult(max(cursor.rowcount, 0), cursor.lastrowid or 0)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

        return await self._run(work)

    async def batch(self, statements: Sequence[Statement]) -> list[StatementResult]:
        """Run statements as one local transaction, undone on any error (see ``Database.batch``)."""
        items = list(statements)
        for item in items:
            self._check(item.sql, item.params)

        def work(connection: sqlite3.Connection) -> list[StatementResult]:
            results: list[StatementResult] = []
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            try:
                for item in items:
                    cursor = connection.execute(item.sql, item.params)
                    rows = tuple(_rows(cursor))
                    results.append(
                        StatementResult(rows, max(cursor.rowcount, 0), cursor.lastrowid or 0)
                    )
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                failed = len(results) if len(results) < len(items) else None
                raise _translate(exc, failed) from exc
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return results

        return await self._run(work)

    async def snapshot(self, target: str | Path) -> None:
        """Copy the whole database into the file ``target`` (SQLite's online backup).

        Queued on the worker thread like every statement, so no batch is half in the copy.
        """
        destination = str(target)

        def work(connection: sqlite3.Connection) -> None:
            with closing(sqlite3.connect(destination)) as copy:
                _backup(connection, copy)

        await self._run(work)

    async def restore_from(self, source: str | Path) -> None:
        """Replace the whole database with the file ``source`` (a :meth:`snapshot`)."""
        origin = str(source)

        def work(connection: sqlite3.Connection) -> None:
            if not Path(origin).is_file():
                raise SqlError(f"no snapshot file {origin}")
            with closing(sqlite3.connect(f"file:{origin}?mode=ro", uri=True)) as copy:
                _backup(copy, connection)

        await self._run(work)

    async def close(self) -> None:
        """Close the connection and stop the worker thread (idempotent)."""
        if self._closed:
            return
        self._closed = True

        def work() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, work)
        self._executor.shutdown(wait=False)


def _backup(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """Copy the whole of ``source`` into ``target`` (SQLite's online backup)."""
    try:
        source.backup(target)
    except sqlite3.Error as exc:
        raise _translate(exc) from exc


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
