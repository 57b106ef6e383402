"""D1 state of the Cloudflare simulator: one SQLite file per database, queried like D1's REST API.

Called by :mod:`reconciler.sandbox.cloudflare` for ``/d1/database…`` requests (its lock held).
Follows ``contracts/cloudflare/CONTRACT.md`` §6 and ``contracts/d1/NOTES.md`` §3: ``sql`` may
hold several statements joined by ``;``, run as one batch (a transaction: a failing statement
rolls the whole batch back); ``params`` are bound in order across the statements' ``?``
placeholders; each statement gets one result ``{results, success, meta}``. The local D1 limits
are enforced: at most 100 bound parameters per statement and 100,000 bytes per statement.
Invalid SQL answers HTTP 400 with code 7500 and ``<sqlite message>: SQLITE_ERROR``; the body
may also be ``{"batch": [{sql, params}, …]}`` (the SDK's form), run as one transaction.

Time Travel (shapes: the official SDK's ``resources/d1/database/time_travel.py`` and
``types/d1/database/time_travel_*_response.py``): ``GET …/time_travel/bookmark`` answers
``{bookmark}`` for the database's state now (the same bookmark while nothing was queried since),
or with ``?timestamp=`` the nearest bookmark at or before that time; the simulator keeps a full
copy of the file for each bookmark it hands out, so ``POST …/time_travel/restore?bookmark=`` (or
``?timestamp=``) really puts the database back to that state, and answers ``{bookmark,
previous_bookmark, message}`` where ``previous_bookmark`` is the state it replaced (so a restore
can be undone). A bookmark it never handed out is refused with HTTP 400 (the code, 7400, is the
sandbox's choice: Cloudflare's is not documented).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare_common import (
    ApiError,
    api_routes,
    first_or_refuse,
    iso,
    require,
    success,
)
from reconciler.sandbox.pipeline import Call, Outcome

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

MAX_PARAMS = 100
MAX_STATEMENT_BYTES = 100_000
SQL_ERROR = 7500
DATABASE_NOT_FOUND = 7404
BOOKMARK_INVALID = 7400  # sandbox's choice: Cloudflare does not document the code


@dataclass(frozen=True, slots=True)
class Bookmark:
    """A state of one database the simulator can return to: a full copy of its file."""

    bookmark: str
    taken: float  # virtual time
    version: int  # the database's query count when taken
    path: Path


@dataclass(slots=True)
class Database:
    """One D1 database backed by a SQLite file."""

    uuid: str
    name: str
    path: Path
    created: float
    version: int = 0  # queries run so far: a bookmark names the state after this many
    bookmarks: list[Bookmark] = field(default_factory=list)


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
        """Empty every database file and forget its bookmarks (reset)."""
        for db in self.databases.values():
            for point in db.bookmarks:
                point.path.unlink(missing_ok=True)
            db.bookmarks.clear()
            db.version = 0
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
        db.version += 1
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

    def bookmark(self, db: Database, now: float, at: float | None = None) -> Bookmark:
        """The bookmark of the state now, or the nearest one taken at or before ``at``."""
        if at is not None:
            earlier = [point for point in db.bookmarks if point.taken <= at]
            if not earlier:
                raise ApiError(
                    400, BOOKMARK_INVALID, "No bookmark is available at or before that time."
                )
            return earlier[-1]
        if db.bookmarks and db.bookmarks[-1].version == db.version:
            return db.bookmarks[-1]
        seed = f"{db.uuid}:{db.version}:{len(db.bookmarks)}".encode()
        name = (
            f"{db.version:08x}-{len(db.bookmarks):08x}-{int(now) & 0xFFFFFFFF:08x}-"
            f"{hashlib.sha256(seed).hexdigest()[:32]}"
        )
        path = self.directory / f"{db.uuid}.{name}.bookmark"
        with self._connect(db) as conn:
            copy = sqlite3.connect(path)
            try:
                conn.backup(copy)
            finally:
                copy.close()
        point = Bookmark(bookmark=name, taken=now, version=db.version, path=path)
        db.bookmarks.append(point)
        return point

    def restore(self, db: Database, now: float, target: Bookmark) -> dict[str, Any]:
        """Put ``db`` back to ``target``; the answer names the state replaced and the new one."""
        previous = self.bookmark(db, now)
        with self._connect(db) as conn:
            copy = sqlite3.connect(f"file:{target.path}?mode=ro", uri=True)
            try:
                copy.backup(conn)
            finally:
                copy.close()
        db.version += 1
        after = self.bookmark(db, now)
        return {
            "bookmark": after.bookmark,
            "previous_bookmark": previous.bookmark,
            "message": f"Database restored to bookmark {target.bookmark}",
        }

    @staticmethod
    def find(db: Database, bookmark: str) -> Bookmark:
        """A bookmark handed out for ``db``, or 400."""
        invalid = ApiError(400, BOOKMARK_INVALID, f"Invalid bookmark {bookmark!r}.")
        return first_or_refuse(db.bookmarks, lambda point: point.bookmark == bookmark, invalid)

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


# ---- Time Travel endpoints ------------------------------------------------------------------


def _timestamp(call: Call) -> float | None:
    raw = call.query.get("timestamp")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ApiError(400, BOOKMARK_INVALID, "timestamp must be an ISO 8601 time.") from exc


def get_bookmark(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET /accounts/{account_id}/d1/database/{database_id}/time_travel/bookmark``."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    db = sim.d1.get(call.params["database"])
    point = sim.d1.bookmark(db, sim.clock.now(), _timestamp(call))
    return Outcome(200, success({"bookmark": point.bookmark}))


def restore(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST …/time_travel/restore?bookmark=`` (or ``?timestamp=``)."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    db = sim.d1.get(call.params["database"])
    now = sim.clock.now()
    bookmark = call.query.get("bookmark")
    at = _timestamp(call)
    if bookmark:
        target = sim.d1.find(db, bookmark)
    elif at is not None:
        target = sim.d1.bookmark(db, now, at)
    else:
        raise ApiError(400, BOOKMARK_INVALID, "A bookmark or a timestamp is required.")
    return Outcome(200, success(sim.d1.restore(db, now, target)))


_TTT = "/accounts/{account_id}/d1/database/{database_id}/time_travel"

TIME_TRAVEL_ROUTES: tuple[tuple[str, str, str, Any], ...] = api_routes(
    {
        _TTT + "/bookmark": {"GET": get_bookmark},
        _TTT + "/restore": {"POST": restore},
    }
)
"""``(method, path regex, path template, handler)`` for the simulator's router."""
