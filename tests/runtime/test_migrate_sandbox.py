"""``reconciler migrate`` with ``D1_BACKEND=d1``: the real Cloudflare client, over HTTP, against
the sandbox's D1 simulator (the ``cf`` fixture of ``tests/conftest.py``, on loopback).

This is the production path end to end: migration batches travel as one ``/query`` request
each, values inlined, and the simulator runs them as one transaction like D1 does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.runtime.migrate import discover

REPO_MIGRATIONS = [
    item.name for item in discover(Path(__file__).resolve().parents[2] / "migrations")
]


def remote(cf: Any, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(cf.sim.d1_path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


@pytest.fixture
def d1_env(cf: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in cf.settings_env().items():
        monkeypatch.setenv(name, value)
    return cf


def test_migrate_over_rest_creates_the_schema_then_has_nothing_to_do(
    d1_env: Any, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--dir", str(migrations_copy)]) == 0
    first = capsys.readouterr().out
    assert f"database is up to date: {len(REPO_MIGRATIONS)} migrations applied" in first
    names = [row[0] for row in remote(d1_env, "SELECT name FROM d1_migrations ORDER BY id")]
    assert names == REPO_MIGRATIONS
    tables = {row[0] for row in remote(d1_env, "SELECT name FROM sqlite_master")}
    assert {"tenants", "publish_versions", "domains", "intents", "events"} <= tables

    calls_before = len(d1_env.calls())
    assert main(["migrate", "--dir", str(migrations_copy)]) == 0
    second = capsys.readouterr().out
    assert second.strip() == f"database is up to date: {len(REPO_MIGRATIONS)} migrations applied"
    assert len(d1_env.calls()) - calls_before < 10  # reads only: no migration was sent


def test_failed_migration_over_rest_is_rolled_back_and_reported(
    d1_env: Any, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (migrations_copy / "9003_partial.sql").write_text(
        "CREATE TABLE audit (id INTEGER);\n"
        "INSERT INTO audit VALUES (1);\n"
        "INSERT INTO nonexistent_table VALUES (1);\n"
    )
    assert main(["migrate", "--dir", str(migrations_copy)]) == 1
    err = capsys.readouterr().err
    assert f"error: {migrations_copy / '9003_partial.sql'}: " in err
    assert "no such table: nonexistent_table: SQLITE_ERROR; the database before it is " in err
    assert "(to return there: reconciler migrate --restore-to " in err  # D1's bookmark
    tables = {row[0] for row in remote(d1_env, "SELECT name FROM sqlite_master")}
    assert "audit" not in tables
    names = [row[0] for row in remote(d1_env, "SELECT name FROM d1_migrations ORDER BY id")]
    assert names == REPO_MIGRATIONS
