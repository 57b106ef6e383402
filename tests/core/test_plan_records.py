"""Rules 7 and 8 of core/plan.py: D1 mirrors what the world shows; build failures are final.

Literal inputs only, like test_plan.py: a hostname whose ``domains`` row lags behind
Cloudflare (status, id, origin or site), or has no row, gets a D1-only ``record_hostname``;
the row of a hostname gone from a completely listed zone is marked ``deleted`` (a declared one
is created again, counted as a recreation when the row holds its old id); a publish its
in-memory build blocks gets one ``record_publish_failure`` (and none once the ledger holds
it); a publish whose last attempt failed to build is blocked at once instead of retried, while
deployment failures still are.
"""

from __future__ import annotations

from dataclasses import replace

from test_plan import converged_world, plan_for

from reconciler.core.observed import (
    BuildPreview,
    DomainRecord,
    PublishRecord,
    Source,
    domain_status,
)
from reconciler.core.plan import (
    ActionKind,
    Cause,
    Lane,
    Plan,
    is_permanent_build_failure,
)

from support.core import DAY, NOW, hostname, ledger


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


def failed_row(error: str, *, version: int = 3, attempts: int = 1) -> PublishRecord:
    return PublishRecord(
        site="acme-home",
        environment="production",
        version=version,
        status="failed",
        deployment_id=None,
        attempts=attempts,
        error_message=error,
        created_at=NOW - 60,
    )


def with_latest(row: PublishRecord) -> dict[str, object]:
    return {
        "ledger": {
            "acme-home": ledger(
                live=2, deployment_id="dep-2", latest=row, versions=frozenset({1, 2, 3})
            )
        }
    }


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
    assert action.before == {
        "status": "pending_validation",
        "ssl_status": "initializing",
        "id": "id-www.acme-home.com",
        "origin": None,
    }
    assert action.cause is Cause.DRIFT and action.lane is Lane.CHANGE
    assert action.calls == {"d1": 1}
    assert plan.summary_counts()["record"] == 1
    assert "pending_validation" in action.reason and "active" in action.reason


def test_a_recorded_status_that_matches_plans_nothing() -> None:
    world = converged_world(**lagging(recorded_status="active", recorded_ssl_status="active"))
    assert plan_for(world).is_empty


def test_a_hostname_without_a_domains_row_gets_one_with_everything_the_row_needs() -> None:
    # a run killed between the create call and its D1 write left the zone right, D1 rowless
    world = converged_world(
        hostnames={"www.acme-home.com": hostname("www.acme-home.com", recorded=False)}
    )
    plan = plan_for(world)
    [action] = plan.actions
    assert action.kind is ActionKind.RECORD_HOSTNAME and action.calls == {"d1": 1}
    assert action.after == {
        "hostname": "www.acme-home.com",
        "site": "acme-home",
        "tenant": "acme",
        "project": "acme-home",
        "id": "id-www.acme-home.com",
        "origin": None,
        "ssl_method": "http",
        "status": "active",
        "ssl_status": "active",
        "verification_errors": [],
        "verification_token": None,
    }
    assert "no row" in action.reason and "id-www.acme-home.com" in action.reason


def test_a_row_that_keeps_the_id_of_a_recreated_hostname_is_recorded() -> None:
    plan = plan_for(converged_world(**lagging(recorded_status="active", recorded_id="id-old")))
    [after] = records(plan, ActionKind.RECORD_HOSTNAME)
    assert after["id"] == "id-www.acme-home.com"
    [action] = plan.actions
    assert action.before["id"] == "id-old" and "id id-old" in action.reason


def test_a_row_that_keeps_an_origin_from_before_routing_is_recorded_without_one() -> None:
    # rows written when hostnames carried custom_origin_server: the zone now shows none
    world = converged_world(
        **lagging(recorded_status="active", recorded_origin="elsewhere.pages.dev")
    )
    [action] = plan_for(world).actions
    assert action.kind is ActionKind.RECORD_HOSTNAME
    assert action.after["origin"] is None
    assert "origin elsewhere.pages.dev" in action.reason


def test_a_row_still_naming_the_site_a_hostname_moved_from_is_recorded() -> None:
    world = converged_world(**lagging(recorded_status="active", recorded_site="old-site"))
    [after] = records(plan_for(world), ActionKind.RECORD_HOSTNAME)
    assert after["site"] == "acme-home"


def test_an_unowned_hostname_without_a_row_is_not_recorded() -> None:
    world = converged_world(
        hostnames={"www.acme-home.com": hostname("www.acme-home.com", owned=False)}
    )
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def gone(name: str, **changes: object) -> dict[str, object]:
    """A ``domains`` row (active, with an id) of ``name``, which the zone no longer shows."""
    row = DomainRecord(
        hostname=name,
        site="acme-home",
        tenant="acme",
        status="active",
        custom_hostname_id=f"id-{name}",
        origin="acme-home.pages.dev",
    )
    return {"unlisted_domains": {name: replace(row, **changes)}}


def test_the_row_of_a_hostname_deleted_from_the_zone_is_marked_deleted() -> None:
    # a run killed between the delete call and its D1 write
    plan = plan_for(converged_world(**gone("old.acme-home.com")))
    [action] = plan.actions
    assert action.kind is ActionKind.RECORD_HOSTNAME and action.calls == {"d1": 1}
    assert action.target == "Hostname/old.acme-home.com"
    assert action.after == {
        "hostname": "old.acme-home.com",
        "site": "acme-home",
        "status": "deleted",
    }
    assert action.before["status"] == "active" and action.tenant == "acme"
    assert action.cause is Cause.DRIFT
    assert "gone from the zone" in action.reason


def test_a_row_that_never_recorded_an_id_is_not_marked_deleted() -> None:
    # written before any hostname existed (by the app): it never named one in the zone
    world = converged_world(
        **gone("old.acme-home.com", custom_hostname_id=None, status="pending_validation")
    )
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def test_no_row_is_marked_deleted_on_a_partial_hostname_listing() -> None:
    world = converged_world(**gone("old.acme-home.com"), incomplete={Source.HOSTNAMES: "HTTP 503"})
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def test_no_row_is_marked_deleted_while_d1_is_unreadable() -> None:
    world = converged_world(**gone("old.acme-home.com"), incomplete={Source.D1: "HTTP 503"})
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def test_a_scoped_plan_leaves_the_rows_of_other_sites_alone() -> None:
    world = converged_world(
        **gone("www.other.com", site="other-site"), scope=frozenset({"acme-home"})
    )
    assert records(plan_for(world), ActionKind.RECORD_HOSTNAME) == []


def test_a_declared_hostname_gone_from_the_zone_is_created_and_counted_as_a_recreation() -> None:
    # a run killed between a recreation's delete and its create: the row keeps the old id
    world = converged_world(hostnames={}, **gone("www.acme-home.com", recreate_count=1))
    [action] = plan_for(world).actions
    assert action.kind is ActionKind.CREATE_HOSTNAME
    assert action.after["recreate_count"] == 2
    assert "recreation 2 of 2" in action.reason


def test_a_declared_hostname_whose_row_has_no_id_is_a_plain_create() -> None:
    world = converged_world(
        hostnames={},
        **gone("www.acme-home.com", custom_hostname_id=None, status="pending_validation"),
    )
    [action] = plan_for(world).actions
    assert action.kind is ActionKind.CREATE_HOSTNAME
    assert "recreate_count" not in action.after


def test_a_certificate_stage_change_alone_is_not_worth_a_write() -> None:
    world = converged_world(
        **lagging(
            status="active",
            ssl_status="pending_deployment",
            recorded_status="pending_ssl",
            status_since=NOW - 3600,  # within the ssl timeout
        )
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


# --- a build the plan blocks is recorded in publish_versions --------------------------------

BROKEN = BuildPreview(
    "acme-home",
    3,
    None,
    js_kb=0,
    css_kb=0,
    third_party_scripts=0,
    error="invalid content: pages[0].blocks[1] (image): alt: Field required",
)
HEAVY = BuildPreview("acme-home", 3, "hash3", js_kb=312, css_kb=10, third_party_scripts=0)


def test_a_build_failure_is_blocked_and_recorded_once_as_a_failed_publish() -> None:
    plan = plan_for(converged_world(builds={("acme-home", 3): BROKEN}), version=3)
    assert [(b.gate, b.kind) for b in plan.blocked] == [("build", ActionKind.PUBLISH)]
    assert "alt: Field required" in plan.blocked[0].reason
    [action] = plan.actions
    assert action.kind is ActionKind.RECORD_PUBLISH_FAILURE
    assert action.target == "Site/acme-home:production"
    assert action.calls == {"d1": 1}
    assert action.after["version"] == 3 and action.after["environment"] == "production"
    assert action.after["error_message"] == "build failed: " + str(BROKEN.error)
    assert "sizes" not in action.after


def test_a_recorded_build_failure_blocks_without_retrying_or_recording_again() -> None:
    world = converged_world(
        builds={("acme-home", 3): BROKEN},
        **with_latest(failed_row("build failed: " + str(BROKEN.error))),
    )
    plan = plan_for(world, version=3)
    assert plan.actions == ()
    assert [b.gate for b in plan.blocked] == ["build"]
    assert "alt: Field required" in plan.blocked[0].reason


def test_an_over_budget_build_is_recorded_with_its_sizes_and_the_budget_message() -> None:
    plan = plan_for(converged_world(builds={("acme-home", 3): HEAVY}), version=3)
    [after] = records(plan, ActionKind.RECORD_PUBLISH_FAILURE)
    assert str(after["error_message"]).startswith("performance budget exceeded: JS 312 KB")
    assert after["sizes"] == {
        "js_kb": 312,
        "css_kb": 10,
        "third_party_scripts": 0,
        "image_kb": 0,
        "page_weight_kb": 0,
    }
    assert after["content_hash"] == "hash3"


def test_a_recorded_budget_failure_is_not_a_retry_and_plans_nothing_more() -> None:
    first = plan_for(converged_world(builds={("acme-home", 3): HEAVY}), version=3)
    [after] = records(first, ActionKind.RECORD_PUBLISH_FAILURE)
    world = converged_world(
        builds={("acme-home", 3): HEAVY},
        **with_latest(failed_row(str(after["error_message"]))),
    )
    plan = plan_for(world, version=3)
    assert plan.actions == ()
    assert [(b.gate, b.kind) for b in plan.blocked] == [("budget", ActionKind.PUBLISH)]


def test_a_budget_failure_publishes_once_the_build_fits_again() -> None:
    fits = replace(HEAVY, js_kb=90)
    world = converged_world(
        builds={("acme-home", 3): fits},
        **with_latest(failed_row("performance budget exceeded: JS 312 KB is over", attempts=3)),
    )
    plan = plan_for(world, version=3)
    assert [a.kind for a in plan.actions] == [ActionKind.PUBLISH]
    assert plan.actions[0].after["attempt"] == 1


def test_a_changed_build_error_is_recorded_again() -> None:
    world = converged_world(
        builds={("acme-home", 3): replace(HEAVY, js_kb=400)},
        **with_latest(failed_row("performance budget exceeded: JS 312 KB is over the budget")),
    )
    assert len(records(plan_for(world, version=3), ActionKind.RECORD_PUBLISH_FAILURE)) == 1


# --- permanent build failures are not retried ------------------------------------------------


def test_a_publish_that_failed_to_build_is_blocked_at_once_not_retried() -> None:
    world = converged_world(**with_latest(failed_row("build failed: missing asset img/logo.png")))
    plan = plan_for(world, version=3)
    assert plan.actions == ()
    [blocked] = plan.blocked
    assert blocked.gate == "build" and blocked.kind is ActionKind.PUBLISH
    assert "missing asset img/logo.png" in blocked.reason
    assert "build failed: build failed" not in blocked.reason


def test_a_new_version_after_a_build_failure_is_published() -> None:
    world = converged_world(
        **with_latest(failed_row("build failed: missing asset img/logo.png", version=2))
    )
    world = replace(
        world,
        ledger={
            "acme-home": replace(world.ledger["acme-home"], live={}, versions=frozenset({1, 2, 3}))
        },
    )
    plan = plan_for(world, version=3)
    assert [a.kind for a in plan.actions] == [ActionKind.PUBLISH]


def test_a_deployment_failure_is_still_retried_up_to_the_cap() -> None:
    error = "deployment d1 failure: stage build failure"
    retried = plan_for(converged_world(**with_latest(failed_row(error))), version=3)
    assert [a.kind for a in retried.actions] == [ActionKind.RETRY_PUBLISH]
    assert retried.actions[0].after["attempt"] == 2
    capped = plan_for(converged_world(**with_latest(failed_row(error, attempts=3))), version=3)
    assert capped.actions == () and [b.gate for b in capped.blocked] == ["stuck"]


def test_which_errors_are_permanent_build_failures() -> None:
    assert is_permanent_build_failure("build failed: invalid content: pages[0]: bad")
    assert is_permanent_build_failure("build failed: build exceeded its time limit of 60s")
    assert not is_permanent_build_failure(
        "build failed: version 3 has no content snapshot in site_versions"
    )
    assert not is_permanent_build_failure("performance budget exceeded: JS 312 KB is over")
    assert not is_permanent_build_failure("deployment d1 failure: stage build failure")
    assert not is_permanent_build_failure(None)
