"""``reconciler apply`` in process against the sandbox, with fake handlers (not the real ones).

The sandbox (Cloudflare and Evolution simulators, D1 as a SQLite file; no localstripe) is
converged to the example fleet, then one hostname is deleted so the plan has one action.
``WriterWorld.handlers`` (``reconciler/wiring/``) is replaced by fakes that record their calls.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.lease import LeaderLease
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.wiring import WriterWorld

from support.execute import FakeHandler, handlers_for, rows
from support.plan import EXAMPLE_SPECS, converged, example_specs


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox converged to the example fleet, its settings in the environment."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        for name, value in sandbox.settings_env().items():
            monkeypatch.setenv(name, value)
        for name in ("STRIPE_API_KEY", "STRIPE_API_BASE", "RECONCILER_CRASH_AT"):
            monkeypatch.delenv(name, raising=False)
        converged.converge(sandbox.cloudflare, sandbox.cloudflare.d1_path, example_specs())
        yield sandbox


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHandler:
    handler = FakeHandler("cloudflare")
    monkeypatch.setattr(WriterWorld, "handlers", lambda self: handlers_for(handler))
    return handler


def drift(world: Sandbox, hostname: str = "shop.acmebakery.com") -> None:
    sim = world.cloudflare
    sim.hostnames.delete(sim.hostnames.by_name[hostname])


def apply(world: Sandbox, *args: str) -> int:
    return main(["apply", "--now", str(world.clock.now()), "--specs", str(EXAMPLE_SPECS), *args])


def intents(world: Sandbox) -> list[dict[str, object]]:
    return rows(world.cloudflare.d1_path, "SELECT * FROM intents")


def test_apply_with_yes_executes_the_plan_and_journals_it(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    drift(world)
    assert apply(world, "--yes", "--color", "never") == 0
    captured = capsys.readouterr()
    assert len(fake.calls) == 1
    assert "Apply: 1 applied." in captured.out
    assert "[1/1] create hostname shop.acmebakery.com ... applied" in captured.err
    [row] = intents(world)
    assert row["target"] == "Hostname/shop.acmebakery.com"
    assert row["state"] == "done"


def test_apply_without_yes_on_a_non_terminal_refuses_and_changes_nothing(
    world: Sandbox,
    fake: FakeHandler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    drift(world)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal, even if it says y
    assert apply(world) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert fake.calls == []
    assert intents(world) == []


def test_a_terminal_answer_other_than_yes_cancels(
    world: Sandbox,
    fake: FakeHandler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    drift(world)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert apply(world) == 1
    err = capsys.readouterr().err
    assert "Apply these 1 actions? [y/N]" in err
    assert "Apply cancelled" in err
    assert fake.calls == []


def test_a_converged_world_applies_nothing_and_asks_nothing(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apply(world) == 0  # no --yes needed: there is nothing to confirm
    assert "nothing to do" in capsys.readouterr().out
    assert fake.calls == []


def test_the_json_report_parses_and_carries_the_plan(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    drift(world)
    assert apply(world, "--yes", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format_version"] == "1"
    assert document["ok"] is True
    assert [o["status"] for o in document["outcomes"]] == ["applied"]
    assert document["plan"]["order"] == [document["outcomes"][0]["action_id"]]


def test_a_failed_action_exits_1(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fail(action: Action, ctx: ActionContext) -> Outcome:
        return Outcome(action.id, Status.FAILED_PERMANENT, "hostname refused")

    fake.behaviour = fail
    drift(world)
    assert apply(world, "--yes", "--color", "never") == 1
    out = capsys.readouterr().out
    assert "Needs attention:" in out
    assert "hostname refused" in out


def test_invalid_specs_apply_nothing(
    world: Sandbox, fake: FakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    site = specs / "sites" / "acme-home.yaml"
    site.write_text(site.read_text().replace("tenant: acme", "tenant: nobody"))
    drift(world)
    code = main(["apply", "--now", str(world.clock.now()), "--specs", str(specs), "--yes"])
    assert code == 1
    assert "nothing was applied" in capsys.readouterr().err
    assert fake.calls == []


def statuses(world: Sandbox, resource: str) -> dict[str, tuple[str, str]]:
    found = rows(
        world.cloudflare.d1_path,
        "SELECT condition_type, status, reason FROM resource_status WHERE resource = ?",
        (resource,),
    )
    return {str(r["condition_type"]): (str(r["status"]), str(r["reason"])) for r in found}


def test_apply_records_conditions_so_status_is_right_without_the_daemon(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    drift(world)
    assert apply(world, "--yes", "--color", "never") == 0
    assert statuses(world, "Hostname/shop.acmebakery.com")["Synced"] == ("True", "Applied")
    assert statuses(world, "Site/acme-home")["Synced"][0] == "True"
    assert "Stuck" not in statuses(world, "Site/acme-home")  # only the daemon's queue knows
    capsys.readouterr()
    assert main(["status", "--format", "json", "--site", "acme-shop"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {row["resource"] for row in shown} >= {"Site/acme-shop", "Hostname/shop.acmebakery.com"}


def test_a_resource_the_specs_no_longer_declare_leaves_the_status(
    world: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    assert main(["apply", "--now", str(world.clock.now()), "--specs", str(specs), "--yes"]) == 0
    assert statuses(world, "Hostname/shop.acmebakery.com")  # recorded while declared
    (specs / "sites" / "acme-shop.yaml").unlink()  # its hostname is retained (no marker)
    code = main(["apply", "--now", str(world.clock.now()), "--specs", str(specs), "--yes"])
    assert code == 0, capsys.readouterr()
    assert statuses(world, "Hostname/shop.acmebakery.com") == {}
    assert statuses(world, "Site/acme-shop") == {}
    assert statuses(world, "Site/acme-home")["Synced"][0] == "True"


def _daemon_lease(world: Sandbox, holder: str) -> None:
    """A daemon's lease, taken through the same table and name a daemon uses."""

    async def take() -> None:
        db = SqliteDatabase(world.cloudflare.d1_path)
        try:
            lease = LeaderLease(db, holder=holder, ttl=600.0)
            assert await lease.try_acquire()
        finally:
            await db.close()

    asyncio.run(take())


def test_apply_while_a_daemon_leads_is_refused_naming_the_holder(
    world: Sandbox, fake: FakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    drift(world)
    _daemon_lease(world, "daemon-host:4242:abcd1234")
    assert apply(world, "--yes", "--color", "never") == 1
    err = capsys.readouterr().err
    assert "refusing to apply: the leader lease 'reconciler-leader' is held by " in err
    assert "daemon-host:4242:abcd1234" in err
    assert fake.calls == []
    assert intents(world) == []


def test_a_lease_left_by_a_killed_apply_on_this_host_is_taken_over(
    world: Sandbox, fake: FakeHandler
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    drift(world)
    _daemon_lease(world, f"{socket.gethostname()}:{dead.stdout.strip()}:deadbeef:apply")
    assert apply(world, "--yes", "--color", "never") == 0
    assert len(fake.calls) == 1
    [lease] = rows(world.cloudflare.d1_path, "SELECT * FROM leases")
    assert lease["fencing_token"] == 2  # a new term
    assert lease["expires_at"] == 0  # released when apply finished


def test_a_pages_project_no_site_claims_is_shown_unmanaged_by_plan(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = sqlite3.connect(world.cloudflare.d1_path)
    with connection:
        connection.execute(
            "INSERT INTO sites (id, tenant_id, name, pages_project) "
            "VALUES ('ghost', 'acme', 'Ghost', 'ghost-project')"
        )
    connection.close()
    code = main(["plan", "--now", str(world.clock.now()), "--specs", str(EXAMPLE_SPECS),
                 "--color", "never"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0  # a note, not a change
    assert "PagesProject/ghost-project" in out
    assert "site ghost, which no spec declares" in out
