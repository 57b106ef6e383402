"""Fixtures for the D1 tests: the repository's migrations, scratch databases, and a fake D1 API.

Called by: pytest (registered suite-wide by ``tests/conftest.py``), for the D1 tests of
``tests/providers/`` and ``tests/runtime/``.
Calls: :mod:`reconciler.providers.d1`, :mod:`sqlite3`, and ``jsonschema`` to hold the fake's
requests and responses to the Cloudflare contract (``../shared/contracts/cloudflare``) when
that directory is present.

:class:`FakeD1Api` plays the Cloudflare client's part (``D1QueryAPI``) over a plain SQLite file,
with the contract's behaviour: ``params`` travel as strings, a multi-statement ``sql`` runs as
one atomic batch, one result per statement, the v4 envelope (round-tripped through JSON), and
an SQL error comes back as HTTP 400 with code 7500 and a message ending in the SQLite code.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import PermanentError
from reconciler.providers.d1 import D1Result, SqliteDatabase, SqlValue, split_sql

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO_ROOT / "migrations"
SHARED = REPO_ROOT.parent / "shared"
CLOUDFLARE_OPENAPI = SHARED / "contracts" / "cloudflare" / "openapi-subset.json"
QUERY_PATH = "/accounts/{account_id}/d1/database/{database_id}/query"

_PRIMARY_NAMES = {
    1: "SQLITE_ERROR",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    18: "SQLITE_TOOBIG",
    19: "SQLITE_CONSTRAINT",
}


class _ContractSchemas:
    """The D1 query operation's request and 200-response schemas, when the contract is present."""

    def __init__(self) -> None:
        self.request: dict[str, Any] | None = None
        self.response: dict[str, Any] | None = None
        self.failure: dict[str, Any] | None = None
        if not CLOUDFLARE_OPENAPI.is_file():
            return
        document = json.loads(CLOUDFLARE_OPENAPI.read_text())
        operation = document["paths"][QUERY_PATH]["post"]
        components = document["components"]
        # Two quirks of the verbatim subset, corrected as tests/contract/corrections.py does:
        # the shared envelope types `result` as an object although the query operation's
        # allOf makes it an array, and the failure envelope's `result` is OpenAPI-nullable.
        schemas = components["schemas"]
        schemas["d1_api-response-common"]["properties"]["result"] = {}
        schemas["d1_api-response-common-failure"]["properties"]["result"] = {"enum": [None]}

        def rooted(schema: dict[str, Any]) -> dict[str, Any]:
            return {"components": components, **schema}

        self.request = rooted(operation["requestBody"]["content"]["application/json"]["schema"])
        self.response = rooted(
            operation["responses"]["200"]["content"]["application/json"]["schema"]
        )
        self.failure = rooted(
            operation["responses"]["4XX"]["content"]["application/json"]["schema"]
        )

    @staticmethod
    def check(schema: dict[str, Any] | None, body: Any) -> None:
        if schema is None:
            return
        import jsonschema

        jsonschema.validate(body, schema)


class FakeD1Api:
    """A ``D1QueryAPI`` over a local SQLite file, shaped like the REST endpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA foreign_keys = ON")
        self.requests: list[dict[str, Any]] = []
        self.schemas = _ContractSchemas()
        self.fail_next: PermanentError | None = None

    def close(self) -> None:
        self.connection.close()

    async def d1_query(
        self, database_id: str, sql: str, params: Sequence[SqlValue]
    ) -> list[D1Result]:
        body: dict[str, Any] = {"sql": sql}
        if params:
            # [S] d1_params: an array of strings.
            body["params"] = [None if value is None else str(value) for value in params]
        self.schemas.check(self.schemas.request, body)
        self.requests.append({"database_id": database_id, **body})
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        envelope, status = self._run(body)
        decoded = json.loads(json.dumps(envelope))
        if status != 200:
            self.schemas.check(self.schemas.failure, decoded)
            first = decoded["errors"][0]
            raise PermanentError(
                "cloudflare", f"{first['code']}: {first['message']}", status=status
            )
        self.schemas.check(self.schemas.response, decoded)
        return [D1Result.from_json(item) for item in decoded["result"]]

    def _run(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        statements = split_sql(body["sql"])
        params = body.get("params", [])
        if params and len(statements) != 1:
            return _failure("params need exactly one statement"), 400
        results: list[dict[str, Any]] = []
        connection = self.connection
        connection.execute("BEGIN")
        try:
            for statement in statements:
                cursor = connection.execute(statement, params)
                names = [column[0] for column in cursor.description or ()]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                changes = max(cursor.rowcount, 0)
                results.append(
                    {
                        "results": rows,
                        "success": True,
                        "meta": {
                            "changed_db": changes > 0,
                            "changes": changes,
                            "duration": 0.1,
                            "last_row_id": cursor.lastrowid or 0,
                            "rows_read": len(rows),
                            "rows_written": changes,
                            "size_after": 4096,
                        },
                    }
                )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            code = getattr(exc, "sqlite_errorcode", 1) & 0xFF
            return _failure(f"{exc}: {_PRIMARY_NAMES.get(code, 'SQLITE_ERROR')}"), 400
        return {"result": results, "success": True, "errors": [], "messages": []}, 200


def _failure(message: str) -> dict[str, Any]:
    return {
        "result": None,
        "success": False,
        "errors": [{"code": 7500, "message": message}],
        "messages": [],
    }


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A scratch copy of the repository's migrations, safe to add files to or edit."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    """An empty SQLite database file, closed after the test."""
    db = SqliteDatabase(tmp_path / "test.sqlite")
    yield db
    await db.close()


@pytest.fixture
def fake_api(tmp_path: Path) -> Any:
    """A fake D1 REST API over an empty SQLite file."""
    api = FakeD1Api(tmp_path / "remote.sqlite")
    yield api
    api.close()


def _dump(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture
def dump() -> Any:
    """``dump(path)``: every schema object and row of a SQLite file as SQL text."""
    return _dump
