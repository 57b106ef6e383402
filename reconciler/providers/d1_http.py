"""D1's REST backend: :class:`D1HttpDatabase`, SQL sent to the Cloudflare query endpoint.

It talks through a :class:`~reconciler.providers.d1_types.D1QueryAPI` (implemented by
``providers/cloudflare.py``'s client, which owns HTTP, the envelope, retries and the rate
budget), and classifies the client's permanent errors as D1 SQL errors when they are ones.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.d1_sql import check_statement, inline_params
from reconciler.providers.d1_types import (
    PROVIDER,
    ConstraintError,
    D1Backend,
    D1QueryAPI,
    D1Result,
    ExecResult,
    Row,
    SqlError,
    SqlValue,
    Statement,
    StatementResult,
    StatementTooLargeError,
)

__all__ = ["D1HttpDatabase"]

_D1_SQL_MESSAGE = re.compile(r"(?:^|\s)7500:?\s+(.+)$", re.DOTALL)


class D1HttpDatabase(D1Backend):
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
