"""The pure mapping from a pass (desired, observed, report) to conditions, and the deadlines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.core.conditions import conditions_for, gone_resources
from reconciler.core.conditions_common import SKIPPED_PREFIX, ConditionUpdate, Coverage
from reconciler.core.deadlines import next_billing_deadline, next_validation_deadline
from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.observed import Observed, ObservedHostname, PublishRecord, SiteLedger, Source
from reconciler.core.outcome import Outcome, Report, Status
from reconciler.core.plan import Plan, build_plan
from reconciler.spec.load import Specs, load_directory

from support.core import NOW as CORE_NOW
from support.core import specs as core_specs

SPECS = Path(__file__).resolve().parents[2] / "specs"
NOW = 1_767_225_600.0
DAY = 86400.0


def specs() -> Specs:
    return load_directory(SPECS)


def live(site: str, version: int) -> SiteLedger:
    row = PublishRecord(
        site=site,
        environment="production",
        version=version,
        status="live",
        deployment_id=f"dep-{site}",
        attempts=1,
        error_message=None,
        created_at=NOW - DAY,
    )
    return SiteLedger(site=site, live={"production": row}, latest={"production": row})


def hostname(name: str, *, status: str = "active", ssl: str = "active") -> ObservedHostname:
    return ObservedHostname(
        id=f"id-{name}",
        hostname=name,
        status=status,
        ssl_status=ssl,
        ssl_method="http",
        origin="acme-home.pages.dev",
        owned=True,
        site="acme-home",
        tenant="acme",
        deletion_policy="retain",
        created_at=NOW - 2 * DAY,
        status_since=NOW - 3600,
    )


def by_key(updates: list[ConditionUpdate]) -> dict[tuple[str, str], ConditionUpdate]:
    return {(u.resource, u.condition): u for u in updates}


def run(observed: Observed, *, outcomes: dict[str, Status] | None = None, **cover: object):
    fleet = specs()
    desired = derive(fleet, observed.billing, now=NOW)
    plan: Plan = build_plan(desired, observed)
    statuses = outcomes or {}
    report = Report(
        plan=plan,
        outcomes=tuple(
            Outcome(a.id, statuses.get(a.kind.value, Status.APPLIED), message="boom")
            for a in plan.actions
        ),
    )
    coverage = Coverage(**cover)  # type: ignore[arg-type]
    return plan, by_key(
        conditions_for(
            desired=desired, observed=observed, report=report, coverage=coverage, now=NOW
        )
    )


def test_a_site_live_at_its_version_is_synced_and_ready_at_the_pass_commit() -> None:
    observed = Observed(
        at=NOW,
        ledger={"acme-home": live("acme-home", 12)},
        hostnames={
            "www.acmebakery.com": hostname("www.acmebakery.com"),
            "acmebakery.com": hostname("acmebakery.com"),
        },
        scope=frozenset({"acme-home"}),
        incomplete={Source.STRIPE: f"{SKIPPED_PREFIX}: test"},
    )
    _, found = run(observed, sites=frozenset({"acme-home"}))
    assert found[("Site/acme-home", "Ready")].status is True
    assert found[("Hostname/www.acmebakery.com", "DNSConfigured")].status is True
    assert found[("Hostname/www.acmebakery.com", "CertificateIssued")].status is True
    assert found[("Site/acme-home", "Stuck")].status is False
    assert found[("Site/acme-home", "Ready")].tenant == "acme"


def test_a_publish_blocked_by_an_unreadable_pages_listing_leaves_the_site_unsynced() -> None:
    observed = Observed(
        at=NOW,
        ledger={"acme-home": live("acme-home", 11)},
        hostnames={"www.acmebakery.com": hostname("www.acmebakery.com", status="pending")},
        scope=frozenset({"acme-home"}),
        incomplete={Source.PAGES: "HTTP 503"},
    )
    _, found = run(observed, sites=frozenset({"acme-home"}))
    synced = found[("Site/acme-home", "Synced")]
    assert synced.status is False
    assert synced.reason == "WaitingForReading"  # Pages unreadable: the publish is blocked
    assert found[("Site/acme-home", "Ready")].reason == "Behind"
    dns = found[("Hostname/www.acmebakery.com", "DNSConfigured")]
    assert (dns.status, dns.reason) == (False, "ValidationPending")


def test_hostname_conditions_are_left_alone_when_the_pass_did_not_list_hostnames() -> None:
    observed = Observed(
        at=NOW,
        ledger={"acme-home": live("acme-home", 12)},
        scope=frozenset({"acme-home"}),
        incomplete={Source.HOSTNAMES: f"{SKIPPED_PREFIX}: billing sweep"},
    )
    _, found = run(observed, sites=frozenset({"acme-home"}))
    assert not any(resource.startswith("Hostname/") for resource, _ in found)


def test_an_unreadable_hostname_listing_gives_unknown_not_a_guess() -> None:
    observed = Observed(
        at=NOW,
        ledger={"acme-home": live("acme-home", 12)},
        scope=frozenset({"acme-home"}),
        incomplete={Source.HOSTNAMES: "HTTP 500"},
    )
    _, found = run(observed, sites=frozenset({"acme-home"}))
    dns = found[("Hostname/acmebakery.com", "DNSConfigured")]
    assert dns.status is None
    assert dns.last_error == "HTTP 500"
    synced = found[("Hostname/acmebakery.com", "Synced")]  # waiting on the reading
    assert (synced.status, synced.reason) == (False, "Unlisted")


def test_a_failed_billing_sync_makes_the_tenant_unsynced_with_the_error_as_last_error() -> None:
    fleet = specs()
    customer = fleet.tenants["acme"].spec.stripe.customer
    observed = Observed(at=NOW, billing={customer: CustomerBilling(customer=customer)})
    plan, found = run(
        observed, outcomes={"sync_billing": Status.FAILED_TRANSIENT}, tenants=frozenset({"acme"})
    )
    assert "sync_billing" in [a.kind.value for a in plan.actions if a.site is None]
    synced = found[("Tenant/acme", "Synced")]
    assert (synced.status, synced.reason, synced.last_error) == (False, "BillingSyncFailed", "boom")
    assert found[("Tenant/acme", "PaymentCurrent")].status is True


def test_a_key_the_queue_gave_up_on_is_stuck_with_its_last_error() -> None:
    observed = Observed(at=NOW, ledger={"acme-home": live("acme-home", 12)})
    _, found = run(
        observed,
        sites=frozenset({"acme-home"}),
        stuck={"Site/acme-home": "publish failed 8 times"},
    )
    stuck = found[("Site/acme-home", "Stuck")]
    assert stuck.status is True
    assert stuck.last_error == "publish failed 8 times"


def test_a_tenant_with_an_overdue_invoice_is_not_payment_current() -> None:
    fleet = specs()
    customer = fleet.tenants["acme"].spec.stripe.customer
    invoice = Invoice(
        id="in_1",
        customer=customer,
        subscription="sub_acme",
        status="open",
        amount_due=2900,
        currency="usd",
        created=NOW - 9 * DAY,
    )
    billing = {customer: CustomerBilling(customer=customer, open_invoices=(invoice,))}
    observed = Observed(at=NOW, billing=billing)
    _, found = run(observed, tenants=frozenset({"acme"}))
    payment = found[("Tenant/acme", "PaymentCurrent")]
    assert (payment.status, payment.reason) == (False, "SoftLocked")
    assert "9 days past due" in payment.message


def test_the_next_billing_deadline_is_the_first_future_dunning_day_or_threshold() -> None:
    policy = specs().policies["standard"].spec
    invoice = Invoice(
        id="in_1",
        customer="cus",
        subscription=None,
        status="open",
        amount_due=100,
        currency="usd",
        created=NOW - 4 * DAY,
    )
    # Days 0 and 3 are past; day 7 (D7 and the soft lock) is next.
    assert next_billing_deadline(policy, [invoice], NOW) == NOW + 3 * DAY
    assert next_billing_deadline(policy, [replace(invoice, status="paid")], NOW) is None


def test_the_next_validation_deadline_is_a_pending_hostnames_timeout() -> None:
    fleet = specs()
    desired = derive(fleet, {}, now=NOW)
    observed = Observed(
        at=NOW,
        hostnames={"www.acmebakery.com": hostname("www.acmebakery.com", status="pending")},
    )
    moment = next_validation_deadline(desired.sites["acme-home"].hostnames, observed, NOW)
    assert moment == NOW - 3600 + 24 * 3600


# --- blocked, undeclared and gone resources (issue 12) ----------------------------------------


def _blocked_removal() -> tuple[Observed, Report, object]:
    """acme-home keeps www; two hostnames of a removed, large site are blocked by the cap."""
    from support.core import hostname

    names = [f"h{i}.acme-shop.com" for i in range(7)]
    observed = Observed(
        at=CORE_NOW,
        hostnames={
            "www.acme-home.com": hostname("www.acme-home.com"),
            **{
                n: hostname(
                    n, site="acme-shop", origin="acme-shop.pages.dev", deletion_policy="delete"
                )
                for n in names
            },
        },
    )
    desired = derive(core_specs(sites={"acme-home": {}}), {}, now=CORE_NOW)
    plan = build_plan(desired, observed)
    return observed, Report(plan=plan, outcomes=()), desired


def test_a_blocked_deletion_of_an_undeclared_hostname_is_not_synced() -> None:
    observed, report, desired = _blocked_removal()
    assert "blast_radius" in {b.gate for b in report.plan.blocked}
    updates = conditions_for(
        desired=desired,
        observed=observed,
        report=report,
        coverage=Coverage(sites=frozenset({"acme-home"})),
        now=NOW,
    )
    synced = {u.resource: u for u in updates if u.condition == "Synced"}
    row = synced["Hostname/h0.acme-shop.com"]
    assert (row.status, row.reason, row.site) == (False, "BlastRadius", "acme-shop")
    assert synced["Site/acme-shop"].status is False  # removed, and its deletions are held


def test_gone_resources_are_applied_deletions_and_undeclared_rows_on_a_full_pass() -> None:
    _, report, desired = _blocked_removal()
    stored = {"Site/acme-home", "Site/old-site", "Hostname/h0.acme-shop.com", "Tenant/gone"}
    gone = gone_resources(
        desired=desired,
        report=report,
        removed_sites=("acme-shop",),
        stored=stored,
    )
    # Held (blocked) resources stay; what is neither declared nor held goes.
    assert gone == {"Site/old-site", "Tenant/gone"}
