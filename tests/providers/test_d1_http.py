"""The D1 REST backend through a fake ``D1QueryAPI`` shaped like the Cloudflare query endpoint.

The fake (``support.d1.FakeD1Api``) sends ``params`` as strings, runs a multi-statement ``sql`` as
one atomic batch, answers in the v4 envelope and, when ``../shared`` is present, validates every
request and response against the contract's OpenAPI schema for the query operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import MigrationError, PermanentError, TransientError
from reconciler.providers.d1 import (
    ConstraintError,
    D1HttpDatabase,
    D1Result,
    SqlError,
    Statement,
    StatementTooLargeError,
    chunked_insert,
    split_sql,
)
from reconciler.runtime.migrate import discover, migrate, migration_status

DATABASE_ID = "00000000-0000-0000-0000-000000000000"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
REPO_MIGRATIONS = [item.name for item in discover(MIGRATIONS)]


def remote_tables(api: Any) -> set[str]:
    rows = api.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


async def test_single_statement_is_sent_with_its_parameters_as_strings(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, v TEXT)")
    result = await db.execute("INSERT INTO t (n, v) VALUES (?, ?)", (5, "five"))
    assert (result.changes, result.last_row_id) == (1, 1)
    assert fake_api.requests[-1] == {
        "database_id": DATABASE_ID,
        "sql": "INSERT INTO t (n, v) VALUES (?, ?)",
        "params": ["5", "five"],
    }
    # INTEGER affinity turns the string back into a number, so comparisons work remotely too.
    assert await db.query("SELECT n, v FROM t WHERE n = ?", (5,)) == [{"n": 5, "v": "five"}]


async def test_batch_is_one_request_with_values_inlined(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    before = len(fake_api.requests)
    results = await db.batch(
        [
            Statement("INSERT INTO t (v) VALUES (?)", ("it's",)),
            Statement("INSERT INTO t (v) VALUES (?)", (None,)),
            Statement("SELECT v FROM t ORDER BY id"),
        ]
    )
    assert len(fake_api.requests) == before + 1
    assert "params" not in fake_api.requests[-1]
    assert "'it''s'" in fake_api.requests[-1]["sql"]
    assert results[2].rows == ({"v": "it's"}, {"v": None})
    assert results[1].last_row_id == 2


async def test_failing_batch_changes_nothing_remotely(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    with pytest.raises(ConstraintError) as caught:
        await db.batch(
            [
                Statement("INSERT INTO t (v) VALUES (?)", ("a",)),
                Statement("INSERT INTO t (v) VALUES (?)", ("a",)),
            ]
        )
    assert "UNIQUE constraint failed" in caught.value.sql_message
    assert caught.value.status == 400
    assert await db.query("SELECT count(*) AS n FROM t") == [{"n": 0}]


async def test_sql_error_over_http_is_a_permanent_sql_error(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    with pytest.raises(SqlError) as caught:
        await db.query("SELECT * FROM nope")
    assert "no such table: nope" in caught.value.sql_message
    assert isinstance(caught.value.__cause__, PermanentError)


async def test_transient_and_non_sql_errors_pass_through_unchanged(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    fake_api.fail_next = TransientError("cloudflare", "HTTP 503", status=503)
    with pytest.raises(TransientError, match="503"):
        await db.query("SELECT 1")
    fake_api.fail_next = PermanentError("cloudflare", "10000: Authentication error", status=403)
    with pytest.raises(PermanentError) as caught:
        await db.query("SELECT 1")
    assert not isinstance(caught.value, SqlError)


async def test_limits_are_checked_before_any_request(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    with pytest.raises(StatementTooLargeError):
        await db.query("SELECT " + ", ".join("?" * 101), [1] * 101)
    with pytest.raises(StatementTooLargeError, match="inlined"):
        await db.batch(
            [
                Statement("SELECT ?", ("x" * 100_000,)),
                Statement("SELECT 1"),
            ]
        )
    assert fake_api.requests == []


async def test_chunked_insert_over_http_fits_every_statement(fake_api: Any) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    await db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    rows = [(number, "v" * 2000) for number in range(300)]
    statements = chunked_insert("t", ["a", "b"], rows)
    await db.batch(statements)
    assert await db.query("SELECT count(*) AS n FROM t") == [{"n": 300}]
    assert len(statements) > 1
    sent = split_sql(fake_api.requests[-2]["sql"])
    assert len(sent) == len(statements)
    assert all(len(statement.encode()) <= 100_000 for statement in sent)


async def test_migrate_through_the_rest_backend_matches_the_local_result(
    fake_api: Any, tmp_path: Path
) -> None:
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    report = await migrate(db, MIGRATIONS)
    assert report.applied == tuple(REPO_MIGRATIONS)
    assert {"tenants", "domains", "intents", "leases", "d1_migrations"} <= remote_tables(fake_api)
    again = await migrate(db, MIGRATIONS)
    assert again.applied == ()
    statuses = await migration_status(db, MIGRATIONS)
    assert [status.state.value for status in statuses] == ["applied"] * len(REPO_MIGRATIONS)


async def test_failed_remote_migration_is_rolled_back_and_named(
    fake_api: Any, migrations_copy: Path
) -> None:
    (migrations_copy / "9003_partial.sql").write_text(
        "CREATE TABLE audit (id INTEGER);\nINSERT INTO nonexistent_table VALUES (1);\n"
    )
    db = D1HttpDatabase(fake_api, DATABASE_ID)
    with pytest.raises(MigrationError) as caught:
        await migrate(db, migrations_copy)
    assert str(caught.value).startswith(f"{migrations_copy / '9003_partial.sql'}: ")
    assert "no such table: nonexistent_table" in str(caught.value)
    assert "audit" not in remote_tables(fake_api)
    applied = fake_api.connection.execute("SELECT name FROM d1_migrations ORDER BY id").fetchall()
    assert [row[0] for row in applied] == REPO_MIGRATIONS


def test_d1_result_reads_the_contract_shape_and_tolerates_missing_meta() -> None:
    result = D1Result.from_json(
        {
            "results": [{"a": 1}],
            "success": True,
            "meta": {"changes": 2, "last_row_id": 7, "rows_read": 3, "rows_written": 2.0},
        }
    )
    assert result.results == ({"a": 1},)
    assert (result.changes, result.last_row_id, result.rows_read, result.rows_written) == (
        2,
        7,
        3,
        2,
    )
    assert D1Result.from_json({"results": [], "success": True}).changes == 0


def test_the_rest_backend_needs_a_database_id(fake_api: Any) -> None:
    with pytest.raises(ValueError, match="database id"):
        D1HttpDatabase(fake_api, "")
