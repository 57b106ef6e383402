"""D1 state of the Cloudflare simulator: one SQLite file per database, queried like D1's REST API.

Called by :mod:`reconciler.sandbox.cloudflare` for ``/d1/database…`` requests (its lock held).
Follows ``contracts/cloudflare/CONTRACT.md`` §6 and ``contracts/d1/NOTES.md`` §3: ``sql`` may
hold several statements joined by ``;``, run as one batch (a transaction: a failing statement
rolls the whole batch back); ``params`` are bound in order across the statements' ``?``
placeholders; each statement gets one result ``{results, success, meta}``. The local D1 limits
are enforced: at most 100 bound parameters per statement and 100,000 bytes per statement.
Invalid SQL answers HTTP 400 with code 7500 and ``<sqlite message>: SQLITE_ERROR``; the body
may also be ``{"batch": [{sql, params}, …]}`` (the SDK's form), run as one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.sandbox.cloudflare_common import ApiError, iso

MAX_PARAMS = 100
MAX_STATEMENT_BYTES = 100_000
SQL_ERROR = 7500
DATABASE_NOT_FOUND = 7404


@dataclass(slots=True)
class Database:
    """One D1 database backed by a SQLite file."""

    uuid: str
    name: str
    path: Path
    created: float


def split_statements(sql: str) -> list[str]:
    """Split ``sql`` into complete statements (SQLite's own completeness test)."""
    statements: list[str] = []
    current = ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    rest = current.rstrip(";").strip()
    if rest:
        statements.append(rest)
    return statements


def count_placeholders(statement: str) -> int:
    """Count positional ``?`` / ``?NNN`` placeholders outside strings and comments."""
    count = 0
    highest = 0
    i = 0
    n = len(statement)
    while i < n:
        ch = statement[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = statement.find(close, i + 1)
            i = n if j < 0 else j + 1
            continue
        if statement.startswith("--", i):
            j = statement.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if statement.startswith("/*", i):
            j = statement.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if ch == "?":
            j = i + 1
            while j < n and statement[j].isdigit():
                j += 1
            if j > i + 1:
                highest = max(highest, int(statement[i + 1 : j]))
            else:
                count += 1
            i = j
            continue
        i += 1
    return max(count, highest)


class D1Store:
    """The account's D1 databases."""

    def __init__(self, directory: Path) -> None:
        """Keep database files under ``directory`` (created if missing)."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.databases: dict[str, Database] = {}

    def create(self, database_id: str, name: str, now: float) -> Database:
        """Create (or reopen) the database ``database_id``."""
        db = Database(
            uuid=database_id, name=name, path=self.directory / f"{database_id}.sqlite", created=now
        )
        with self._connect(db):
            pass
        self.databases[database_id] = db
        return db

    def wipe(self) -> None:
        """Empty every database file (reset)."""
        for db in self.databases.values():
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)
            with self._connect(db):
                pass

    def get(self, database_id: str) -> Database:
        """One database or 404 7404."""
        db = self.databases.get(database_id)
        if db is None:
            raise ApiError(
                404, DATABASE_NOT_FOUND, f"The database {database_id} could not be found"
            )
        return db

    def summary(self, db: Database, *, details: bool) -> dict[str, Any]:
        """The database object of the list (and, with ``details``, get) endpoints."""
        out: dict[str, Any] = {
            "uuid": db.uuid,
            "name": db.name,
            "version": "production",
            "created_at": iso(db.created),
        }
        if details:
            with self._connect(db) as conn:
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%'"
                ).fetchone()[0]
                out["num_tables"] = tables
                out["file_size"] = _size(conn)
        return out

    def query(self, db: Database, body: Any, *, raw: bool) -> list[dict[str, Any]]:
        """Run ``{sql, params}`` or ``{batch: [{sql, params}, …]}`` as one transaction.

        One result per statement, in order. SQL that SQLite cannot take (a NUL byte, a lone
        surrogate) is a 400 7500 like any SQL error, never a server error.
        """
        groups = _groups(body)
        results: list[dict[str, Any]] = []
        with self._connect(db) as conn:
            conn.execute("BEGIN")
            try:
                for sql, params in groups:
                    results.extend(self._group(conn, sql, params, raw=raw))
                conn.execute("COMMIT")
            except (sqlite3.Error, ValueError) as exc:
                conn.execute("ROLLBACK")
                code = _sqlite_code(exc) if isinstance(exc, sqlite3.Error) else "SQLITE_ERROR"
                raise ApiError(400, SQL_ERROR, f"{_printable(exc)}: {code}") from exc
            except ApiError:
                conn.execute("ROLLBACK")
                raise
        return results

    def _group(
        self, conn: sqlite3.Connection, sql: str, params: list[Any], *, raw: bool
    ) -> list[dict[str, Any]]:
        statements = split_statements(sql)
        if not statements:
            raise ApiError(400, SQL_ERROR, "No SQL statements were given: SQLITE_ERROR")
        results: list[dict[str, Any]] = []
        cursor_at = 0
        for statement in statements:
            if len(statement.encode("utf-8", "surrogatepass")) > MAX_STATEMENT_BYTES:
                raise ApiError(400, SQL_ERROR, "statement too long: SQLITE_TOOBIG")
            needed = count_placeholders(statement)
            if needed > MAX_PARAMS:
                raise ApiError(
                    400,
                    SQL_ERROR,
                    f"too many SQL variables at offset {statement.find('?')}: SQLITE_ERROR",
                )
            bound = params[cursor_at : cursor_at + needed]
            cursor_at += needed
            results.append(self._run(conn, statement, bound, raw=raw))
        return results

    def _run(
        self, conn: sqlite3.Connection, statement: str, params: list[Any], *, raw: bool
    ) -> dict[str, Any]:
        started = time.perf_counter()
        before = conn.total_changes
        cursor = conn.execute(statement, params)
        rows = cursor.fetchall()
        columns = [d[0] for d in cursor.description] if cursor.description else []
        changes = conn.total_changes - before
        duration = round((time.perf_counter() - started) * 1000, 3)
        meta = {
            "served_by_region": "WEUR",
            "served_by_primary": True,
            "timings": {"sql_duration_ms": duration},
            "duration": duration,
            "changes": changes,
            "last_row_id": cursor.lastrowid or 0,
            "changed_db": changes > 0,
            "size_after": _size(conn),
            "rows_read": len(rows),
            "rows_written": changes,
        }
        if raw:
            return {
                "results": {"columns": columns, "rows": [list(r) for r in rows]},
                "success": True,
                "meta": meta,
            }
        return {
            "results": [dict(zip(columns, r, strict=True)) for r in rows],
            "success": True,
            "meta": meta,
        }

    @staticmethod
    @contextlib.contextmanager
    def _connect(db: Database) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(db.path, isolation_level=None, timeout=30.0)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            yield conn
        finally:
            conn.close()


def _groups(body: Any) -> list[tuple[str, list[Any]]]:
    """``[(sql, params)]`` from a query body: one ``{sql, params}`` or a ``batch`` of them."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        items = body["batch"]
        if not items:
            raise ApiError(400, SQL_ERROR, "The batch is empty: SQLITE_ERROR")
    else:
        items = [body]
    groups: list[tuple[str, list[Any]]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
            raise ApiError(400, SQL_ERROR, "A 'sql' string is required.")
        params = item.get("params", [])
        if not isinstance(params, list):
            raise ApiError(400, SQL_ERROR, "'params' must be an array.")
        groups.append((item["sql"], params))
    return groups


def _printable(exc: Exception) -> str:
    """The error text with anything that cannot travel as JSON text escaped."""
    return str(exc).encode("utf-8", "backslashreplace").decode("utf-8")


def _size(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


def _sqlite_code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str) and name:
        return name.split("_")[0] + "_" + name.split("_")[1] if name.count("_") > 1 else name
    return "SQLITE_ERROR"
