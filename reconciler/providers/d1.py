"""D1 access for the reconciler: one ``Database`` interface, two backends.

Who calls it: ``runtime/migrate.py`` (schema migrations), the observers and executors that read
and write the app tables and the reconciler's ledger (intents, status, events, leases), and the
sandbox's D1 simulator (which serves a :class:`SqliteDatabase` over HTTP).

What it calls:

- :class:`SqliteDatabase` runs :mod:`sqlite3` on one dedicated worker thread (WAL, foreign keys
  on, a busy timeout). It is the default backend: D1 *is* SQLite, so the same SQL serves both.
- :class:`D1HttpDatabase` sends SQL to the Cloudflare REST query endpoint through a
  :class:`D1QueryAPI` (implemented by ``providers/cloudflare.py``'s client, which owns HTTP,
  the envelope, retries and the rate budget).

D1's documented limits (``contracts/d1/NOTES.md`` §3) hold on both backends, so a statement
that works locally also works in production:

1. at most :data:`MAX_BOUND_PARAMETERS` (100) bound parameters per statement;
2. at most :data:`MAX_STATEMENT_BYTES` (100,000) bytes of SQL per statement;
3. a batch runs atomically, all statements or none.

:func:`chunked_insert` splits multi-row inserts to fit, and :func:`param_chunks` splits long
``IN (...)`` lists. Failures become the project's error types: a constraint violation is a
:class:`ConstraintError` (a ``PermanentError``), a busy or locked database a ``TransientError``,
other SQL errors a :class:`SqlError` (also permanent). The original exception is the cause.
"""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reconciler.core.provider import Provider
from reconciler.errors import PermanentError, TransientError
from reconciler.providers.closing import AsyncClosing

__all__ = [
    "MAX_BOUND_PARAMETERS",
    "MAX_STATEMENT_BYTES",
    "ConstraintError",
    "D1HttpDatabase",
    "D1QueryAPI",
    "D1Result",
    "Database",
    "ExecResult",
    "SqlError",
    "SqlValue",
    "SqliteDatabase",
    "Statement",
    "StatementResult",
    "StatementTooLargeError",
    "check_statement",
    "chunked_insert",
    "inline_params",
    "param_chunks",
    "placeholders",
    "render_literal",
    "split_sql",
    "strip_comments",
]

PROVIDER = Provider.D1
MAX_BOUND_PARAMETERS = 100
MAX_STATEMENT_BYTES = 100_000

SqlValue = str | int | float | bytes | None
Row = dict[str, SqlValue]

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_D1_SQL_MESSAGE = re.compile(r"(?:^|\s)7500:?\s+(.+)$", re.DOTALL)


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


# --------------------------------------------------------------------------- SQL text helpers


def split_sql(text: str) -> list[str]:
    """Split a script into statements, the way SQLite's own tokenizer sees them.

    Semicolons inside strings, quoted identifiers, comments and ``CREATE TRIGGER ... BEGIN ...
    END`` bodies do not split. Pieces holding only whitespace and comments are dropped. Each
    returned statement keeps its text but not its terminating semicolon.

    Args:
        text: the SQL script, for example a migration file.

    Returns:
        The statements in order.
    """
    statements: list[str] = []
    start = 0
    position = text.find(";")
    while position != -1:
        candidate = text[start : position + 1]
        if sqlite3.complete_statement(candidate):
            _append_statement(statements, candidate[:-1])
            start = position + 1
        position = text.find(";", position + 1)
    _append_statement(statements, text[start:])
    return statements


def _append_statement(statements: list[str], piece: str) -> None:
    stripped = piece.strip()
    if stripped and strip_comments(stripped).strip():
        statements.append(stripped)


_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _segments(sql: str) -> Iterator[tuple[str, int, int]]:
    """Tokenize just enough: yield ``(kind, start, end)`` with kind code, quoted or comment."""
    index = 0
    length = len(sql)
    code_start = 0
    while index < length:
        char = sql[index]
        if char in _CLOSERS:
            closer = _CLOSERS[char]
            end = index + 1
            while end < length:
                if sql[end] == closer:
                    if closer != "]" and end + 1 < length and sql[end + 1] == closer:
                        end += 2
                        continue
                    break
                end += 1
            end = min(end + 1, length)
            kind = "quoted"
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            end = length if newline == -1 else newline + 1
            kind = "comment"
        elif sql.startswith("/*", index):
            close = sql.find("*/", index + 2)
            end = length if close == -1 else close + 2
            kind = "comment"
        else:
            index += 1
            continue
        if code_start < index:
            yield "code", code_start, index
        yield kind, index, end
        index = code_start = end
    if code_start < length:
        yield "code", code_start, length


def strip_comments(sql: str) -> str:
    """Remove ``--`` and ``/* */`` comments from ``sql``, keeping strings intact.

    Args:
        sql: SQL text.

    Returns:
        The text with each comment replaced by one space.
    """
    return "".join(
        " " if kind == "comment" else sql[start:end] for kind, start, end in _segments(sql)
    )


def render_literal(value: SqlValue) -> str:
    """Render a value as an SQLite literal (used to inline parameters into one batch request).

    Args:
        value: ``None``, an int, a finite float, a str without NUL characters, or bytes.

    Returns:
        ``NULL``, ``42``, ``1.5``, ``'it''s'`` or ``X'00ff'``.

    Raises:
        SqlError: for a value SQLite text cannot carry (NaN, infinity, NUL in a string).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SqlError(f"cannot send the non-finite number {value!r} to D1")
        return repr(value)
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if "\x00" in value:
        raise SqlError("cannot inline a string containing a NUL character")
    return "'" + value.replace("'", "''") + "'"


def inline_params(sql: str, params: Sequence[SqlValue]) -> str:
    """Substitute ``?`` and ``?NNN`` placeholders with literals.

    Placeholders inside strings, quoted identifiers and comments are left alone. Named
    parameters (``:name``) are not supported by this project's statements.

    Args:
        sql: one statement with positional placeholders.
        params: the values, in placeholder order.

    Returns:
        The statement with every placeholder replaced.

    Raises:
        SqlError: when the number of placeholders and values differ.
    """
    if not params and "?" not in sql:
        return sql
    pieces: list[str] = []
    highest = 0
    for kind, start, end in _segments(sql):
        if kind != "code":
            pieces.append(sql[start:end])
            continue
        last = start
        index = sql.find("?", start, end)
        while index != -1:
            digits_end = index + 1
            while digits_end < end and sql[digits_end].isdigit():
                digits_end += 1
            # SQLite numbers a bare ? one above the largest number used so far.
            number = int(sql[index + 1 : digits_end]) if digits_end > index + 1 else highest + 1
            highest = max(highest, number)
            if number < 1 or number > len(params):
                raise SqlError(f"placeholder ?{number} has no value ({len(params)} given)")
            pieces.append(sql[last:index])
            pieces.append(render_literal(params[number - 1]))
            last = digits_end
            index = sql.find("?", digits_end, end)
        pieces.append(sql[last:end])
    if highest != len(params):
        raise SqlError(f"statement has {highest} placeholders but {len(params)} values")
    return "".join(pieces)


def check_statement(
    sql: str,
    params: Sequence[SqlValue] = (),
    *,
    max_params: int = MAX_BOUND_PARAMETERS,
    max_bytes: int = MAX_STATEMENT_BYTES,
) -> None:
    """Refuse a statement D1 would refuse, before sending it.

    Args:
        sql: one statement.
        params: its bound values.
        max_params: bound-parameter limit (D1: 100).
        max_bytes: statement-size limit in UTF-8 bytes (D1: 100,000).

    Raises:
        StatementTooLargeError: naming the limit and the statement's start.
    """
    if len(params) > max_params:
        raise StatementTooLargeError(
            f"too many bound parameters: {len(params)} > {max_params} "
            f"(D1 limit) in {_excerpt(sql)}; split it with chunked_insert or param_chunks"
        )
    size = len(sql.encode("utf-8"))
    if size > max_bytes:
        raise StatementTooLargeError(
            f"statement too long: {size} bytes > {max_bytes} (D1 limit) in {_excerpt(sql)}"
        )


def _excerpt(sql: str, width: int = 60) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def chunked_insert(
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[SqlValue]],
    *,
    verb: str = "INSERT",
    suffix: str = "",
    max_params: int = MAX_BOUND_PARAMETERS,
    max_bytes: int = MAX_STATEMENT_BYTES,
) -> list[Statement]:
    """Build multi-row INSERT statements that each fit D1's limits.

    Every statement has at most ``max_params`` bound values, and even with its values inlined
    as literals (what :class:`D1HttpDatabase` does inside a batch) stays under ``max_bytes``;
    a single row too big for that goes alone in its own statement. Run the result with
    :meth:`Database.batch` to keep the whole insert atomic.

    Args:
        table: table name (a plain identifier).
        columns: column names (plain identifiers), in the order of each row's values.
        rows: the rows; each must have one value per column.
        verb: ``INSERT``, ``INSERT OR IGNORE`` or ``INSERT OR REPLACE``.
        suffix: an upsert clause such as ``ON CONFLICT(id) DO UPDATE SET status = excluded.status``.
        max_params: bound-parameter limit per statement.
        max_bytes: statement-size limit per statement.

    Returns:
        The statements, in row order (empty for no rows).

    Raises:
        ValueError: for a bad identifier, verb or row width, or more columns than parameters.
    """
    if verb.upper() not in ("INSERT", "INSERT OR IGNORE", "INSERT OR REPLACE", "REPLACE"):
        raise ValueError(f"unsupported insert verb {verb!r}")
    for name in (table, *columns):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a plain SQL identifier")
    width = len(columns)
    if width == 0 or width > max_params:
        raise ValueError(f"{width} columns cannot fit {max_params} parameters per statement")
    head = f"{verb} INTO {table} ({', '.join(columns)}) VALUES "
    tail = f" {suffix}" if suffix else ""
    fixed = len(head.encode()) + len(tail.encode())
    group = "(" + ", ".join("?" * width) + ")"
    per_statement = max_params // width
    statements: list[Statement] = []
    current: list[SqlValue] = []
    count = 0
    size = fixed
    for number, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {number} has {len(row)} values for {width} columns")
        row_size = 2 + sum(len(render_literal(value).encode()) + 2 for value in row)
        if count and (count >= per_statement or size + row_size > max_bytes):
            statements.append(Statement(head + ", ".join([group] * count) + tail, tuple(current)))
            current, count, size = [], 0, fixed
        current.extend(row)
        count += 1
        size += row_size
    if count:
        statements.append(Statement(head + ", ".join([group] * count) + tail, tuple(current)))
    return statements


def param_chunks(
    values: Sequence[SqlValue], *, reserved: int = 0, max_params: int = MAX_BOUND_PARAMETERS
) -> Iterator[tuple[SqlValue, ...]]:
    """Split values for ``IN (?, ?, ...)`` lists so each query stays within the parameter limit.

    Args:
        values: all the values to look up.
        reserved: parameters the query uses besides the list.
        max_params: bound-parameter limit per statement.

    Yields:
        Tuples of at most ``max_params - reserved`` values.
    """
    size = max_params - reserved
    if size < 1:
        raise ValueError(f"{reserved} reserved parameters leave no room in {max_params}")
    for start in range(0, len(values), size):
        yield tuple(values[start : start + size])


def placeholders(count: int) -> str:
    """Return ``?, ?, ?`` with ``count`` placeholders, for an ``IN (...)`` list.

    Args:
        count: how many placeholders.

    Returns:
        The comma-separated placeholders.
    """
    return ", ".join("?" * count)


# --------------------------------------------------------------------------- SQLite backend

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


class _Backend(AsyncClosing):
    """What both D1 backends share: ``async with`` closes the backend (:meth:`close`)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the backend's resources."""

    async def aclose(self) -> None:
        """:meth:`close`, the name every adapter closes by."""
        await self.close()


class SqliteDatabase(_Backend):
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


# --------------------------------------------------------------------------- D1 REST backend


class D1HttpDatabase(_Backend):
    """D1 in production: SQL sent to the Cloudflare query endpoint through a :class:`D1QueryAPI`.

    A single statement is sent with its parameters bound by D1. A batch of several statements
    is sent as **one** request whose ``sql`` joins them with ``;`` and carries their values
    inlined as SQLite literals, because the endpoint binds one ``params`` list per request and
    runs a multi-statement ``sql`` as one batch (atomically, as wrangler relies on for
    migrations). Each statement still has to fit D1's per-statement limits once inlined.
    """

    def __init__(self, api: D1QueryAPI, database_id: str) -> None:
        """Bind the backend to one database.

        Args:
            api: the Cloudflare client (or a fake of it).
            database_id: the D1 database's uuid.
        """
        if not database_id:
            raise ValueError("the d1 backend needs a database id (D1_DATABASE_ID)")
        self._api = api
        self.database_id = database_id

    async def _send(self, sql: str, params: Sequence[SqlValue]) -> list[D1Result]:
        try:
            results = await self._api.d1_query(self.database_id, sql, list(params))
        except (SqlError, TransientError):
            raise
        except PermanentError as exc:
            raise _translate_http(exc) from exc
        for index, result in enumerate(results):
            if not result.success:
                raise SqlError("D1 reported an unsuccessful statement", statement_index=index)
        return results

    async def query(self, sql: str, params: Sequence[SqlValue] = ()) -> list[Row]:
        """Run one statement remotely (see :meth:`Database.query`)."""
        check_statement(sql, params)
        results = await self._send(sql, params)
        return [dict(row) for row in results[0].results] if results else []

    async def execute(self, sql: str, params: Sequence[SqlValue] = ()) -> ExecResult:
        """Run one write statement remotely; the effect comes from D1's ``meta``."""
        check_statement(sql, params)
        results = await self._send(sql, params)
        if not results:
            return ExecResult(0, 0)
        return ExecResult(results[0].changes, results[0].last_row_id)

    async def batch(self, statements: Sequence[Statement]) -> list[StatementResult]:
        """Run statements as one D1 batch (one request), atomically (:meth:`Database.batch`).

        Raises:
            StatementTooLargeError: when a statement with its values inlined exceeds the limit.
        """
        items = list(statements)
        if not items:
            return []
        if len(items) == 1:
            check_statement(items[0].sql, items[0].params)
            results = await self._send(items[0].sql, items[0].params)
        else:
            rendered: list[str] = []
            for index, item in enumerate(items):
                check_statement(item.sql, item.params)
                text = inline_params(item.sql, item.params)
                try:
                    check_statement(text)
                except StatementTooLargeError as exc:
                    raise StatementTooLargeError(
                        f"statement {index} of a batch is too long once its values are inlined: "
                        f"{exc.sql_message}",
                        statement_index=index,
                    ) from exc
                rendered.append(_terminate(text))
            results = await self._send("\n".join(rendered), ())
        output: list[StatementResult] = []
        for index in range(len(items)):
            if index < len(results):
                result = results[index]
                output.append(StatementResult(result.results, result.changes, result.last_row_id))
            else:
                output.append(StatementResult((), 0, 0))
        return output

    async def close(self) -> None:
        """Nothing to release: the API client belongs to whoever built it."""


def _terminate(sql: str) -> str:
    """End a statement with a semicolon that is a real token (not inside a trailing comment)."""
    text = sql.rstrip()
    if text.endswith(";") and sqlite3.complete_statement(text):
        return text
    if sqlite3.complete_statement(text + ";"):
        return text + ";"
    return text + "\n;"


def _translate_http(exc: PermanentError) -> Exception:
    """Classify a permanent error from the Cloudflare client as a D1 SQL error when it is one."""
    message = str(exc)
    prefix = f"{exc.provider}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    # Keep D1's own text: "... HTTP 400: 7500 no such table: x: SQLITE_ERROR" -> "no such ...".
    if found := _D1_SQL_MESSAGE.search(message):
        message = found.group(1)
    if "SQLITE_BUSY" in message or "database is locked" in message:
        return TransientError(PROVIDER, message, status=exc.status)
    if "SQLITE_CONSTRAINT" in message or "constraint failed" in message:
        return ConstraintError(message, status=exc.status)
    if "SQLITE_TOOBIG" in message or "too many SQL variables" in message:
        return StatementTooLargeError(message, status=exc.status)
    if exc.status == 400 or "SQLITE_" in message:
        return SqlError(message, status=exc.status)
    return exc
