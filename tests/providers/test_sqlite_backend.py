"""The SQLite backend and the SQL helpers of :mod:`reconciler.providers.d1`.

Checks the ``Database`` behaviour every caller relies on (rows as dicts, atomic batches, error
mapping to the project's error types) and D1's limits (100 bound parameters, 100,000-byte
statements) with the batching helpers that respect them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.d1 import (
    MAX_BOUND_PARAMETERS,
    ConstraintError,
    SqlError,
    SqliteDatabase,
    Statement,
    StatementTooLargeError,
    check_statement,
    chunked_insert,
    inline_params,
    param_chunks,
    placeholders,
    render_literal,
    split_sql,
)


async def test_query_returns_rows_as_dicts_and_execute_reports_changes(
    sqlite_db: SqliteDatabase,
) -> None:
    await sqlite_db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    result = await sqlite_db.execute("INSERT INTO t (v) VALUES (?)", ("a",))
    assert (result.changes, result.last_row_id) == (1, 1)
    await sqlite_db.execute("INSERT INTO t (v) VALUES (?)", ("b",))
    updated = await sqlite_db.execute("UPDATE t SET v = v || '!'")
    assert updated.changes == 2
    assert await sqlite_db.query("SELECT id, v FROM t ORDER BY id") == [
        {"id": 1, "v": "a!"},
        {"id": 2, "v": "b!"},
    ]


async def test_connection_uses_wal_foreign_keys_and_a_busy_timeout(
    sqlite_db: SqliteDatabase,
) -> None:
    assert (await sqlite_db.query("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
    assert (await sqlite_db.query("PRAGMA foreign_keys"))[0]["foreign_keys"] == 1
    assert (await sqlite_db.query("PRAGMA busy_timeout"))[0]["timeout"] > 0


async def test_batch_is_all_or_nothing(sqlite_db: SqliteDatabase) -> None:
    await sqlite_db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    with pytest.raises(ConstraintError) as caught:
        await sqlite_db.batch(
            [
                Statement("INSERT INTO t (v) VALUES (?)", ("x",)),
                Statement("CREATE TABLE extra (id INTEGER)"),
                Statement("INSERT INTO t (v) VALUES (?)", ("x",)),
            ]
        )
    assert caught.value.statement_index == 2
    assert await sqlite_db.query("SELECT count(*) AS n FROM t") == [{"n": 0}]
    tables = await sqlite_db.query("SELECT name FROM sqlite_master WHERE name = 'extra'")
    assert tables == []


async def test_batch_returns_one_result_per_statement_including_rows(
    sqlite_db: SqliteDatabase,
) -> None:
    results = await sqlite_db.batch(
        [
            Statement("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
            Statement("INSERT INTO t (v) VALUES (?), (?)", ("a", "b")),
            Statement("SELECT v FROM t ORDER BY id"),
        ]
    )
    assert len(results) == 3
    assert results[1].changes == 2 and results[1].last_row_id == 2
    assert results[2].rows == ({"v": "a"}, {"v": "b"})


async def test_constraint_violation_is_a_permanent_constraint_error(
    sqlite_db: SqliteDatabase,
) -> None:
    await sqlite_db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    with pytest.raises(ConstraintError) as caught:
        await sqlite_db.execute("INSERT INTO t (v) VALUES (NULL)")
    assert isinstance(caught.value, PermanentError)
    assert "NOT NULL constraint failed" in caught.value.sql_message


async def test_sql_error_is_permanent_and_keeps_the_sqlite_message(
    sqlite_db: SqliteDatabase,
) -> None:
    with pytest.raises(SqlError) as caught:
        await sqlite_db.query("SELECT * FROM nope")
    assert caught.value.sql_message == "no such table: nope"
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


async def test_locked_database_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE t (id INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with SqliteDatabase(path, busy_timeout=0.05) as db:
            with pytest.raises(TransientError):
                await db.batch([Statement("INSERT INTO t VALUES (1)")])
            with pytest.raises(TransientError):
                await db.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_statement_with_101_parameters_is_refused_before_running(
    sqlite_db: SqliteDatabase,
) -> None:
    with pytest.raises(StatementTooLargeError, match="101 > 100"):
        await sqlite_db.query(f"SELECT {placeholders(101)}", [1] * 101)
    rows = await sqlite_db.query("SELECT " + " + ".join("?" * 100) + " AS total", [1] * 100)
    assert rows == [{"total": 100}]


async def test_statement_over_100_000_bytes_is_refused(sqlite_db: SqliteDatabase) -> None:
    padding = "x" * (100_000 - len("SELECT '' AS a"))
    await sqlite_db.query(f"SELECT '{padding}' AS a")  # exactly the limit: allowed
    with pytest.raises(StatementTooLargeError, match="100001 bytes"):
        await sqlite_db.query(f"SELECT '{padding}x' AS a")


async def test_chunked_insert_respects_100_parameters_and_inserts_every_row(
    sqlite_db: SqliteDatabase,
) -> None:
    await sqlite_db.execute("CREATE TABLE t (a INTEGER, b TEXT, c REAL)")
    rows = [(number, f"row {number}", number / 2) for number in range(1000)]
    statements = chunked_insert("t", ["a", "b", "c"], rows)
    assert all(len(statement.params) <= MAX_BOUND_PARAMETERS for statement in statements)
    assert len(statements) == 31  # 33 rows (99 parameters) per statement
    await sqlite_db.batch(statements)
    assert await sqlite_db.query("SELECT count(*) AS n, sum(a) AS s FROM t") == [
        {"n": 1000, "s": sum(range(1000))}
    ]


def test_chunked_insert_splits_by_inlined_size_too() -> None:
    big = "y" * 30_000
    statements = chunked_insert("t", ["v"], [(big,)] * 7)
    assert [len(statement.params) for statement in statements] == [3, 3, 1]
    for statement in statements:
        check_statement(inline_params(statement.sql, statement.params))


def test_chunked_insert_supports_upserts_and_rejects_odd_identifiers() -> None:
    [statement] = chunked_insert(
        "t", ["id", "v"], [(1, "a")], suffix="ON CONFLICT(id) DO UPDATE SET v = excluded.v"
    )
    assert statement.sql.endswith("ON CONFLICT(id) DO UPDATE SET v = excluded.v")
    with pytest.raises(ValueError, match="identifier"):
        chunked_insert("t; DROP TABLE x", ["v"], [(1,)])
    with pytest.raises(ValueError, match="row 0"):
        chunked_insert("t", ["a", "b"], [(1,)])


def test_param_chunks_leave_room_for_other_parameters() -> None:
    chunks = list(param_chunks(list(range(250)), reserved=2))
    assert [len(chunk) for chunk in chunks] == [98, 98, 54]
    assert sum(chunks, ()) == tuple(range(250))


def test_split_sql_keeps_strings_comments_and_trigger_bodies_whole() -> None:
    script = (
        "-- header; with a semicolon\n"
        "CREATE TABLE a (v TEXT DEFAULT 'x;y');\n"
        "CREATE TRIGGER t BEFORE UPDATE ON a\nBEGIN\n  SELECT RAISE(ABORT, 'no; way');\nEND;\n"
        "/* done; */\n"
    )
    statements = split_sql(script)
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT 'x;y')")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END")


def test_inline_params_renders_sqlite_literals_outside_strings_and_comments() -> None:
    sql = "INSERT INTO t VALUES (?, ?, ?, ?, '?') -- ?\n"
    rendered = inline_params(sql, ["it's", 3, 1.5, None])
    assert rendered == "INSERT INTO t VALUES ('it''s', 3, 1.5, NULL, '?') -- ?\n"
    assert inline_params("SELECT ?2, ?1", ["a", b"\x01"]) == "SELECT X'01', 'a'"
    with pytest.raises(SqlError, match="placeholders"):
        inline_params("SELECT ?", [1, 2])


def test_render_literal_refuses_values_sql_text_cannot_carry() -> None:
    with pytest.raises(SqlError):
        render_literal(float("nan"))
    with pytest.raises(SqlError):
        render_literal("a\x00b")


async def test_using_a_closed_database_is_an_error(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "closed.sqlite")
    await db.query("SELECT 1")
    await db.close()
    await db.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await db.query("SELECT 1")
