"""Runbook 4, performance incident: a version over the performance budget is never published.

The plan builds the version in memory, finds it over the policy's budget and blocks it with the
sizes (exit 3); ``apply`` uploads nothing and production stays on the previous version. The
runbook's hotfix (the heavy scripts removed, as a new version) then converges.
"""

from __future__ import annotations

from support.scenario import Scenario, snapshot, uploads

HEAVY = snapshot(
    {"type": "hero", "heading": "Now with widgets"},
    *(
        {"type": "embed", "script_url": f"https://widgets{i}.example.com/w.js", "height": 200}
        for i in range(4)
    ),
)


def test_a_version_over_the_budget_is_blocked_with_its_sizes_and_nothing_is_uploaded(
    world: Scenario,
) -> None:
    world.tenant_with_site(domains=["www.acme.test"])
    world.settle()
    live_before = world.live_deployment("acme-home").id
    rows_before = world.publishes("acme-home")

    world.put_content("acme-home", 2, HEAVY)
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    plan = world.plan()
    assert plan.code == 3
    assert "third-party scripts 4 of 3" in plan.out

    mark = world.cf_seq()
    run = world.apply("--format", "json")
    assert run.code == 3
    [blocked] = run.json()["plan"]["blocked"]
    assert blocked["gate"] == "budget"
    assert blocked["target"] == "Site/acme-home:production"
    assert "over the performance budget of policy standard" in blocked["reason"]
    assert "third-party scripts 4 of 3" in blocked["reason"]
    assert uploads(world.cf_calls(mark)) == []
    assert [c for c in world.cf_calls(mark) if c["method"] != "GET"] == []
    assert world.live_deployment("acme-home").id == live_before
    # Runbook 4's query shows the refusal: one failed row with the sizes, nothing uploaded.
    rows = world.publishes("acme-home")
    assert rows[: len(rows_before)] == rows_before
    [failed] = rows[len(rows_before) :]
    assert (failed["version_number"], failed["status"]) == (2, "failed")
    assert failed["error_message"].startswith("performance budget exceeded: ")
    assert "4 third-party scripts are over the budget of 3" in failed["error_message"]
    assert failed["third_party_scripts"] == 4 and failed["deployment_id"] is None
    # Recorded once: the next apply is still blocked and writes nothing.
    again = world.apply()
    assert again.code == 3 and "to record" not in again.out
    assert world.publishes("acme-home") == rows

    # The hotfix: the same page without the heavy widgets, as version 3.
    world.put_content("acme-home", 3, snapshot({"type": "hero", "heading": "Lighter"}))
    world.fleet.sites["acme-home"]["production"] = {"version": 3}
    assert world.apply().code == 0
    live = [r for r in world.publishes("acme-home") if r["status"] == "live"]
    assert [r["version_number"] for r in live] == [3]
    [budget] = world.rows("SELECT * FROM performance_budgets WHERE site_id = 'acme-home'")
    assert budget["current_third_party_scripts"] == 0
    assert budget["measured_version"] == 3
