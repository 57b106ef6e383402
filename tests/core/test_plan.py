"""The planner's numbered rules (core/plan.py), with literal inputs only."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling
from reconciler.core.observed import (
    BuildPreview,
    DunningRecord,
    Gap,
    GapReason,
    Observed,
    ObservedDigest,
    PublishRecord,
    Source,
    TenantRecord,
    billing_digest,
)
from reconciler.core.plan import (
    PUBLISHES_PER_PURGE,
    ActionKind,
    Cause,
    Plan,
    PlanSettings,
    build_plan,
)
from reconciler.core.render import Rate, cost_line

from support.core import (
    DAY,
    NOW,
    billing,
    deployment,
    hostname,
    invoice,
    ledger,
    project,
    served,
    specs,
    suspended,
)


def converged_world(**overrides: object) -> Observed:
    """acme-home at version 2, www.acme-home.com active, billing mirrored, no invoices."""
    facts = CustomerBilling(customer="cus_acme")
    base: dict[str, object] = {
        "at": NOW,
        "projects": {
            "acme-home": project(serving="dep-2", deployments=(deployment("dep-2", version=2),))
        },
        "ledger": {
            "acme-home": ledger(live=2, deployment_id="dep-2", versions=frozenset({1, 2, 3}))
        },
        "hostnames": {"www.acme-home.com": hostname("www.acme-home.com")},
        "routes": served("www.acme-home.com"),
        "tenants": {"acme": TenantRecord(name="acme", access="active")},
        "billing": {"cus_acme": facts},
        "billing_mirror": {"cus_acme": billing_digest(facts)},
    }
    base.update(overrides)
    return Observed(**base)  # type: ignore[arg-type]


def plan_for(
    observed: Observed,
    *,
    version: int = 2,
    settings: PlanSettings | None = None,
    **spec_options: object,
) -> Plan:
    site_options = {"version": version, **spec_options}
    desired = derive(specs(sites={"acme-home": site_options}), observed.billing, now=NOW)
    return build_plan(desired, observed, settings)


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(a.kind.value, a.target) for a in plan.actions]


def test_a_converged_world_plans_nothing() -> None:
    plan = plan_for(converged_world())
    assert plan.is_empty
    assert plan.actions == ()


def test_planning_twice_gives_identical_plans() -> None:
    assert plan_for(converged_world(), version=3) == plan_for(converged_world(), version=3)


def test_the_observed_digest_is_hashed_only_when_read_and_then_once() -> None:
    world = converged_world()
    plan = plan_for(world, version=3)
    assert repr(plan.digest) == "ObservedDigest('not yet hashed')"
    assert plan.observed_digest == world.digest()
    assert repr(plan.digest) == f"ObservedDigest({world.digest()!r})"
    assert plan.digest == ObservedDigest(world.digest())
    assert plan.digest != ObservedDigest(replace(world, known_domains=frozenset({"x"})))


def test_a_version_bump_without_a_deployment_publishes_with_its_source_line() -> None:
    plan = plan_for(converged_world(), version=3)
    assert kinds(plan) == [("publish", "Site/acme-home:production")]
    action = plan.actions[0]
    assert action.after["version"] == 3
    assert action.after["commit"] == "c0ffee"
    assert action.source == "specs/sites/acme-home.yaml:7:16"
    assert action.cause is Cause.CHANGE
    assert action.before == {"version": 2, "deployment_id": "dep-2"}


def test_rule_4_an_existing_deployment_of_the_wanted_version_is_rolled_back_to() -> None:
    world = converged_world(
        projects={
            "acme-home": project(
                serving="dep-2",
                deployments=(
                    deployment("dep-1", version=1, at=1),
                    deployment("dep-2", version=2, at=2),
                ),
            )
        }
    )
    plan = plan_for(world, version=1)
    assert kinds(plan) == [("rollback", "Site/acme-home:production")]
    assert plan.actions[0].after["deployment_id"] == "dep-1"
    assert "no rebuild" in plan.actions[0].reason


def test_a_failed_deployment_of_the_version_is_not_a_rollback_target() -> None:
    world = converged_world(
        projects={
            "acme-home": project(
                serving="dep-2",
                deployments=(
                    deployment("dep-1", version=1, status="failure"),
                    deployment("dep-2", version=2),
                ),
            )
        }
    )
    assert kinds(plan_for(world, version=1)) == [("publish", "Site/acme-home:production")]


def test_production_moved_by_hand_is_drift_and_is_pointed_back() -> None:
    world = converged_world(
        projects={
            "acme-home": project(
                serving="dep-1",
                deployments=(deployment("dep-1", version=1), deployment("dep-2", version=2)),
            )
        }
    )
    plan = plan_for(world)
    assert kinds(plan) == [("rollback", "Site/acme-home:production")]
    assert plan.actions[0].cause is Cause.DRIFT


def test_rule_5_a_hard_locked_tenant_gets_no_publish() -> None:
    world = converged_world(billing=billing(invoice("cus_acme", days=20)))
    plan = plan_for(world, version=3)
    assert [b.gate for b in plan.blocked] == ["hard_locked"]
    assert ("publish", "Site/acme-home:production") not in kinds(plan)


def test_rule_5_a_publish_over_budget_is_blocked_with_the_numbers() -> None:
    world = converged_world(
        builds={
            ("acme-home", 3): BuildPreview(
                "acme-home", 3, "h", js_kb=312, css_kb=10, third_party_scripts=0
            )
        }
    )
    plan = plan_for(world, version=3)
    # Nothing is published; the only action records the failure in D1 (rule 7).
    assert [a.kind for a in plan.actions] == [ActionKind.RECORD_PUBLISH_FAILURE]
    assert plan.blocked[0].gate == "budget"
    assert "312" in plan.blocked[0].reason and "100" in plan.blocked[0].reason


def test_a_version_without_a_content_snapshot_is_blocked() -> None:
    plan = plan_for(converged_world(), version=9)
    assert [b.gate for b in plan.blocked] == ["missing_version"]


def test_a_failed_publish_is_retried_then_marked_stuck() -> None:
    failed = PublishRecord("acme-home", "production", 3, "failed", None, 1, "boom", 0.0)
    world = converged_world(
        ledger={"acme-home": ledger(live=2, deployment_id="dep-2", latest=failed)}
    )
    plan = plan_for(world, version=3)
    assert kinds(plan) == [("retry_publish", "Site/acme-home:production")]
    assert plan.actions[0].after["attempt"] == 2
    stuck = PublishRecord("acme-home", "production", 3, "failed", None, 3, "boom", NOW - 3600)
    world = converged_world(
        ledger={"acme-home": ledger(live=2, deployment_id="dep-2", latest=stuck)}
    )
    plan = plan_for(world, version=3)
    assert plan.actions == ()
    assert plan.blocked[0].gate == "stuck" and "boom" in plan.blocked[0].reason


def test_a_publish_stuck_on_the_providers_side_is_retried_by_itself_after_the_cool_down() -> None:
    def plan_after(hours: float, error: str):
        stuck = PublishRecord(
            "acme-home", "production", 3, "failed", None, 3, error, NOW - hours * 3600
        )
        world = converged_world(
            ledger={"acme-home": ledger(live=2, deployment_id="dep-2", latest=stuck)}
        )
        return plan_for(world, version=3)

    deployment = "deployment d-1 failure: build stage failed"
    waiting = plan_after(5, deployment)
    assert waiting.actions == ()
    assert "Cloudflare's side" in waiting.blocked[0].reason
    assert "in 1.0 h" in waiting.blocked[0].reason
    assert "reconciler clear-stuck Site/acme-home:production" in waiting.blocked[0].reason
    retried = plan_after(6, deployment)
    assert kinds(retried) == [("retry_publish", "Site/acme-home:production")]
    assert retried.actions[0].after["attempt"] == 4
    assert "cool-down of 6 h" in retried.actions[0].reason
    # Ours (over the budget): it waits for a change, however long.
    ours = plan_after(100, "performance budget exceeded: JS 400 KB of 300 KB")
    assert ours.actions == () and ours.blocked[0].gate == "stuck"
    assert "bump the version" in ours.blocked[0].reason


def test_a_new_domain_is_routed_first_then_created_without_an_origin() -> None:
    plan = plan_for(converged_world(), domains=["www.acme-home.com", "Shop.Acme-Home.com."])
    assert kinds(plan) == [
        ("write_routes", "Routes/acme"),
        ("create_hostname", "Hostname/shop.acme-home.com"),
    ]
    write, create = plan.actions
    assert write.after["put"] == {
        "shop.acme-home.com": {
            "action": "serve",
            "project": "acme-home",
            "site": "acme-home",
            "tenant": "acme",
        }
    }
    assert write.id in create.depends_on
    assert "origin" not in create.after
    assert "within about 60 s" in write.reason


def test_rule_2_no_create_and_no_delete_when_hostnames_could_not_be_read() -> None:
    world = converged_world(
        hostnames={}, incomplete={Source.HOSTNAMES: Gap(GapReason.FAILED, "HTTP 503")}
    )
    plan = plan_for(world)
    assert plan.actions == ()
    assert plan.blocked[0].gate == "incomplete"
    assert "HTTP 503" in plan.blocked[0].reason
    assert plan.incomplete == {"hostnames": "HTTP 503"}


def test_rule_3_unmanaged_hostnames_are_listed_and_never_deleted() -> None:
    world = converged_world(
        hostnames={
            "www.acme-home.com": hostname("www.acme-home.com"),
            "legacy.example.org": hostname("legacy.example.org", owned=False, site=None),
        }
    )
    plan = plan_for(world, deletion="delete")
    assert plan.actions == ()
    assert [(n.category, n.target) for n in plan.notes] == [
        ("unmanaged", "Hostname/legacy.example.org")
    ]


def test_a_claimed_hostname_without_our_marker_is_a_conflict() -> None:
    world = converged_world(
        hostnames={"www.acme-home.com": hostname("www.acme-home.com", owned=False)}
    )
    plan = plan_for(world)
    assert plan.blocked[0].gate == "conflict"


def test_a_removed_domain_is_retained_or_deleted_by_policy() -> None:
    world = converged_world(
        hostnames={
            "www.acme-home.com": hostname("www.acme-home.com"),
            "old.acme-home.com": hostname("old.acme-home.com"),
        }
    )
    retained = plan_for(world)
    assert retained.actions == ()
    assert retained.notes[0].category == "retained"
    deleted = plan_for(world, deletion="delete")
    assert kinds(deleted) == [("delete_hostname", "Hostname/old.acme-home.com")]


def test_mass_deletion_is_blocked_unless_allowed() -> None:
    extra = {f"h{i}.acme-home.com": hostname(f"h{i}.acme-home.com") for i in range(12)}
    world = converged_world(hostnames={"www.acme-home.com": hostname("www.acme-home.com"), **extra})
    plan = plan_for(world, deletion="delete")
    assert plan.actions == ()
    assert {b.gate for b in plan.blocked} == {"blast_radius"}
    allowed = plan_for(world, deletion="delete", settings=PlanSettings(allow_mass_deletion=True))
    assert len(allowed.actions) == 12


def test_pending_validation_past_the_timeout_is_retried() -> None:
    pending = hostname(
        "www.acme-home.com",
        status="pending",
        ssl_status="pending_validation",
        since=NOW - 25 * 3600,
    )
    plan = plan_for(converged_world(hostnames={"www.acme-home.com": pending}))
    assert kinds(plan) == [("retry_validation", "Hostname/www.acme-home.com")]
    fresh = hostname(
        "www.acme-home.com", status="pending", ssl_status="pending_validation", since=NOW - 3600
    )
    assert plan_for(converged_world(hostnames={"www.acme-home.com": fresh})).is_empty


def test_a_timed_out_hostname_is_recreated_until_the_cap_then_stuck_with_dns_advice() -> None:
    timed_out = hostname("www.acme-home.com", status="pending", ssl_status="validation_timed_out")
    plan = plan_for(converged_world(hostnames={"www.acme-home.com": timed_out}))
    assert kinds(plan) == [("recreate_hostname", "Hostname/www.acme-home.com")]
    assert plan.actions[0].after["recreate_count"] == 1
    capped = hostname(
        "www.acme-home.com", status="moved", ssl_status="validation_timed_out", recreates=2
    )
    plan = plan_for(converged_world(hostnames={"www.acme-home.com": capped}))
    assert plan.actions == ()
    assert plan.blocked[0].gate == "stuck"
    assert "CNAME record for www.acme-home.com" in plan.blocked[0].reason


def test_a_tenant_past_due_is_locked_messaged_and_its_billing_mirrored() -> None:
    world = converged_world(billing=billing(invoice("cus_acme", days=4)))
    plan = plan_for(world)
    assert [a.kind for a in plan.actions] == [
        ActionKind.SYNC_BILLING,
        ActionKind.SOFT_LOCK,
        ActionKind.SEND_DUNNING,
    ]
    sync, lock, send = plan.actions
    assert lock.depends_on == (sync.id,)
    assert send.after["step_code"] == "D3"
    assert send.after["superseded"] == ["FAIL_IMMEDIATE"]


def test_a_dunning_step_already_logged_is_never_planned_again() -> None:
    facts = billing(invoice("cus_acme", days=4))
    world = converged_world(
        billing=facts,
        billing_mirror={"cus_acme": billing_digest(facts["cus_acme"])},
        tenants={"acme": TenantRecord(name="acme", access="soft_locked")},
        dunning={("in_cus_acme", "D3"): DunningRecord("in_cus_acme", "D3", "sent")},
    )
    assert plan_for(world).is_empty


def test_an_earlier_step_already_sent_is_not_reported_as_superseded() -> None:
    facts = billing(invoice("cus_acme", days=4))
    world = converged_world(
        billing=facts,
        billing_mirror={"cus_acme": billing_digest(facts["cus_acme"])},
        tenants={"acme": TenantRecord(name="acme", access="soft_locked")},
        dunning={
            ("in_cus_acme", "FAIL_IMMEDIATE"): DunningRecord(
                "in_cus_acme", "FAIL_IMMEDIATE", "sent"
            )
        },
    )
    [send] = plan_for(world).actions
    assert send.after["step_code"] == "D3"
    assert send.after["superseded"] == []
    assert "never sent" not in send.reason


def test_hard_lock_routes_hostnames_to_the_suspension_page_and_touches_no_hostname() -> None:
    world = converged_world(billing=billing(invoice("cus_acme", days=15)))
    plan = plan_for(world)
    by_kind = {a.kind: a for a in plan.actions}
    assert ActionKind.UPDATE_HOSTNAME not in by_kind
    write = by_kind[ActionKind.WRITE_ROUTES]
    assert write.after["put"] == {"www.acme-home.com": {"action": "suspend", "tenant": "acme"}}
    assert write.after["records"] == {"www.acme-home.com": "suspended"}
    assert by_kind[ActionKind.HARD_LOCK].id in write.depends_on
    assert not any(a.kind is ActionKind.RECORD_HOSTNAME for a in plan.actions)


def test_a_paid_tenant_still_locked_is_unlocked_first_and_hostnames_restored() -> None:
    world = converged_world(
        tenants={"acme": TenantRecord(name="acme", access="hard_locked")},
        hostnames={"www.acme-home.com": hostname("www.acme-home.com", locked=True)},
        routes=suspended("www.acme-home.com"),
    )
    plan = plan_for(world)
    assert [a.kind for a in plan.actions] == [ActionKind.UNLOCK, ActionKind.WRITE_ROUTES]
    write = plan.actions[1]
    entry = served("www.acme-home.com")["www.acme-home.com"]
    assert write.after["put"] == {"www.acme-home.com": entry.as_json()}
    assert write.after["records"] == {"www.acme-home.com": "active"}


def test_no_billing_decision_when_stripe_could_not_be_read() -> None:
    world = converged_world(
        billing={},
        incomplete={Source.STRIPE: Gap(GapReason.FAILED, "connection refused")},
        tenants={"acme": TenantRecord(name="acme", access="soft_locked")},
    )
    plan = plan_for(world)
    assert plan.actions == ()
    assert any("connection refused" in n.reason for n in plan.notes)


def test_the_gateway_being_down_leaves_dunning_waiting() -> None:
    facts = billing(invoice("cus_acme", days=1))
    world = converged_world(
        billing=facts,
        billing_mirror={"cus_acme": billing_digest(facts["cus_acme"])},
        incomplete={Source.WHATSAPP: Gap(GapReason.DISCONNECTED, "instance sitebuilder is close")},
    )
    plan = plan_for(world)
    assert plan.actions == ()
    assert plan.notes[0].category == "waiting"


def test_cost_forecast_counts_calls_per_provider() -> None:
    plan = plan_for(converged_world(), version=3, domains=["www.acme-home.com", "a.acme-home.com"])
    calls = plan.calls()
    # publish (upload token, create, one status read), its shared purge, create, routing write
    assert calls["cloudflare"] == 3 + 1 + 1 + 1
    assert calls["pages_upload"] == 3  # on the upload JWT, not the API token
    assert set(calls) == {"cloudflare", "d1", "pages_upload"}
    # D1 over REST spends the Cloudflare token: one meter.
    shared = plan.calls({"d1": "cloudflare"})
    assert shared == {"cloudflare": calls["cloudflare"] + calls["d1"], "pages_upload": 3}


def test_the_cost_line_counts_d1_over_rest_on_the_cloudflare_token() -> None:
    plan = plan_for(converged_world(), version=3)
    calls = plan.calls()
    budget = Rate(requests=1200, period=300)
    rates = {"cloudflare": budget, "d1": Rate(requests=1200, period=300, spends="cloudflare")}
    line = cost_line(plan, rates)
    token = calls["cloudflare"] + calls["d1"]
    assert line.startswith(f"API calls: cloudflare {token} (")
    assert "d1" not in line and f"pages_upload {calls['pages_upload']}" in line
    assert f"d1 {calls['d1']}" in cost_line(plan, {"cloudflare": budget})  # SQLite: apart


def test_publishes_share_purge_requests_in_the_forecast() -> None:
    plan = plan_for(converged_world(), version=3)
    one = plan.calls()["cloudflare"]
    many = replace(plan, actions=plan.actions * (PUBLISHES_PER_PURGE + 1))
    per_publish = one - 1  # without the one purge request
    assert many.calls()["cloudflare"] == per_publish * (PUBLISHES_PER_PURGE + 1) + 2


def test_unlock_and_rollback_come_before_publishes_and_creates() -> None:
    world = converged_world(
        tenants={"acme": TenantRecord(name="acme", access="soft_locked")},
    )
    plan = plan_for(world, version=3, domains=["www.acme-home.com", "b.acme-home.com"])
    assert plan.actions[0].kind is ActionKind.UNLOCK
    assert DAY > 0


def _rolled_back_world(newest_at: float) -> Observed:
    """D1 records a rollback to dep-2 at NOW - DAY; Pages calls dep-3 canonical."""
    recorded = replace(
        ledger(live=2, deployment_id="dep-2", versions=frozenset({1, 2, 3})).live["production"],
        created_at=NOW - DAY,
    )
    deployments = (
        deployment("dep-2", version=2, at=NOW - 3 * DAY),
        deployment("dep-3", version=3, at=newest_at),
    )
    return converged_world(
        projects={"acme-home": project(serving="dep-3", deployments=deployments)},
        ledger={
            "acme-home": replace(
                ledger(live=2, deployment_id="dep-2", versions=frozenset({1, 2, 3})),
                live={"production": recorded},
                latest={"production": recorded},
            )
        },
    )


def test_canonical_on_the_newest_deployment_made_before_our_rollback_is_the_latest_reading() -> (
    None
):
    # canonical_deployment read as "the most recent production deployment" (CONTRACT.md §9)
    assert plan_for(_rolled_back_world(NOW - 2 * DAY)).is_empty


def test_a_deployment_made_after_our_rollback_record_is_still_drift() -> None:
    plan = plan_for(_rolled_back_world(NOW - 60))
    assert kinds(plan) == [("rollback", "Site/acme-home:production")]
    assert plan.actions[0].after["deployment_id"] == "dep-2"


def _removed_site_world(sites: dict[str, int]) -> Observed:
    """acme-home kept; each of ``sites`` removed from the specs with that many owned hostnames."""
    hostnames = {"www.acme-home.com": hostname("www.acme-home.com")}
    for site, count in sites.items():
        for index in range(count):
            name = f"h{index}.{site}.com"
            hostnames[name] = hostname(
                name, site=site, origin=f"{site}.pages.dev", deletion_policy="delete"
            )
    return converged_world(hostnames=hostnames)


def test_removing_one_small_site_with_its_own_hostnames_is_not_a_mass_deletion() -> None:
    # Before: 2 of the tenant's 3 hostnames is over 10% (minimum 1), so it was blocked.
    plan = plan_for(_removed_site_world({"acme-shop": 2}))
    assert plan.blocked == ()
    assert kinds(plan) == [
        ("delete_hostname", "Hostname/h0.acme-shop.com"),
        ("delete_hostname", "Hostname/h1.acme-shop.com"),
    ]


def test_removing_most_of_a_tenants_sites_or_a_large_site_is_still_a_mass_deletion() -> None:
    two_sites = plan_for(_removed_site_world({"acme-shop": 1, "acme-blog": 1}))
    assert two_sites.actions == ()
    assert {b.gate for b in two_sites.blocked} == {"blast_radius"}
    assert "2 of its 3 sites would be removed" in two_sites.blocked[0].reason
    large = plan_for(_removed_site_world({"acme-shop": 7}))  # over max_site_hostnames (5)
    assert large.actions == ()
    assert "7 of its 8 hostnames would be deleted" in large.blocked[0].reason
    assert "`Approve-Deletion: Site/acme-shop`" in large.blocked[0].reason


def test_an_approval_names_the_deletions_it_lets_through_and_where_it_was_given() -> None:
    world = _removed_site_world({"acme-shop": 1, "acme-blog": 1})
    approved = PlanSettings(
        approved_deletions={"Site/acme-shop": "commit 1a2b3c4d5e6f (Remove acme-shop)"}
    )
    plan = plan_for(world, settings=approved)
    assert kinds(plan) == [("delete_hostname", "Hostname/h0.acme-shop.com")]
    assert plan.actions[0].reason.endswith("approved by commit 1a2b3c4d5e6f (Remove acme-shop)")
    assert [b.target for b in plan.blocked] == ["Hostname/h0.acme-blog.com"]
    by_hostname = PlanSettings(
        approved_deletions={"Hostname/h0.acme-blog.com": "commit 2b3c (Remove acme-blog)"}
    )
    assert kinds(plan_for(world, settings=by_hostname)) == [
        ("delete_hostname", "Hostname/h0.acme-blog.com")
    ]


def test_phone_masking_leaves_commit_shas_whole() -> None:
    from reconciler.core.render import mask_phone

    text = mask_phone("approved by commit b11057804864; call +5511912345678")
    assert text == "approved by commit b11057804864; call +55119••••5678"
    # a short sha of digits only (about 1 in 280) is still a sha when named as a commit
    assert mask_phone("approved by commit 947097555119") == "approved by commit 947097555119"
    assert mask_phone("call 947097555119") == "call 9470••••5119"
