"""The demo's platform chapters: the API Worker pinned by Git (runbook 6), D1 restore points (5).

Called by :meth:`reconciler.demo.Story.tell` after the fleet chapters, with the running story
(its sandbox, the Git working copy of the specs, and its in-process CLI). The sandbox seeds
the API Worker ``site-builder-api-production`` with three versions, version 2 serving and
version 3 answering 500 on ``/healthz``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare_worker_versions import API_WORKER

if TYPE_CHECKING:
    from reconciler.demo import Story

__all__ = ["api_worker_chapter", "restore_point_chapter"]

WORKER_SPEC = """\
apiVersion: sitebuilder/v1
kind: Worker
metadata: {{name: api}}
spec:
  script: {script}
  production: {{version: 2}}
  health_check:
    url: {url}
    expect: [200]
    steps: [10]
"""
MIGRATION = "9001_tenant_plans.sql"
MIGRATION_SQL = (
    "ALTER TABLE tenants ADD COLUMN plan TEXT;\n"
    "CREATE TABLE plan_prices (plan TEXT PRIMARY KEY, cents INTEGER NOT NULL);\n"
)


def _serving(story: Story) -> str:
    sim: Any = story.sandbox.cloudflare
    with sim.lock:
        script = sim.worker_versions.scripts[API_WORKER]
        numbers = {v.id: v.number for v in script.versions}
        split = script.deployments[-1].split
    return " and ".join(f"version {numbers[v]} at {p:g} %" for v, p in split)


def api_worker_chapter(story: Story, number: int, chapter: Any, converged: Any) -> None:
    """Version 3 by a commit; its health check fails; traffic returns; ``git revert`` agrees."""
    chapter(number, "The API Worker: a broken deploy turned back without a human")
    base = story.sandbox.control_url.removesuffix("/__sandbox")
    spec = story.fleet / "specs" / "workers" / "api.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        WORKER_SPEC.format(script=API_WORKER, url=f"{base}/__workers/{API_WORKER}/healthz"),
        encoding="utf-8",
    )
    story.commit("Pin the API Worker to version 2, health-checked")
    print(f"Cloudflare serves {API_WORKER}: {_serving(story)}\n")
    story.expect(story.plan() == 0, "the pinned version should agree with what serves")

    story.edit("workers/api.yaml", "production: {version: 2}", "production: {version: 3}")
    story.commit("API Worker: roll out version 3")
    story.expect(story.plan() == 2, "the bump should plan a deployment")
    code = story.cli("apply", "--repo", str(story.fleet), "--ref", "HEAD", "--yes", skip_plan=True)
    story.expect(code == 1, "the broken version's health check should fail the apply")
    serving = _serving(story)
    print(f"\nCloudflare serves {API_WORKER}: {serving}")
    story.expect(serving == "version 2 at 100 %", "traffic should be back on version 2")
    story.expect(story.plan() == 3, "version 3 should stay blocked until the spec changes")

    print()
    print("$ git revert --no-edit HEAD")
    story.repo.git.revert("--no-edit", "HEAD")
    story.expect(story.plan() == 0, "after the revert the specs agree with what serves")
    converged("version 3 failed its check at 10 %, traffic went back to version 2 by itself, "
              "and the revert made the specs say so")  # fmt: skip


def restore_point_chapter(story: Story, number: int, chapter: Any, converged: Any) -> None:
    """A migration applied, then the database restored to the point taken before it."""
    chapter(number, "A migration applied, then undone to its restore point")
    directory = story.work / "migrations"
    shutil.copytree(Path(__file__).resolve().parents[1] / "migrations", directory)
    (directory / MIGRATION).write_text(MIGRATION_SQL, encoding="utf-8")
    story.expect(story.cli("migrate", "--dir", str(directory), timed=False) == 0, "migrate failed")
    print()
    story.expect(
        story.cli("migrate", "--restore-before", MIGRATION[:4], "--yes", timed=False) == 0,
        "the restore failed",
    )
    columns = {row[1] for row in story.query("PRAGMA table_info(tenants)")}
    names = {row[0] for row in story.query("SELECT name FROM d1_migrations")}
    story.expect("plan" not in columns and MIGRATION not in names, "9001 should be undone")
    converged(f"{MIGRATION} is undone and pending again; every other row is as it was")
