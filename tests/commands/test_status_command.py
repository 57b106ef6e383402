"""``reconciler status``: table and JSON output, filters, and the missing-migration error."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.commands.status import age, render_table
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import migrate
from reconciler.runtime.status import ConditionUpdate, ResourceStatus, StatusStore

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
TWO_HOURS_AGO = time.time() - 7_200


async def _fill(path: Path) -> None:
    async with SqliteDatabase(path) as db:
        await migrate(db, MIGRATIONS)
        store = StatusStore(db, lambda: TWO_HOURS_AGO)
        await store.set_many(
            [
                ConditionUpdate(
                    "Site/acme-home",
                    "Synced",
                    True,
                    "Published",
                    "version 12 is live",
                    commit="abc",
                    tenant="acme",
                ),
                ConditionUpdate(
                    "Hostname/www.acme.com",
                    "Stuck",
                    True,
                    "RecreateLimit",
                    "recreated 3 times; still failing",
                    last_error="ssl validation failed",
                    tenant="acme",
                    site="acme-home",
                ),
                ConditionUpdate("Tenant/bistro", "PaymentCurrent", False, "PastDue", "9 days"),
            ]
        )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "d1.sqlite"
    asyncio.run(_fill(path))
    return path


def test_the_table_lists_every_condition_sorted(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--database", str(database)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RESOURCE", "CONDITION", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert [line.split()[:5] for line in out[1:]] == [
        ["Hostname/www.acme.com", "Stuck", "True", "RecreateLimit", "2h"],
        ["Site/acme-home", "Synced", "True", "Published", "2h"],
        ["Tenant/bistro", "PaymentCurrent", "False", "PastDue", "2h"],
    ]
    assert out[1].endswith("recreated 3 times; still failing")


def test_filters_narrow_the_table(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--database", str(database), "--site", "acme-home"]) == 0
    resources = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert resources == ["Hostname/www.acme.com", "Site/acme-home"]
    assert main(["status", "--database", str(database), "--condition", "stuck"]) == 0
    resources = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert resources == ["Hostname/www.acme.com"]
    assert main(["status", "--database", str(database), "--tenant", "nobody"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no conditions recorded" in captured.err


def test_json_gives_a_list_of_objects(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["status", "--database", str(database), "--tenant", "acme", "--format", "json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["resource"] for row in rows] == ["Hostname/www.acme.com", "Site/acme-home"]
    stuck = rows[0]
    assert stuck["condition"] == "Stuck"
    assert stuck["status"] == "True"
    assert stuck["last_error"] == "ssl validation failed"
    assert (stuck["tenant"], stuck["site"]) == ("acme", "acme-home")
    assert rows[1]["observed_commit"] == "abc"
    assert rows[1]["last_transition_at"].endswith("Z")


def test_the_database_comes_from_the_environment_without_a_flag(
    database: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D1_BACKEND", "sqlite")
    monkeypatch.setenv("D1_SQLITE_PATH", str(database))
    assert main(["status", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_a_database_without_migrations_says_to_run_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.sqlite"

    async def create() -> None:
        async with SqliteDatabase(empty) as db:
            await db.execute("CREATE TABLE unrelated (x INTEGER)")

    asyncio.run(create())
    assert main(["status", "--database", str(empty)]) == 1
    assert "reconciler migrate" in capsys.readouterr().err


def test_a_missing_database_file_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.sqlite"
    assert main(["status", "--database", str(missing)]) == 1
    assert "reconciler migrate" in capsys.readouterr().err
    assert not missing.exists()


def test_messages_are_cut_to_the_terminal_width() -> None:
    row = ResourceStatus(
        resource="Site/a",
        condition="Ready",
        status=False,
        reason="BuildFailed",
        message="x" * 500,
        last_error=None,
        observed_commit=None,
        tenant=None,
        site=None,
        last_transition_at=0.0,
        updated_at=0.0,
    )
    lines = render_table([row], now=30.0, width=80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].endswith("…")
    assert render_table([row], now=30.0, width=None)[1].endswith("x" * 500)


def test_ages_read_like_kubectl() -> None:
    assert [age(s) for s in (5, 125, 7_200, 3 * 86_400, -1)] == ["5s", "2m", "2h", "3d", "0s"]
