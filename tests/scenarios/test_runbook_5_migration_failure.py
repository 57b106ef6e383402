"""Runbook 5, database migration failure: a syntax error, then a partially applied migration.

``reconciler migrate`` applies each file with its ``d1_migrations`` row in one transaction, so
a failing file changes nothing and the error names it; a migration whose objects already exist
without its row (partially applied by hand) is refused until a compensating version of it is
written. After the fix, ``migrate`` applies it and ``apply`` converges the fleet as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from support.scenario import MIGRATIONS, Scenario

# numbered after the repository's own migrations, whatever their count
NEW = f"{max(int(m.name[:4]) for m in MIGRATIONS.glob('*.sql')) + 1:04d}_site_notes.sql"
CREATE = "CREATE TABLE site_notes (id INTEGER PRIMARY KEY, note TEXT);\n"
BAD = CREATE + "ALTER TABLE sites ADD COLUMN notes TEXT DEFAULT;\n"  # DEFAULT without a value
GOOD = CREATE + "ALTER TABLE sites ADD COLUMN notes TEXT;\n"
COMPENSATING = (
    "CREATE TABLE IF NOT EXISTS site_notes (id INTEGER PRIMARY KEY, note TEXT);\n"
    "ALTER TABLE sites ADD COLUMN notes TEXT;\n"
)


def _schema(world: Scenario) -> list[tuple[str, str]]:
    rows = world.rows("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
    return [(str(r["name"]), str(r["sql"])) for r in rows]


def _applied(world: Scenario) -> list[str]:
    return [str(r["name"]) for r in world.rows("SELECT name FROM d1_migrations ORDER BY id")]


def test_a_failing_migration_changes_nothing_and_a_partial_one_is_refused_until_fixed(
    world: Scenario, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory)
    migration = directory / NEW
    applied = _applied(world)
    schema = _schema(world)

    migration.write_text(BAD)
    run = world.cli("migrate", "--dir", str(directory))
    assert run.code == 1
    assert NEW in run.err
    assert "statement 2: ALTER TABLE sites ADD COLUMN notes TEXT DEFAULT" in run.err
    assert _applied(world) == applied
    assert _schema(world) == schema  # the file's first statement was rolled back too

    # Someone ran the first statement by hand; the fixed file now looks partially applied.
    world.execute("CREATE TABLE site_notes (id INTEGER PRIMARY KEY, note TEXT)")
    migration.write_text(GOOD)
    run = world.cli("migrate", "--dir", str(directory))
    assert run.code == 1
    assert NEW in run.err
    assert "partially applied" in run.err
    assert "site_notes" in run.err
    assert _applied(world) == applied

    # The runbook's compensating migration: complete what is missing, idempotently.
    migration.write_text(COMPENSATING)
    run = world.cli("migrate", "--dir", str(directory))
    assert run.code == 0, run.err
    assert _applied(world) == [*applied, NEW]
    assert "notes" in {r["name"] for r in world.rows("PRAGMA table_info(sites)")}
    assert world.cli("migrate", "--dir", str(directory)).code == 0  # nothing left to do

    world.tenant_with_site(domains=["www.acme.test"])
    assert world.settle().code == 0
    [live] = [r for r in world.publishes("acme-home") if r["status"] == "live"]
    assert live["version_number"] == 1
