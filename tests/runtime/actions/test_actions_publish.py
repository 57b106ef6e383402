"""Publish, retry and rollback handlers against the Cloudflare simulator and a migrated D1.

Runbook 1 (publish failed, rollback) and 4 (performance budget): each test drives one handler
through ``handlers_for`` with literal actions and reads back the ``publish_versions``,
``performance_budgets`` and ``sites`` rows and the simulator's call log and purges.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.sandbox.cloudflare_pages import Behaviour

from support.actions import CONTENT, PROJECT, Checkpoints, Crash, Rig, make_action

DEPLOYMENTS_ROUTE = "/accounts/{account_id}/pages/projects/{project_name}/deployments"
HOSTS = ["www.acme.test", "acme.test"]
BUDGET = {"max_js_kb": 50, "max_css_kb": 50, "max_third_party_scripts": 2}


async def seed(rig: Rig, versions: dict[int, Any]) -> None:
    await rig.db.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    await rig.db.execute(
        "INSERT INTO sites (id, tenant_id, name, pages_project) VALUES (?, 'acme', ?, ?)",
        (PROJECT, PROJECT, PROJECT),
    )
    for version, content in versions.items():
        raw = content if isinstance(content, str) else json.dumps(content)
        await rig.db.execute(
            "INSERT INTO site_versions (site_id, version_number, content_json) VALUES (?, ?, ?)",
            (PROJECT, version, raw),
        )


def publish_action(version: int, *, attempt: int = 1, budget: Any = None) -> Any:
    after: dict[str, JsonValue] = {
        "site": PROJECT,
        "tenant": "acme",
        "project": PROJECT,
        "environment": "production",
        "version": version,
        "commit": "c0ffee",
        "attempt": attempt,
        "hosts": list(HOSTS),
        "scripts": [],
        "budget": dict(budget or BUDGET),
    }
    kind = ActionKind.PUBLISH if attempt == 1 else ActionKind.RETRY_PUBLISH
    return make_action(kind, f"Site/{PROJECT}:production", after)


async def publish_rows(rig: Rig) -> list[dict[str, Any]]:
    return await rig.rows(
        "SELECT version_number, status, deployment_id, error_message, attempts, js_kb "
        "FROM publish_versions WHERE site_id = ? ORDER BY id",
        (PROJECT,),
    )


def uploads(rig: Rig) -> int:
    return sum(
        1 for c in rig.cf.calls() if c["method"] == "POST" and c["route"] == DEPLOYMENTS_ROUTE
    )


async def test_a_publish_goes_live_supersedes_the_previous_version_and_purges_its_hosts(
    rig: Rig,
) -> None:
    second = copy.deepcopy(CONTENT)
    second["pages"][0]["blocks"][1]["text"] = "Open every day, now with cake."
    await seed(rig, {1: CONTENT, 2: second})

    first = await rig.run(publish_action(1))
    assert first.status is Status.APPLIED, first.message
    checkpoints = Checkpoints()
    outcome = await rig.run(publish_action(2), checkpoints=checkpoints)
    assert outcome.status is Status.APPLIED, outcome.message

    rows = await publish_rows(rig)
    assert [(r["version_number"], r["status"]) for r in rows] == [(1, "superseded"), (2, "live")]
    assert rows[1]["deployment_id"] == outcome.data["deployment_id"]
    project = rig.cf.sim.pages.projects[PROJECT]
    live = project.live(rig.cf.clock.now())
    assert live is not None and live.id == outcome.data["deployment_id"]
    purged = [p["items"] for p in rig.cf.sim.purges if p["kind"] == "hosts"]
    assert purged == [HOSTS, HOSTS]
    assert checkpoints.passed == ["publish.after-upload", "publish.after-purge"]
    budget = await rig.rows("SELECT * FROM performance_budgets WHERE site_id = ?", (PROJECT,))
    assert budget[0]["current_js_kb"] == rows[1]["js_kb"] and budget[0]["current_js_kb"] >= 1
    assert budget[0]["status"] == "ok" and budget[0]["measured_version"] == 2
    site = await rig.rows("SELECT production_version FROM sites WHERE id = ?", (PROJECT,))
    assert site[0]["production_version"] == 2


async def test_invalid_content_fails_the_publish_with_the_located_error_and_uploads_nothing(
    rig: Rig,
) -> None:
    broken = copy.deepcopy(CONTENT)
    broken["pages"][0]["blocks"][0] = {"type": "image", "asset": "img/x.png"}
    await seed(rig, {1: broken})

    outcome = await rig.run(publish_action(1))

    assert outcome.status is Status.FAILED_PERMANENT
    rows = await publish_rows(rig)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error_message"].startswith("build failed: invalid content: pages[0].blocks[0]")
    assert "alt" in rows[0]["error_message"]
    assert uploads(rig) == 0


async def test_a_version_without_a_snapshot_fails_with_a_clear_message(rig: Rig) -> None:
    await seed(rig, {})
    outcome = await rig.run(publish_action(4))
    assert outcome.status is Status.FAILED_PERMANENT
    assert (await publish_rows(rig))[0]["error_message"] == (
        "build failed: version 4 has no content snapshot in site_versions"
    )


async def test_a_build_over_its_performance_budget_fails_before_any_upload(rig: Rig) -> None:
    await seed(rig, {1: CONTENT})
    outcome = await rig.run(
        publish_action(1, budget={"max_js_kb": 50, "max_css_kb": 0, "max_third_party_scripts": 2})
    )
    assert outcome.status is Status.FAILED_PERMANENT
    rows = await publish_rows(rig)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error_message"].startswith("performance budget exceeded: CSS ")
    assert "over the budget of 0 KB" in rows[0]["error_message"]
    assert uploads(rig) == 0


async def test_a_failed_deployment_marks_the_row_failed_with_its_stage_and_is_transient(
    rig: Rig,
) -> None:
    await seed(rig, {1: CONTENT})
    rig.cf.sim.set_deployment_behaviour(Behaviour(mode="fail", stage="build"), project=PROJECT)

    outcome = await rig.run(publish_action(1))

    assert outcome.status is Status.FAILED_TRANSIENT
    rows = await publish_rows(rig)
    assert rows[0]["status"] == "failed"
    assert "stage build failure" in rows[0]["error_message"]
    assert rows[0]["deployment_id"] == outcome.data["deployment_id"]
    assert not rig.cf.sim.purges

    retry = await rig.run(publish_action(1, attempt=2))
    assert retry.status is Status.APPLIED
    rows = await publish_rows(rig)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1), ("live", 2)]


async def test_a_deployment_stuck_past_the_timeout_fails_transiently(rig: Rig) -> None:
    await seed(rig, {1: CONTENT})
    rig.cf.sim.set_deployment_behaviour(Behaviour(mode="stick", stage="build"), project=PROJECT)
    outcome = await rig.run(publish_action(1))
    assert outcome.status is Status.FAILED_TRANSIENT
    assert "did not finish within 120s" in outcome.message
    assert (await publish_rows(rig))[0]["status"] == "failed"


async def test_a_publish_resumed_after_the_upload_finds_its_deployment_and_uploads_once(
    rig: Rig,
) -> None:
    await seed(rig, {1: CONTENT})
    action = publish_action(1)
    crash = Checkpoints(crash_at="publish.after-upload")
    with pytest.raises(Crash):
        await rig.run(action, checkpoints=crash)
    assert [r["status"] for r in await publish_rows(rig)] == ["building"]  # live when recorded

    outcome = await rig.run(action, resumed=True)

    assert outcome.status is Status.APPLIED, outcome.message
    assert uploads(rig) == 1
    rows = await publish_rows(rig)
    assert [r["status"] for r in rows] == ["live"]  # the interrupted row was reused


async def test_a_publish_resumed_after_it_finished_changes_nothing(rig: Rig) -> None:
    await seed(rig, {1: CONTENT})
    action = publish_action(1)
    assert (await rig.run(action)).status is Status.APPLIED
    before = len(rig.cf.calls())
    again = await rig.run(action, resumed=True)
    assert again.status is Status.UNCHANGED
    assert [c["method"] for c in rig.cf.calls()[before:]] == ["GET"]
    assert len(await publish_rows(rig)) == 1


async def test_a_rollback_points_production_at_the_earlier_deployment_without_a_build(
    rig: Rig,
) -> None:
    second = copy.deepcopy(CONTENT)
    second["lang"] = "pt"
    await seed(rig, {1: CONTENT, 2: second})
    first = await rig.run(publish_action(1))
    await rig.run(publish_action(2))
    uploaded = uploads(rig)
    rig.cf.clock.advance(1)  # the revert comes later than the publish (the clock is frozen)
    after: dict[str, JsonValue] = {
        "site": PROJECT,
        "tenant": "acme",
        "project": PROJECT,
        "environment": "production",
        "version": 1,
        "deployment_id": first.data["deployment_id"],
        "commit": "revert01",
        "hosts": list(HOSTS),
    }

    outcome = await rig.run(make_action(ActionKind.ROLLBACK, f"Site/{PROJECT}:production", after))

    assert outcome.status is Status.APPLIED, outcome.message
    assert uploads(rig) == uploaded
    live = rig.cf.sim.pages.projects[PROJECT].live(rig.cf.clock.now())
    assert live is not None and live.id == first.data["deployment_id"]
    rows = await publish_rows(rig)
    assert [(r["version_number"], r["status"]) for r in rows] == [
        (1, "superseded"),
        (2, "superseded"),
        (1, "live"),
    ]
    assert rows[2]["deployment_id"] == first.data["deployment_id"]
    assert rows[2]["js_kb"] == rows[0]["js_kb"]  # sizes carried over from the first publish
    assert rig.cf.sim.purges[-1]["items"] == HOSTS


async def test_a_rollback_to_a_deployment_that_is_gone_fails_and_says_a_rebuild_follows(
    rig: Rig,
) -> None:
    await seed(rig, {})
    after: dict[str, JsonValue] = {
        "site": PROJECT,
        "tenant": "acme",
        "project": PROJECT,
        "environment": "production",
        "version": 1,
        "deployment_id": "00000000-0000-4000-8000-000000000000",
        "commit": None,
        "hosts": [],
    }
    outcome = await rig.run(make_action(ActionKind.ROLLBACK, f"Site/{PROJECT}:production", after))
    assert outcome.status is Status.FAILED_PERMANENT
    assert "is gone; the next plan will rebuild" in outcome.message
    assert await publish_rows(rig) == []
