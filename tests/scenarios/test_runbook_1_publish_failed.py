"""Runbook 1, publish failed: a build or a deployment fails, and what ``apply`` does about it.

Build failures: malformed blocks are caught by the plan's in-memory build (blocked, nothing
uploaded); an asset missing from the store fails the publish with the runbook's
``error_message``. Either way bumping the version with fixed content converges. Deployment
failures are retried by later applies up to the cap, then stop as a Stuck condition with the
error; a fault cleared before the cap converges, live and purged.
"""

from __future__ import annotations

import json

from reconciler.sandbox.cloudflare_pages import Behaviour

from support.scenario import Scenario, purges, snapshot, uploads

BROKEN = snapshot({"type": "image", "asset": "img/shop.jpg"})  # alt missing, asset not listed
MISSING_ASSET = json.dumps(
    {
        "format": 1,
        "pages": [
            {
                "path": "/",
                "title": "Home",
                "blocks": [{"type": "image", "asset": "img/shop.jpg", "alt": "The shop"}],
            }
        ],
        "assets": [
            {
                "key": "img/shop.jpg",
                "content_type": "image/jpeg",
                "bytes": 1100,
                "sha256": "0" * 64,
            }
        ],
    }
)


def _live_version(world: Scenario, site: str = "acme-home") -> int | None:
    rows = [r for r in world.publishes(site) if r["status"] == "live"]
    return int(rows[-1]["version_number"]) if rows else None


def test_malformed_blocks_are_refused_before_upload_and_a_fixed_version_converges(
    world: Scenario,
) -> None:
    world.tenant_with_site(version=1)
    world.settle()
    live_before = world.live_deployment("acme-home").id

    world.put_content("acme-home", 2, BROKEN)
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    mark = world.cf_seq()
    run = world.apply("--format", "json")
    assert run.code == 3, run.err
    [blocked] = run.json()["plan"]["blocked"]
    assert blocked["gate"] == "build"
    assert "invalid content: pages[0].blocks[0] (image): alt: Field required" in blocked["reason"]
    assert uploads(world.cf_calls(mark)) == []
    assert world.live_deployment("acme-home").id == live_before
    assert _live_version(world) == 1
    # Runbook 1's query shows it: a failed row with the validation error, written once.
    failed = world.publishes("acme-home")[-1]
    assert (failed["version_number"], failed["status"]) == (2, "failed")
    assert failed["error_message"] == (
        "build failed: invalid content: pages[0].blocks[0] (image): alt: Field required"
    )
    rows = world.publishes("acme-home")
    again = world.apply()
    assert again.code == 3 and "to record" not in again.out
    assert world.publishes("acme-home") == rows

    # Runbook action: fix the data and publish again (here: a new version with valid blocks).
    world.put_content("acme-home", 3, snapshot(title="Fixed"))
    world.fleet.sites["acme-home"]["production"] = {"version": 3}
    assert world.apply().code == 0
    assert _live_version(world) == 3
    assert world.apply().out.startswith("No changes")


def test_an_asset_missing_from_the_store_fails_the_publish_with_the_error_recorded(
    world: Scenario,
) -> None:
    world.tenant_with_site(version=1)
    world.settle()

    world.put_content("acme-home", 2, MISSING_ASSET)
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    mark = world.cf_seq()
    run = world.apply()
    assert run.code == 1
    failed = world.publishes("acme-home")[-1]
    assert failed["version_number"] == 2
    assert failed["status"] == "failed"
    assert failed["error_message"] == (
        "build failed: missing asset: 'img/shop.jpg' not found in the asset store"
    )
    assert failed["error_message"] in run.out
    assert uploads(world.cf_calls(mark)) == []
    assert _live_version(world) == 1

    # The same snapshot fails the same way: blocked at once, not retried.
    rows = world.publishes("acme-home")
    mark = world.cf_seq()
    run = world.apply("--format", "json")
    assert run.code == 3, run.out
    [blocked] = run.json()["plan"]["blocked"]
    assert blocked["gate"] == "build"
    assert "missing asset: 'img/shop.jpg' not found in the asset store" in blocked["reason"]
    assert run.json()["plan"]["changes"] == []
    assert uploads(world.cf_calls(mark)) == []
    assert world.publishes("acme-home") == rows

    world.put_content("acme-home", 3, snapshot(title="Without the photo"))
    world.fleet.sites["acme-home"]["production"] = {"version": 3}
    assert world.apply().code == 0
    assert _live_version(world) == 3


def test_a_failing_deployment_is_retried_up_to_the_cap_then_stuck_with_the_error(
    world: Scenario,
) -> None:
    world.tenant_with_site(version=1)
    world.settle()
    world.put_content("acme-home", 2, snapshot(title="Version two"))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    world.sandbox.cloudflare.set_deployment_behaviour(
        Behaviour(mode="fail", stage="build"), project="acme-home", times=0
    )

    mark = world.cf_seq()
    for attempt in (1, 2, 3):
        run = world.apply()
        assert run.code == 1, f"attempt {attempt}: {run.out}"
        row = world.publishes("acme-home")[-1]
        assert (row["status"], row["attempts"]) == ("failed", attempt)
        assert row["error_message"].endswith("failed: stage build failure")
    assert len(uploads(world.cf_calls(mark))) == 3

    mark = world.cf_seq()
    run = world.apply("--format", "json")
    assert run.code == 3
    [blocked] = run.json()["plan"]["blocked"]
    assert blocked["gate"] == "stuck"
    assert blocked["target"] == "Site/acme-home:production"
    assert "failed 3 times" in blocked["reason"]
    assert "stage build failure" in blocked["reason"]
    assert uploads(world.cf_calls(mark)) == []
    assert _live_version(world) == 1


def test_a_deployment_fault_cleared_before_the_cap_converges_live_and_purged(
    world: Scenario,
) -> None:
    world.tenant_with_site(version=1)
    world.settle()
    world.put_content("acme-home", 2, snapshot(title="Version two"))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    world.sandbox.cloudflare.set_deployment_behaviour(
        Behaviour(mode="fail", stage="deploy"), project="acme-home", times=1
    )

    assert world.apply().code == 1
    assert world.publishes("acme-home")[-1]["status"] == "failed"
    mark = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out
    assert "retry publish acme-home production v2 ... applied" in run.err
    rows = world.publishes("acme-home")
    assert [(r["version_number"], r["status"]) for r in rows] == [
        (1, "superseded"),
        (2, "failed"),
        (2, "live"),
    ]
    assert rows[-1]["deployment_id"] == world.live_deployment("acme-home").id
    [purge] = purges(world.cf_calls(mark))
    assert purge["request_json"] == {"hosts": ["www.acme.test"]}
    assert world.apply().out.startswith("No changes")
