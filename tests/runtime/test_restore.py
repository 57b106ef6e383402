"""Restore points around migrations (runbook 5, "If Need Rollback"), on both backends.

``reconciler migrate`` takes a restore point before each migration (a snapshot of the SQLite
file; a D1 Time Travel bookmark over REST, against the sandbox's D1 simulator), keeps it with
the migration's record, and ``--restore-before NNNN`` / ``--restore-to BOOKMARK`` print what a
restore undoes, ask, and put the whole database back. Runs the CLI in-process.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.providers.d1 import SqliteDatabase
from reconciler.providers.d1_restore import SqliteSnapshots
from reconciler.runtime.migrate import discover, migrate
from reconciler.runtime.restore import plan_restore, render_plan

REPO_MIGRATIONS = [
    item.name for item in discover(Path(__file__).resolve().parents[2] / "migrations")
]
ADD_PLANS = "CREATE TABLE plans (id TEXT PRIMARY KEY);\nINSERT INTO plans VALUES ('pro');\n"
ADD_NOTES = "ALTER TABLE plans ADD COLUMN note TEXT;\n"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sql(path: Path, text: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(text).fetchall()
    finally:
        connection.close()


def without_leases(lines: list[str]) -> list[str]:
    """A dump without the leader lease: a restore keeps the live lease, not the restored one."""
    return [line for line in lines if not line.startswith('INSERT INTO "leases"')]


def undo_hint(out: str) -> str:
    found = re.search(r"to undo this restore: reconciler migrate --restore-to (\S+)", out)
    assert found is not None, out
    return found.group(1)


@pytest.fixture
def migrated(tmp_path: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A SQLite file with the repository's migrations, then 9001 and 9002 and some app data."""
    db = tmp_path / "app.sqlite"
    assert run_cli(capsys, "--database", str(db), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "9001_plans.sql").write_text(ADD_PLANS)
    (migrations_copy / "9002_notes.sql").write_text(ADD_NOTES)
    return db


def test_each_migration_gets_a_restore_point_kept_with_its_record(
    migrated: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "--database", str(migrated), "--dir", str(migrations_copy))
    assert code == 0
    assert "restore point before 9001_plans.sql: snapshot:" in out
    rows = sql(migrated, "SELECT name, kind FROM reconciler_restore_points ORDER BY id")
    assert [name for name, _ in rows] == [*REPO_MIGRATIONS, "9001_plans.sql", "9002_notes.sql"]
    assert {kind for _, kind in rows} == {"file snapshot"}
    code, out, _ = run_cli(
        capsys, "--database", str(migrated), "--dir", str(migrations_copy), "--status"
    )
    assert code == 0
    assert re.search(r"9002_notes.sql\s+applied .* restore point before: snapshot:\S+", out)


def test_restore_before_a_migration_prints_the_plan_and_needs_a_confirmation(
    migrated: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    assert run_cli(capsys, "--database", str(migrated), "--dir", str(migrations_copy))[0] == 0
    sql(migrated, "INSERT INTO plans (id, note) VALUES ('team', 'written after 9002')")
    before = dump(migrated)

    code, out, err = run_cli(capsys, "--database", str(migrated), "--restore-before", "9001")

    assert code == 1  # standard input is not a terminal and --yes was not given
    assert "confirm with --yes" in err and "not restored" in err
    assert "the point taken before 9001_plans.sql at " in out
    assert "every write since then is undone" in out
    assert "migrations undone (2):" in out
    assert re.search(r"9001_plans.sql  applied at \S+ \S+\n\s+9002_notes.sql", out)
    assert dump(migrated) == before  # nothing restored without the confirmation


def test_a_confirmed_restore_puts_the_whole_database_back_and_can_be_undone(
    migrated: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str], dump: Any
) -> None:
    (migrations_copy / "9002_notes.sql").rename(migrations_copy / "x9002.txt")
    assert run_cli(capsys, "--database", str(migrated), "--dir", str(migrations_copy))[0] == 0
    (migrations_copy / "x9002.txt").rename(migrations_copy / "9002_notes.sql")
    before_9002 = dump(migrated)
    assert run_cli(capsys, "--database", str(migrated), "--dir", str(migrations_copy))[0] == 0
    sql(migrated, "INSERT INTO plans (id, note) VALUES ('team', 'lost by the restore')")
    after = dump(migrated)

    args = ("--database", str(migrated), "--restore-before", "9002_notes", "--yes")
    code, out, _ = run_cli(capsys, *args)

    assert code == 0
    assert "migrations undone (1):" in out
    assert without_leases(dump(migrated)) == without_leases(before_9002)  # and the later row
    hint = undo_hint(out)
    code, _, _ = run_cli(capsys, "--database", str(migrated), "--restore-to", hint)
    assert code == 1  # asks again
    code, _, _ = run_cli(capsys, "--database", str(migrated), "--restore-to", hint, "--yes")
    assert code == 0
    assert without_leases(dump(migrated)) == without_leases(after)


def test_a_bookmark_outside_the_ledger_is_planned_as_unknown_loss(
    migrated: Path, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (migrations_copy / "9003_broken.sql").write_text("INSERT INTO nowhere VALUES (1);\n")
    code, _, err = run_cli(capsys, "--database", str(migrated), "--dir", str(migrations_copy))
    assert code == 1
    found = re.search(r"restore point (snapshot:\S+) \(to return there", err)
    assert found is not None, err  # a failed migration prints the point to return to
    code, out, _ = run_cli(capsys, "--database", str(migrated), "--restore-to", found.group(1))
    assert "not in the restore-point ledger" in out
    assert code == 1


def test_a_migration_without_restore_point_is_refused_by_name(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "--database", str(migrated), "--restore-before", "9999", "--yes")
    assert code == 1
    assert "no restore point recorded before migration '9999'" in err


async def test_the_plan_is_computed_before_anything_changes(
    tmp_path: Path, migrations_copy: Path
) -> None:
    (migrations_copy / "9001_plans.sql").write_text(ADD_PLANS)
    async with SqliteDatabase(tmp_path / "p.sqlite") as db:
        points = SqliteSnapshots(db)
        report = await migrate(db, migrations_copy, restore_points=points)
        assert [name for name, _ in report.restore_points][-1] == "9001_plans.sql"
        plan = await plan_restore(db, before="9001")
        assert [item.name for item in plan.undone] == ["9001_plans.sql"]
        assert plan.bookmark == report.restore_points[-1][1]
        lines = render_plan(plan, "p.sqlite")
        assert lines[0] == f"restore p.sqlite to {plan.bookmark}"
        assert (await db.query("SELECT id FROM plans")) == [{"id": "pro"}]


# --------------------------------------------------------------------------- D1 over REST


@pytest.fixture
def d1_env(cf: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in cf.settings_env().items():
        monkeypatch.setenv(name, value)
    return cf


def remote(cf: Any, text: str) -> list[tuple[Any, ...]]:
    return sql(cf.sim.d1_path, text)


def test_over_rest_the_restore_point_is_a_d1_bookmark_and_restore_is_time_travel(
    d1_env: Any, migrations_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--dir", str(migrations_copy)]) == 0
    (migrations_copy / "9001_plans.sql").write_text(ADD_PLANS)
    assert main(["migrate", "--dir", str(migrations_copy)]) == 0
    out = capsys.readouterr().out
    assert "restore point before 9001_plans.sql: " in out and "(D1 Time Travel bookmark)" in out
    calls = [call for call in d1_env.calls() if "time_travel" in str(call)]
    assert calls, "the bookmark comes from GET .../time_travel/bookmark"
    assert ("plans",) in remote(d1_env, "SELECT name FROM sqlite_master WHERE type = 'table'")

    assert main(["migrate", "--restore-before", "9001", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "migrations undone (1):\n    9001_plans.sql" in out
    tables = {row[0] for row in remote(d1_env, "SELECT name FROM sqlite_master")}
    assert "plans" not in tables
    names = [row[0] for row in remote(d1_env, "SELECT name FROM d1_migrations ORDER BY id")]
    assert names == REPO_MIGRATIONS
    assert main(["migrate", "--restore-to", undo_hint(out), "--yes"]) == 0
    assert remote(d1_env, "SELECT id FROM plans") == [("pro",)]
