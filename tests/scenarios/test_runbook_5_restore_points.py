"""Runbook 5, "If Need Rollback: restore from backup": restore points around every migration.

``reconciler migrate`` takes a restore point before each migration and keeps it with the
migration's record; ``--restore-before NNNN`` prints what is lost (the migrations and every
write since, with the time span), asks, and puts the whole database back; the fleet then
converges as before. A migrate killed between its restore point and its migration leaves the
migration pending, and the next run applies it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from reconciler.runtime.checkpoints import CRASH_ENV, CRASH_EXIT_CODE

from support.scenario import MIGRATIONS, Scenario

NEW = "9001_tenant_plans.sql"  # after any migration the repository has
PLANS = (
    "ALTER TABLE tenants ADD COLUMN plan TEXT;\n"
    "UPDATE tenants SET plan = 'legacy';\n"
    "CREATE TABLE plan_prices (plan TEXT PRIMARY KEY, cents INTEGER NOT NULL);\n"
)


def _applied(world: Scenario) -> list[str]:
    return [str(r["name"]) for r in world.rows("SELECT name FROM d1_migrations ORDER BY id")]


def _columns(world: Scenario, table: str) -> set[str]:
    return {str(r["name"]) for r in world.rows(f"PRAGMA table_info({table})")}


def _migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory)
    (directory / NEW).write_text(PLANS)
    return directory


def test_a_migration_applied_then_undone_to_its_restore_point(
    world: Scenario, tmp_path: Path
) -> None:
    world.tenant_with_site(domains=["www.acme.test"])
    assert world.settle().code == 0
    directory = _migrations(tmp_path)
    before = _applied(world)

    run = world.cli("migrate", "--dir", str(directory))
    assert run.code == 0, run.err
    assert f"restore point before {NEW}: " in run.out
    assert "plan" in _columns(world, "tenants")
    world.advance(600)
    world.execute("INSERT INTO plan_prices VALUES ('pro', 2900)")  # written after the migration

    asked = world.cli("migrate", "--restore-before", "9001")
    assert asked.code == 1  # no terminal, no --yes: nothing restored
    assert f"the point taken before {NEW}" in asked.out
    assert "every write since then is undone" in asked.out
    assert f"migrations undone (1):\n    {NEW}" in asked.out
    assert _applied(world) == [*before, NEW]

    done = world.cli("migrate", "--restore-before", "9001", "--yes")
    assert done.code == 0, done.err
    assert "to undo this restore: reconciler migrate --restore-to " in done.out
    assert _applied(world) == before
    assert "plan" not in _columns(world, "tenants")
    assert not world.rows("SELECT name FROM sqlite_master WHERE name = 'plan_prices'")
    assert world.rows("SELECT id FROM tenants") == [{"id": "acme"}]  # older data stays
    assert world.settle().code == 0  # the fleet converges on the restored database


def test_a_migrate_killed_after_its_restore_point_applies_the_migration_next_time(
    world: Scenario, tmp_path: Path
) -> None:
    directory = _migrations(tmp_path)
    before = _applied(world)
    env = {**os.environ, CRASH_ENV: "migrate.after-restore-point:1"}
    killed = subprocess.run(
        [sys.executable, "-m", "reconciler", "migrate", "--dir", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stdout + killed.stderr
    assert _applied(world) == before  # the point was taken; the migration never ran

    run = world.cli("migrate", "--dir", str(directory))
    assert run.code == 0, run.err
    assert _applied(world) == [*before, NEW]
    points = world.rows("SELECT name FROM reconciler_restore_points WHERE name = ?", NEW)
    assert len(points) == 1  # only the run that applied it keeps a point
