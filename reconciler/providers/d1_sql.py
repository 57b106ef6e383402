"""SQL text for D1: split scripts, strip comments, inline parameters, fit statements to D1's limits.

D1's documented limits (``contracts/d1/NOTES.md`` §3) hold on both backends: at most
:data:`~reconciler.providers.d1_types.MAX_BOUND_PARAMETERS` bound parameters and
:data:`~reconciler.providers.d1_types.MAX_STATEMENT_BYTES` bytes per statement.
:func:`check_statement` refuses what D1 would refuse, :func:`chunked_insert` splits multi-row
inserts to fit, and :func:`param_chunks` splits long ``IN (...)`` lists.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator, Sequence

from reconciler.providers.d1_types import (
    MAX_BOUND_PARAMETERS,
    MAX_STATEMENT_BYTES,
    SqlError,
    SqlValue,
    Statement,
    StatementTooLargeError,
)

__all__ = [
    "check_statement",
    "chunked_insert",
    "inline_params",
    "param_chunks",
    "placeholders",
    "render_literal",
    "split_sql",
    "strip_comments",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
