"""Levers and targets (core.levers, plan rule 9), ssl_timeout, honest Stuck text, owed invoices.

Each runbook's manual endpoint becomes a forced intent the pure planner honours or refuses;
a selection narrows the plan to its targets and what they depend on. Literal inputs only.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_plan import converged_world, kinds, plan_for

from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling
from reconciler.core.levers import Lever, LeverKind, Selection, covers, parse_address
from reconciler.core.observed import Observed, PublishRecord, TenantRecord, billing_digest
from reconciler.core.plan import ActionKind, Plan, PlanSettings, build_plan
from reconciler.core.plan_site_levers import next_publish_retry

from support.core import NOW, hostname, invoice, specs

HOST = "www.acme-home.com"
PROD = "Site/acme-home:production"


def pull(*levers: Lever, targets: tuple[str, ...] = ()) -> PlanSettings:
    return PlanSettings(selection=Selection(targets=targets, levers=levers))


def refused(plan: Plan) -> list[tuple[str, str]]:
    return [(b.gate, b.reason) for b in plan.blocked]


# ---------------------------------------------------------------- addresses and --target


def test_addresses_are_checked_and_hostnames_made_canonical() -> None:
    assert parse_address("Hostname/WWW.Acme-Home.com.") == f"Hostname/{HOST}"
    assert parse_address("Site/acme-home:production") == PROD
    for bad in ("acme-home", "Pod/x", "Site/", "Site/a:staging"):
        with pytest.raises(ValueError, match=r"Site/acme-home|environment"):
            parse_address(bad)


def test_a_tenant_covers_its_sites_hostnames_and_invoices_and_a_site_its_hostnames() -> None:
    assert covers("Tenant/acme", target="Invoice/in_1:D3", tenant="acme", site=None)
    assert covers("Site/acme-home", target=PROD, tenant="acme", site="acme-home")
    assert covers("Site/acme-home", target=f"Hostname/{HOST}", tenant="acme", site="acme-home")
    assert not covers(PROD, target=f"Hostname/{HOST}", tenant="acme", site="acme-home")
    assert not covers("Site/acme", target="Site/acme-home:production", tenant="a", site="x")


def test_a_target_keeps_only_its_actions_and_what_they_depend_on() -> None:
    world = converged_world(hostnames={})
    whole = plan_for(world, version=3)
    assert sorted(kinds(whole)) == [
        ("create_hostname", f"Hostname/{HOST}"),
        ("publish", PROD),
    ]
    narrowed = plan_for(world, version=3, settings=pull(targets=(f"Hostname/{HOST}",)))
    assert kinds(narrowed) == [("create_hostname", f"Hostname/{HOST}")]


def test_a_target_brings_its_dependencies_and_a_lock_the_routing_write_after_it() -> None:
    facts = CustomerBilling(customer="cus_acme", open_invoices=(invoice("cus_acme", days=20),))
    world = converged_world(billing={"cus_acme": facts}, billing_mirror={"cus_acme": "x"})
    step = plan_for(world, settings=pull(targets=("Invoice/in_cus_acme:D7",)))
    assert [a.kind for a in step.actions] == [ActionKind.SYNC_BILLING, ActionKind.SEND_DUNNING]
    lock = plan_for(world, settings=pull(Lever(LeverKind.ENFORCE, "Tenant/acme")))
    assert [a.kind for a in lock.actions] == [
        ActionKind.SYNC_BILLING,
        ActionKind.HARD_LOCK,
        ActionKind.WRITE_ROUTES,
    ]


# ---------------------------------------------------------------- runbook 1: publish, purge


def test_publish_on_a_converged_site_redeploys_the_live_version() -> None:
    plan = plan_for(converged_world(), settings=pull(Lever(LeverKind.PUBLISH, PROD)))
    [action] = plan.actions
    assert action.kind is ActionKind.PUBLISH
    assert action.after["redeploy_of"] == "dep-2" and action.after["version"] == 2
    assert "asked by hand" in action.reason


def test_publish_of_a_hard_locked_tenants_site_is_refused_with_the_reason() -> None:
    world = converged_world(tenants={"acme": TenantRecord(name="acme", access="hard_locked")})
    locked = specs(tenants={"acme": "  access: hard_locked\n  access_reason: fraud review"})
    desired = derive(locked, world.billing, now=NOW)
    plan = build_plan(desired, world, pull(Lever(LeverKind.PUBLISH, PROD)))
    assert plan.actions == ()
    [(gate, reason)] = refused(plan)
    assert gate == "hard_locked" and "hard-locked" in reason


def test_a_build_failure_is_requeued_by_the_publish_lever() -> None:
    failed = PublishRecord(
        "acme-home", "production", 3, "failed", None, 1, "build failed: bad block", NOW
    )
    ledgered = {
        "acme-home": replace(converged_world().ledger["acme-home"], latest={"production": failed})
    }
    world = converged_world(ledger=ledgered)
    assert plan_for(world, version=3).blocked[0].gate == "build"
    plan = plan_for(world, version=3, settings=pull(Lever(LeverKind.PUBLISH, "Site/acme-home")))
    assert kinds(plan) == [("retry_publish", PROD)]


def test_clear_stuck_retries_a_publish_past_its_cap_now() -> None:
    stuck = PublishRecord("acme-home", "production", 3, "failed", None, 3, "boom", NOW - 60)
    ledgered = {
        "acme-home": replace(converged_world().ledger["acme-home"], latest={"production": stuck})
    }
    world = converged_world(ledger=ledgered)
    assert plan_for(world, version=3).blocked[0].gate == "stuck"
    plan = plan_for(world, version=3, settings=pull(Lever(LeverKind.CLEAR_STUCK, PROD)))
    assert kinds(plan) == [("retry_publish", PROD)]
    assert plan.actions[0].after["attempt"] == 4


def test_the_daemon_wakes_when_a_stuck_publishs_cool_down_ends() -> None:
    stuck = PublishRecord("acme-home", "production", 3, "failed", None, 3, "boom", NOW - 3600)
    site = replace(converged_world().ledger["acme-home"], latest={"production": stuck})
    settings = PlanSettings()
    assert next_publish_retry(site, settings=settings, now=NOW) == NOW + 5 * 3600
    ours = replace(stuck, error_message="build failed: bad block")
    ledger_ours = replace(site, latest={"production": ours})
    assert next_publish_retry(ledger_ours, settings=settings, now=NOW) is None


def test_purge_purges_every_host_of_the_site() -> None:
    plan = plan_for(converged_world(), settings=pull(Lever(LeverKind.PURGE, "Site/acme-home")))
    [action] = plan.actions
    assert action.kind is ActionKind.PURGE_CACHE
    assert action.after["hosts"] == [HOST]


def test_a_lever_on_something_no_spec_declares_is_refused() -> None:
    plan = plan_for(converged_world(), settings=pull(Lever(LeverKind.PURGE, "Site/nope")))
    [(gate, reason)] = refused(plan)
    assert gate == "refused" and "Site/nope is not declared" in reason


# ---------------------------------------------------------------- runbook 2: hostnames


def pending(hours: float, **changes: object) -> Observed:
    have = replace(
        hostname(HOST, status="pending", ssl_status="pending_validation"),
        status_since=NOW - hours * 3600,
        recorded_status="pending_validation",
        recorded_ssl_status="pending_validation",
        **changes,
    )
    return converged_world(hostnames={HOST: have})


def test_retry_validation_re_triggers_a_pending_hostname_before_its_timeout() -> None:
    world = pending(2)
    assert plan_for(world).is_empty
    lever = Lever(LeverKind.RETRY_VALIDATION, f"Hostname/{HOST}")
    [action] = plan_for(world, settings=pull(lever)).actions
    assert action.kind is ActionKind.RETRY_VALIDATION and "asked by hand" in action.reason


def test_retry_validation_of_an_active_hostname_is_refused() -> None:
    lever = Lever(LeverKind.RETRY_VALIDATION, f"Hostname/{HOST}")
    plan = plan_for(converged_world(), settings=pull(lever))
    assert plan.actions == ()
    [(gate, reason)] = refused(plan)
    assert gate == "refused" and "active and serving" in reason


def test_recreate_deletes_and_creates_a_pending_hostname_now() -> None:
    lever = Lever(LeverKind.RECREATE, f"Hostname/{HOST}")
    [action] = plan_for(pending(2), settings=pull(lever)).actions
    assert action.kind is ActionKind.RECREATE_HOSTNAME
    assert action.after["recreate_count"] == 1


def stuck_world(**changes: object) -> Observed:
    have = replace(
        hostname(HOST, status="moved", ssl_status="validation_timed_out", recreates=2),
        status_since=NOW - 3600,
        recorded_status="failed",
        recorded_ssl_status="validation_timed_out",
        **changes,
    )
    return converged_world(hostnames={HOST: have}, cname_target="customers.saas.test")


def test_clear_stuck_recreates_a_hostname_past_its_cap_and_is_refused_when_not_stuck() -> None:
    lever = Lever(LeverKind.CLEAR_STUCK, f"Hostname/{HOST}")
    [action] = plan_for(stuck_world(), settings=pull(lever)).actions
    assert action.kind is ActionKind.RECREATE_HOSTNAME
    assert action.after["recreate_count"] == 3 and "past the cap" in action.reason
    plan = plan_for(pending(2), settings=pull(lever))
    assert plan.actions == () and "is not stuck" in refused(plan)[0][1]


def test_a_stuck_hostname_whose_dns_is_right_does_not_blame_the_customer() -> None:
    world = stuck_world(dns_checked=True, dns_cname="customers.saas.test")
    [blocked] = plan_for(world).blocked
    assert blocked.gate == "stuck"
    assert "customer must point" not in blocked.reason
    assert "the customer's DNS is right" in blocked.reason
    assert "Cloudflare has not validated it" in blocked.reason


def ssl_plan(hours: float, *, recreates: int = 0) -> Plan:
    have = replace(
        hostname(HOST, status="active", ssl_status="pending_issuance", recreates=recreates),
        status_since=NOW - hours * 3600,
        recorded_status="pending_ssl",
        recorded_ssl_status="pending_issuance",
    )
    observed = converged_world(hostnames={HOST: have})
    desired = derive(specs(), observed.billing, now=NOW)
    site = desired.sites["acme-home"]
    twelve = tuple(h._replace(ssl_timeout=12 * 3600.0) for h in site.hostnames)
    desired = replace(desired, sites={"acme-home": site._replace(hostnames=twelve)})
    return build_plan(desired, observed)


def test_a_certificate_pending_past_the_ssl_timeout_is_recreated() -> None:
    assert ssl_plan(11).is_empty
    [action] = ssl_plan(13).actions
    assert action.kind is ActionKind.RECREATE_HOSTNAME
    assert "over the ssl timeout of 12 h" in action.reason
    [blocked] = ssl_plan(13, recreates=2).blocked
    assert blocked.gate == "stuck" and "not the cause" in blocked.reason


# ---------------------------------------------------------------- runbooks 3, 7: billing


def billing_world(*invoices: object, mirrored: bool = True, access: str = "active") -> Observed:
    facts = CustomerBilling(customer="cus_acme", open_invoices=tuple(invoices))  # type: ignore[arg-type]
    return converged_world(
        billing={"cus_acme": facts},
        billing_mirror={"cus_acme": billing_digest(facts) if mirrored else "old"},
        tenants={"acme": TenantRecord(name="acme", access=access)},
    )


def test_an_uncollectible_invoice_keeps_a_hard_locked_tenant_locked_and_dunned() -> None:
    owed = replace(invoice("cus_acme", days=20), status="uncollectible")
    plan = plan_for(billing_world(owed, access="hard_locked"))
    assert ActionKind.UNLOCK not in [a.kind for a in plan.actions]
    assert [a.target for a in plan.actions if a.kind is ActionKind.SEND_DUNNING] == [
        f"Invoice/{owed.id}:D7"
    ]


def test_sync_billing_mirrors_a_tenant_whose_copy_looks_current() -> None:
    world = billing_world()
    assert plan_for(world).is_empty
    [action] = plan_for(world, settings=pull(Lever(LeverKind.SYNC_BILLING, "Tenant/acme"))).actions
    assert action.kind is ActionKind.SYNC_BILLING and "asked by hand" in action.reason


def test_enforce_applies_the_lock_and_says_when_there_is_nothing_to_enforce() -> None:
    late = invoice("cus_acme", days=5)
    plan = plan_for(billing_world(late), settings=pull(Lever(LeverKind.ENFORCE, "Tenant/acme")))
    assert [a.kind for a in plan.actions] == [ActionKind.SOFT_LOCK]
    calm = plan_for(billing_world(), settings=pull(Lever(LeverKind.ENFORCE, "Tenant/acme")))
    assert calm.actions == () and calm.blocked == ()
    [note] = calm.notes
    assert note.category == "unchanged" and "nothing to enforce" in note.reason


def test_send_dunning_sends_a_chosen_step_and_refuses_one_already_sent() -> None:
    from reconciler.core.observed import DunningRecord

    late = invoice("cus_acme", days=1)
    lever = Lever(LeverKind.SEND_DUNNING, "Tenant/acme", step="D3")
    [action] = plan_for(billing_world(late), settings=pull(lever)).actions
    assert action.kind is ActionKind.SEND_DUNNING
    assert action.after["step_code"] == "D3" and action.target == f"Invoice/{late.id}:D3"
    sent = {(late.id, "D3"): DunningRecord(late.id, "D3", "sent")}
    plan = plan_for(replace(billing_world(late), dunning=sent), settings=pull(lever))
    assert plan.actions == ()
    [(gate, reason)] = refused(plan)
    assert gate == "refused" and "already sent" in reason


def test_a_failed_step_is_resent_once_its_number_is_fixed_never_when_unknown() -> None:
    from reconciler.core.observed import DunningRecord

    late = invoice("cus_acme", days=0)
    bad = DunningRecord(late.id, "FAIL_IMMEDIATE", "failed", "invalid number: +1 is not", "+1")
    world = replace(billing_world(late), dunning={(late.id, "FAIL_IMMEDIATE"): bad})
    [action] = plan_for(world).actions
    assert action.kind is ActionKind.SEND_DUNNING and action.after["resend"] is True
    assert "number was corrected" in action.reason
    same = replace(bad, phone="+5511912345678")  # the number it failed on is still the spec's
    assert plan_for(replace(world, dunning={(late.id, "FAIL_IMMEDIATE"): same})).is_empty
    unknown = replace(bad, status="unknown", error_message="outcome of the send is unknown")
    assert plan_for(replace(world, dunning={(late.id, "FAIL_IMMEDIATE"): unknown})).is_empty


def test_retrying_a_step_whose_outcome_is_unknown_is_refused() -> None:
    from reconciler.core.observed import DunningRecord

    late = invoice("cus_acme", days=0)
    unknown = DunningRecord(late.id, "FAIL_IMMEDIATE", "unknown", "outcome of the send is unknown")
    world = replace(billing_world(late), dunning={(late.id, "FAIL_IMMEDIATE"): unknown})
    lever = Lever(LeverKind.SEND_DUNNING, f"Invoice/{late.id}:FAIL_IMMEDIATE")
    plan = plan_for(world, settings=pull(lever))
    assert plan.actions == ()
    assert "unknown" in refused(plan)[0][1]
