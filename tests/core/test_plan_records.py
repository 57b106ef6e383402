"""Rule 7 of core/plan.py: D1 ``domains`` mirrors the status Cloudflare shows.

Literal inputs only, like test_plan.py: a hostname whose ``domains`` row lags behind
Cloudflare gets a D1-only ``record_hostname``; one whose row agrees gets nothing.
"""

from __future__ import annotations

from dataclasses import replace

from core_builders import DAY, NOW, hostname
from test_plan import converged_world, plan_for

from reconciler.core.observed import Source, domain_status
from reconciler.core.plan import ActionKind, Cause, Lane, Plan


def records(plan: Plan, kind: ActionKind) -> list[dict[str, object]]:
    return [dict(a.after) for a in plan.actions if a.kind is kind]


def lagging(**changes: object) -> dict[str, object]:
    """The converged world's hostname with a D1 row that still says pending_validation."""
    have = replace(
        hostname("www.acme-home.com"),
        recorded_status="pending_validation",
        recorded_ssl_status="initializing",
    )
    return {"hostnames": {"www.acme-home.com": replace(have, **changes)}}


# --- domains.status mirrors Cloudflare -------------------------------------------------------


def test_cloudflare_statuses_map_to_the_domains_vocabulary() -> None:
    assert domain_status("active", "active") == "active"
    assert domain_status("active", "pending_deployment") == "pending_ssl"
    assert domain_status("pending", "pending_validation") == "pending_validation"
    assert domain_status("moved", "active") == "failed"
    assert domain_status("pending", "validation_timed_out") == "failed"
    assert domain_status("active", "active", suspended=True) == "suspended"
    assert domain_status("blocked", "active", suspended=True) == "failed"


def test_a_hostname_that_went_active_between_passes_gets_its_status_recorded() -> None:
    plan = plan_for(converged_world(**lagging()))
    [action] = plan.actions
    assert action.kind is ActionKind.RECORD_HOSTNAME
    assert action.target == "Hostname/www.acme-home.com"
    assert action.after["status"] == "active" and action.after["ssl_status"] == "active"
    assert action.before == {"status": "pending_validation", "ssl_status": "initializing"}
    assert action.cause is Cause.DRIFT and action.lane is Lane.CHANGE
    assert action.calls == {"d1": 1}
    assert plan.summary_counts()["record"] == 1
    assert "pending_validation" in action.reason and "active" in action.reason


def test_a_recorded_status_that_matches_plans_nothing() -> None:
    world = converged_world(**lagging(recorded_status="active", recorded_ssl_status="active"))
    assert plan_for(world).is_empty


def test_a_hostname_without_a_domains_row_is_not_recorded_by_the_mirror() -> None:
    world = converged_world(**lagging(recorded_status=None, recorded_ssl_status=None))
    assert plan_for(world).is_empty


def test_a_certificate_stage_change_alone_is_not_worth_a_write() -> None:
    world = converged_world(
        **lagging(status="active", ssl_status="pending_deployment", recorded_status="pending_ssl")
    )
    assert plan_for(world).is_empty


def test_a_validated_hostname_is_recorded_as_pending_ssl_with_its_certificate_stage() -> None:
    world = converged_world(**lagging(status="active", ssl_status="pending_deployment"))
    [after] = records(plan_for(world), ActionKind.RECORD_HOSTNAME)
    assert after["status"] == "pending_ssl" and after["ssl_status"] == "pending_deployment"


def test_a_stuck_hostname_is_blocked_and_its_row_recorded_as_failed() -> None:
    world = converged_world(
        **lagging(status="moved", ssl_status="validation_timed_out", recreate_count=3)
    )
    plan = plan_for(world)
    assert [b.gate for b in plan.blocked] == ["stuck"]
    [after] = records(plan, ActionKind.RECORD_HOSTNAME)
    assert after["status"] == "failed"


def test_a_hostname_with_another_action_is_left_to_that_action_to_record() -> None:
    old = NOW - 2 * DAY
    world = converged_world(
        **lagging(status="pending", ssl_status="pending_validation", status_since=old)
    )
    plan = plan_for(world)
    assert [a.kind for a in plan.actions] == [ActionKind.RETRY_VALIDATION]


def test_nothing_is_recorded_while_d1_is_unreadable() -> None:
    world = converged_world(**lagging(), incomplete={Source.D1: "HTTP 503"})
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def test_the_record_action_is_stable_across_replans() -> None:
    first = plan_for(converged_world(**lagging()))
    second = plan_for(converged_world(**lagging()))
    assert [a.id for a in first.actions] == [a.id for a in second.actions]
