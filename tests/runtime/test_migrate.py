"""``reconciler migrate`` and :func:`reconciler.runtime.migrate.migrate` on SQLite files.

Covers the issue's "done when" for migrations: an empty file gets the full schema, a second run
does nothing, a failing statement leaves the database exactly as before that migration and the
command exits 1 naming the file and the SQL error; and the refusals: edited, missing, partially
applied and out-of-order migrations. Runs the CLI in-process through ``reconciler.cli.main``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.errors import MigrationError
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import (
    MIGRATIONS_DDL,
    MigrationState,
    discover,
    find_partial,
    migrate,
    migration_status,
)

APP_TABLES = {
    "tenants",
    "billing_accounts",
    "subscriptions",
    "invoices",
    "dunning_step_logs",
    "sites",
    "site_versions",
    "publish_versions",
    "domains",
    "performance_budgets",
}
LEDGER_TABLES = {"intents", "resource_status", "events", "leases"}

# The repository's migrations (others may add files); test-added ones are numbered 9000+.
REPO_MIGRATIONS = [
    item.name for item in discover(Path(__file__).resolve().parents[2] / "migrations")
]
UP_TO_DATE = f"database is up to date: {len(REPO_MIGRATIONS)} migrations applied"

FAILING = """-- a migration whose third statement fails
CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT);
INSERT INTO tenants (id, name) VALUES ('acme', 'Acme');
INSERT INTO nonexistent_table VALUES (1);
"""


def tables(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}
    finally:
        connection.close()


def applied_names(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT name FROM d1_migrations ORDER BY id")]
    finally:
        connection.close()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_empty_sqlite_file_gets_the_full_schema(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fresh.sqlite"
    code, out, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 0, err
    assert APP_TABLES | LEDGER_TABLES | {"d1_migrations"} <= tables(db)
    assert applied_names(db) == REPO_MIGRATIONS
    assert "applying" in out and "0001_app_schema.sql" in out
    assert UP_TO_DATE in out


def test_second_run_does_nothing_and_says_so(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    db = tmp_path / "twice.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    before = dump(db)
    code, out, _ = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 0
    assert out.strip() == UP_TO_DATE
    assert dump(db) == before


def test_failing_statement_leaves_the_database_as_before_that_migration(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    db = tmp_path / "fail.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    before = dump(db)
    (migrations_copy / "9003_partial.sql").write_text(FAILING)
    (migrations_copy / "9004_after.sql").write_text("CREATE TABLE after_failure (id INTEGER);\n")

    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))

    assert code == 1
    assert f"error: {migrations_copy / '9003_partial.sql'}: no such table: nonexistent_table" in err
    assert "statement 3" in err
    # no audit table, no tenant row, no bookkeeping row, no 0004; only the (released) lease
    # migrate held while it tried
    assert [line for line in dump(db) if '"leases"' not in line] == [
        line for line in before if '"leases"' not in line
    ]
    assert "after_failure" not in tables(db)


def test_migrations_before_the_failing_one_stay_applied(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mixed.sqlite"
    (migrations_copy / "9003_partial.sql").write_text(FAILING)
    code, out, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 1
    assert "applied" in out
    assert "9003_partial.sql" in err
    assert applied_names(db) == REPO_MIGRATIONS
    assert "audit" not in tables(db)


def test_relative_dir_shows_the_path_as_given(
    tmp_path: Path,
    migrations_copy: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (migrations_copy / "9003_x.sql").write_text("CREATE TABLE broken (id INTEGER,);\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "--database", "rel.sqlite")
    assert code == 1
    assert err.startswith("error: migrations/9003_x.sql: ")
    assert "syntax error" in err


def test_edited_migration_is_refused_and_nothing_is_applied(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    db = tmp_path / "edited.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    first = migrations_copy / "0001_app_schema.sql"
    first.write_text(first.read_text() + "\nCREATE TABLE sneaky (id INTEGER);\n")
    (migrations_copy / "9003_next.sql").write_text("CREATE TABLE next_one (id INTEGER);\n")
    before = dump(db)

    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))

    assert code == 1
    assert "0001_app_schema.sql: edited after it was applied" in err
    assert dump(db) == before


def test_line_ending_changes_do_not_count_as_edits(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crlf.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    first = migrations_copy / "0001_app_schema.sql"
    first.write_bytes(first.read_bytes().replace(b"\n", b"\r\n"))
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0


def test_applied_migration_whose_file_is_gone_is_refused(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "missing.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "0002_reconciler_ledger.sql").unlink()
    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 1
    assert "0002_reconciler_ledger.sql: recorded in d1_migrations but the file is gone" in err


def test_partially_applied_migration_is_refused_naming_file_and_objects(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    db = tmp_path / "partial.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "9003_audit.sql").write_text(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n"
        "CREATE INDEX audit_id ON audit (id);\n"
        "ALTER TABLE sites ADD COLUMN plan TEXT;\n"
        "CREATE TABLE audit_two (id INTEGER);\n"
    )
    # Someone ran half of it by hand: the table, its index and the column exist, no row.
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY); CREATE INDEX audit_id ON audit (id);"
        "ALTER TABLE sites ADD COLUMN plan TEXT;"
    )
    connection.close()
    before = dump(db)

    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))

    assert code == 1
    assert "9003_audit.sql: looks partially applied" in err
    assert "table audit" in err and "index audit_id" in err and "column sites.plan" in err
    assert "audit_two" not in err
    assert dump(db) == before


def test_idempotent_compensating_migration_is_not_mistaken_for_a_partial_one(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "compensate.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "9003_fix.sql").write_text(
        "DROP TABLE IF EXISTS events;\n"
        "CREATE TABLE events (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE IF NOT EXISTS tenants (id TEXT);\n"
    )
    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 0, err


def test_pending_migration_numbered_below_an_applied_one_is_refused(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "order.sqlite"
    (migrations_copy / "9005_later.sql").write_text("CREATE TABLE later (id INTEGER);\n")
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "9003_late.sql").write_text("CREATE TABLE late (id INTEGER);\n")
    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 1
    assert "9003_late.sql" in err and "9005_later.sql is already applied" in err


async def test_migrations_applied_by_wrangler_are_adopted_then_guarded(
    tmp_path: Path, migrations_copy: Path
) -> None:
    path = tmp_path / "wrangler.sqlite"
    # What `wrangler d1 migrations apply` leaves behind: its table, the schema, no checksums.
    connection = sqlite3.connect(path)
    connection.execute(MIGRATIONS_DDL)
    for migration in discover(migrations_copy):
        connection.executescript(migration.path.read_text())
        connection.execute("INSERT INTO d1_migrations (name) values (?)", (migration.name,))
    connection.commit()
    connection.close()
    async with SqliteDatabase(path) as db:
        statuses = await migration_status(db, migrations_copy)
        assert {status.state for status in statuses} == {MigrationState.UNVERIFIED}
        report = await migrate(db, migrations_copy)
        assert report.applied == ()
        assert report.adopted == tuple(REPO_MIGRATIONS)
        first = migrations_copy / "0001_app_schema.sql"
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(db, migrations_copy)


async def test_dry_run_writes_nothing_and_lists_what_it_would_apply(
    tmp_path: Path, migrations_copy: Path, dump: Any
) -> None:
    path = tmp_path / "dry.sqlite"
    lines: list[str] = []
    async with SqliteDatabase(path) as db:
        report = await migrate(db, migrations_copy, dry_run=True, progress=lines.append)
    assert report.applied == tuple(REPO_MIGRATIONS)
    assert all(line.startswith("would apply") for line in lines)
    assert tables(path) == set()


def test_dry_run_exits_2_when_migrations_are_pending(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "pending.sqlite"
    code, out, _ = run_cli(
        capsys, "--database", str(db), "--dir", str(migrations_copy), "--dry-run"
    )
    assert code == 2
    assert "would apply" in out


def test_status_lists_applied_and_pending_migrations(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "status.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "9003_new.sql").write_text("CREATE TABLE newer (id INTEGER);\n")
    code, out, _ = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy), "--status")
    assert code == 0
    assert "0001_app_schema.sql" in out and "applied" in out
    assert "9003_new.sql" in out and "pending" in out


def test_wrapping_transaction_from_sqlite_dump_is_stripped_like_wrangler_does(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "dumped.sqlite"
    (migrations_copy / "9003_dump.sql").write_text(
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE dumped (id INTEGER);\nCOMMIT;\n"
    )
    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 0, err
    assert "dumped" in tables(db)


def test_file_with_several_transactions_is_refused(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (migrations_copy / "9003_two.sql").write_text(
        "BEGIN TRANSACTION;\nSELECT 1;\nCOMMIT;\nBEGIN TRANSACTION;\nSELECT 2;\nCOMMIT;\n"
    )
    code, _, err = run_cli(
        capsys, "--database", str(tmp_path / "t.sqlite"), "--dir", str(migrations_copy)
    )
    assert code == 1
    assert "several transactions" in err


def test_unnumbered_migration_file_is_refused(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (migrations_copy / "cleanup.sql").write_text("SELECT 1;\n")
    code, _, err = run_cli(
        capsys, "--database", str(tmp_path / "u.sqlite"), "--dir", str(migrations_copy)
    )
    assert code == 1
    assert "cleanup.sql" in err


def test_missing_migrations_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "--database", str(tmp_path / "d.sqlite"), "--dir", str(tmp_path / "nope")
    )
    assert code == 1
    assert "no such migrations directory" in err


def test_without_database_flag_the_sqlite_path_comes_from_the_environment(
    tmp_path: Path,
    migrations_copy: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "from-env.sqlite"
    monkeypatch.setenv("D1_BACKEND", "sqlite")
    monkeypatch.setenv("D1_SQLITE_PATH", str(path))
    code, _, err = run_cli(capsys, "--dir", str(migrations_copy))
    assert code == 0, err
    assert applied_names(path) == REPO_MIGRATIONS


def test_partial_detection_follows_drops_and_renames_in_order() -> None:
    migration_a = _file("0003_a.sql", "DROP TABLE old; ALTER TABLE t RENAME TO t2;")
    migration_b = _file(
        "0004_b.sql",
        "CREATE TABLE old (id INTEGER); CREATE TABLE t (id INTEGER); "
        "CREATE INDEX t2_idx ON t2 (id); ALTER TABLE t2 ADD COLUMN c TEXT;",
    )
    objects = {
        "old": ("table", "old"),
        "old_idx": ("index", "old"),
        "t": ("table", "t"),
        "t2_idx": ("index", "t"),
    }
    found = find_partial([migration_a, migration_b], objects, {"t": {"id", "c"}})
    assert found == {"0004_b.sql": ["index t2_idx", "column t2.c"]}


def _file(name: str, text: str) -> Any:
    from reconciler.providers.d1 import split_sql
    from reconciler.runtime.migrate import MigrationFile

    return MigrationFile(
        name=name,
        path=Path(name),
        number=int(name[:4]),
        sha256="0" * 64,
        statements=tuple(split_sql(text)),
    )


def test_d1_backend_without_database_id_is_a_clear_error(
    migrations_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D1_BACKEND", "d1")
    monkeypatch.delenv("D1_DATABASE_ID", raising=False)
    code, _, err = run_cli(capsys, "--dir", str(migrations_copy))
    assert code == 1
    assert "D1_DATABASE_ID" in err


def test_migrate_while_a_daemon_leads_is_refused_naming_the_holder(
    tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pending migrations rebuild tables a leading daemon writes to: one writer at a time."""
    import asyncio

    from reconciler.providers.d1 import SqliteDatabase
    from reconciler.runtime.lease import LeaderLease

    db = tmp_path / "leased.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0

    async def lead() -> None:
        async with SqliteDatabase(db) as database:
            assert await LeaderLease(database, holder="daemon-a:77:cafe", ttl=600).try_acquire()

    asyncio.run(lead())
    (migrations_copy / "9001_more.sql").write_text("CREATE TABLE more (id INTEGER);\n")
    code, _, err = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))
    assert code == 1
    assert "refusing to migrate: the leader lease 'reconciler-leader' is held by daemon-a" in err
    assert "more" not in tables(db)
    code, out, _ = run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy), "--status")
    assert "9001_more.sql" in out  # still pending; status needs no lease
