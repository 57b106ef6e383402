"""Runbook 6, "If Deploy Broken: rollback immediately", as desired state (``kind: Worker``).

The sandbox seeds the API Worker ``site-builder-api-production`` with three versions, version 2
serving; version 3 answers 500 on ``/healthz``. A commit moves the spec to version 3 with a
health check and a split schedule: ``apply`` serves 10 % of traffic on it, the check fails, and
traffic goes back to version 2 with no human; the plan then blocks version 3 (gate ``health``)
with a note until the spec changes, and the revert to version 2 makes the specs agree (nothing
to do). A rollback is a deployment of an existing version: never an upload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.checkpoints import CRASH_ENV, CRASH_EXIT_CODE

from support.scenario import Scenario

SCRIPT = "site-builder-api-production"


def _worker(world: Scenario, version: int, *, steps: list[int] | None = None) -> None:
    base = world.sandbox.control_url.removesuffix("/__sandbox")
    world.fleet.workers["api"] = {
        "script": SCRIPT,
        "production": {"version": version},
        "health_check": {
            "url": f"{base}/__workers/{SCRIPT}/healthz",
            "expect": [200],
            "steps": steps or [],
        },
    }


def _serving(world: Scenario) -> list[tuple[int, float]]:
    store: Any = world.sandbox.cloudflare.worker_versions
    script = store.scripts[SCRIPT]
    numbers = {v.id: v.number for v in script.versions}
    return [(numbers[v], p) for v, p in script.deployments[-1].split]


def _deployments(world: Scenario, since: int) -> list[dict[str, Any]]:
    return [
        c
        for c in world.cf_calls(since)
        if c["method"] == "POST" and str(c["path"]).endswith("/deployments")
    ]


def _uploads(world: Scenario, since: int) -> list[dict[str, Any]]:
    return [c for c in world.cf_calls(since) if c["method"] == "PUT" and "/workers/" in c["path"]]


def test_a_broken_version_is_turned_back_by_its_health_check_and_the_revert_agrees(
    world: Scenario,
) -> None:
    world.converge()  # the routing platform's own set-up, so what follows is the Worker's alone
    _worker(world, 2)
    assert "nothing to do" in world.apply().out  # the spec agrees with what serves

    _worker(world, 3, steps=[10])
    plan = world.plan()
    assert plan.code == 2
    assert "deploy site-builder-api-production to version 3 at 100 %" in plan.out
    since = world.cf_seq()
    run = world.apply()
    assert run.code == 1, run.out + run.err
    assert "health check failed" in run.out + run.err
    assert "traffic returned to version 2 at 100 %" in run.out + run.err
    assert _serving(world) == [(2, 100.0)]
    splits = [
        [v["percentage"] for v in c["request_json"]["versions"]] for c in _deployments(world, since)
    ]
    assert splits == [[10, 90], [100]]  # the 10 % step failed: straight back, 100 % never tried
    assert not _uploads(world, since)
    rows = world.rows("SELECT status, version, returned_to, error FROM worker_rollouts ORDER BY id")
    assert [r["status"] for r in rows] == ["checking", "turned_back"]
    row = rows[-1]
    assert (row["version"], row["returned_to"]) == (3, "version 2 at 100 %")
    assert "answered 500 (expected 200)" in str(row["error"])

    blocked = world.plan()
    assert blocked.code == 3
    assert "version 3 of site-builder-api-production failed its health check" in blocked.out
    assert "serves version 2 at 100 % since version 3 failed its health check" in blocked.out

    _worker(world, 2)  # git revert of the bump
    agreed = world.plan()
    assert agreed.code == 0, agreed.out
    assert _serving(world) == [(2, 100.0)]


def test_moving_back_is_an_immediate_rollback_without_upload(world: Scenario) -> None:
    world.converge()
    world.fleet.workers["api"] = {"script": SCRIPT, "production": {"version": 1}}
    since = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out + run.err
    assert "roll back" in run.out
    assert _serving(world) == [(1, 100.0)]
    assert len(_deployments(world, since)) == 1 and not _uploads(world, since)
    assert "nothing to do" in world.apply().out


def test_a_version_that_does_not_exist_is_blocked_at_its_spec_line(world: Scenario) -> None:
    world.converge()
    world.fleet.workers["api"] = {"script": SCRIPT, "production": {"version": 9}}
    since = world.cf_seq()
    run = world.apply()
    assert run.code == 3
    assert "version 9 of site-builder-api-production does not exist (versions: 1, 2, 3)" in run.out
    assert "worker-api.yaml:" in run.out
    assert not _deployments(world, since) and not _uploads(world, since)
    assert _serving(world) == [(2, 100.0)]


def test_a_healthy_version_goes_live_through_its_schedule(world: Scenario) -> None:
    store: Any = world.sandbox.cloudflare.worker_versions
    store.scripts[SCRIPT].versions[2].health = 200  # version 3 fixed in place for this test
    world.converge()
    _worker(world, 3, steps=[10, 50])
    since = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out + run.err
    splits = [
        [v["percentage"] for v in c["request_json"]["versions"]] for c in _deployments(world, since)
    ]
    assert splits == [[10, 90], [50, 50], [100]]
    assert _serving(world) == [(3, 100.0)]
    (row,) = world.rows("SELECT status FROM worker_rollouts ORDER BY id DESC LIMIT 1")
    assert row["status"] == "live"
    assert "nothing to do" in world.apply().out


def _apply_killed_at(world: Scenario, point: str) -> subprocess.CompletedProcess[str]:
    """``reconciler apply`` in its own process, killed at ``point`` (tests/crash's mechanism)."""
    specs = world.fleet.write()
    env = {**os.environ, CRASH_ENV: point}
    args = ["apply", "--yes", "--color", "never", "--now", repr(world.now()), "--specs"]
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args, str(specs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    "point",
    [
        "execute.after-intent:1",  # before anything served changed
        "worker.after-deploy:1",  # version 3 takes 10 %, never judged
        "worker.after-turn-back:1",  # back on version 2, not yet recorded
        "execute.before-finish:1",  # all done but the journal's outcome
    ],
)
def test_a_run_killed_mid_rollout_ends_on_the_last_good_version(
    world: Scenario, point: str
) -> None:
    world.converge()
    _worker(world, 3, steps=[10])
    killed = _apply_killed_at(world, point)
    assert killed.returncode == CRASH_EXIT_CODE, killed.stdout + killed.stderr

    run = world.apply()  # the next pass finishes the job: check, then turn back (or blocks)

    assert run.code in (1, 3), run.out + run.err
    assert _serving(world) == [(2, 100.0)]
    statuses = [r["status"] for r in world.rows("SELECT status FROM worker_rollouts ORDER BY id")]
    assert statuses[-1] == "turned_back"
    plan = world.plan()
    assert plan.code == 3  # blocked (health) until the spec changes
    assert "failed its health check" in plan.out


def test_a_pr_that_reverts_a_bump_is_a_rollback_annotated_with_the_reverted_commit(
    world: Scenario, tmp_path: Path
) -> None:
    import git

    repo_dir = tmp_path / "fleet"
    repository = git.Repo.init(repo_dir)
    specs_dir = repo_dir / "specs"

    def commit(version: int, message: str) -> str:
        world.fleet.workers["api"] = {"script": SCRIPT, "production": {"version": version}}
        shutil.copytree(world.fleet.write(), specs_dir, dirs_exist_ok=True)
        repository.git.add("--all")
        repository.index.commit(message)
        return repository.head.commit.hexsha

    world.converge()
    commit(1, "Pin the API Worker to version 1")
    bump = commit(2, "API Worker: version 2")
    assert world.apply().code in (0, 2)  # version 2 serves already: nothing to do
    repository.git.revert("--no-edit", "HEAD")
    run = world.cli(
        "plan", "--repo", str(repo_dir), "--base", "HEAD~1", "--head", "HEAD",
        "--now", repr(world.now()), "--color", "never",
    )  # fmt: skip
    assert run.code == 2, run.out + run.err
    assert "< roll back Worker site-builder-api-production: version 1 at 100 %" in run.out
    assert f"[reverts {bump[:7]} (API Worker: version 2)]" in run.out
    untouched = world.cli(
        "plan", "--repo", str(repo_dir), "--base", "HEAD", "--head", "HEAD",
        "--now", repr(world.now()), "--color", "never",
    )  # fmt: skip
    assert "Worker" not in untouched.out  # a PR that does not touch the Worker does not read it
    repository.close()
