"""A scoped derive (``derive(..., scope=...)``, core/desired.py rule 5) and the plans made from it.

The daemon derives only the sites of the key it reconciles; these tests check that a scoped
derive gives, for every site and tenant it holds, the very facts of the whole-fleet derive, and
that a plan made from it equals the plan made from the whole-fleet derive for the same scoped
observation (including hostnames a scoped site gave up, which another site may have taken).
"""

from __future__ import annotations

import pytest

from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling
from reconciler.core.observed import DomainRecord, Observed, TenantRecord, billing_digest
from reconciler.core.plan import ActionKind, build_plan
from reconciler.spec.load import Specs
from reconciler.spec.models import Access

from support.core import NOW, hostname, invoice, ledger, site_yaml, specs_from, tenant_yaml


def fleet() -> Specs:
    """Three tenants: acme (two sites), beta (one site, takes a hostname), gamma (no site)."""
    return specs_from(
        tenants={
            "acme": tenant_yaml("acme"),
            "beta": tenant_yaml("beta"),
            "gamma": tenant_yaml("gamma"),
            "delta": tenant_yaml("delta", access="soft_locked", access_reason="audit"),
        },
        sites={
            "acme-home": site_yaml("acme-home", domains=("www.acme-home.com",), deletion="delete"),
            "acme-shop": site_yaml("acme-shop", domains=("shop.acme.com",)),
            "beta-home": site_yaml(
                "beta-home", tenant="beta", domains=("www.beta.com", "moved.example.com")
            ),
            "delta-home": site_yaml("delta-home", tenant="delta", domains=()),
        },
    )


def billing() -> dict[str, CustomerBilling]:
    """acme 20 days past due (hard lock), beta 4 days (soft lock, a dunning step due)."""
    return {
        "cus_acme": CustomerBilling(
            customer="cus_acme", open_invoices=(invoice("cus_acme", days=20),)
        ),
        "cus_beta": CustomerBilling(
            customer="cus_beta", open_invoices=(invoice("cus_beta", days=4),)
        ),
        "cus_gamma": CustomerBilling(customer="cus_gamma"),
        "cus_delta": CustomerBilling(customer="cus_delta"),
    }


def test_a_scoped_derive_gives_the_whole_fleet_facts_for_every_item_it_holds() -> None:
    specs, facts = fleet(), billing()
    full = derive(specs, facts, now=NOW)
    for scope in ({"acme-home"}, {"beta-home"}, {"acme-home", "acme-shop", "delta-home"}):
        scoped = derive(specs, facts, now=NOW, scope=scope)
        assert set(scoped.sites) == scope
        assert set(scoped.tenants) == {specs.sites[s].spec.tenant for s in scope}
        for name, site in scoped.sites.items():
            assert site == full.sites[name]
        for name, tenant in scoped.tenants.items():
            assert tenant == full.tenants[name]


def test_a_scoped_derive_keeps_the_lock_and_the_dunning_the_whole_fleet_derive_decides() -> None:
    scoped = derive(fleet(), billing(), now=NOW, scope={"acme-home", "beta-home"})
    assert scoped.tenants["acme"].access.level is Access.HARD_LOCKED
    assert all(h.suspended for h in scoped.sites["acme-home"].hostnames)
    assert not scoped.sites["acme-home"].publish_allowed
    assert scoped.tenants["beta"].access.level is Access.SOFT_LOCKED
    assert [d.step_code for d in scoped.tenants["beta"].dunning] == ["D3"]


def test_tenants_named_besides_the_scope_are_derived_too() -> None:
    specs, facts = fleet(), billing()
    scoped = derive(specs, facts, now=NOW, scope=(), tenants=("gamma", "nobody"))
    assert scoped.sites == {}
    assert list(scoped.tenants) == ["gamma"]
    assert scoped.tenants["gamma"] == derive(specs, facts, now=NOW).tenants["gamma"]


def test_scope_names_the_specs_no_longer_hold_are_skipped_but_recorded() -> None:
    scoped = derive(fleet(), billing(), now=NOW, scope={"gone-site", "beta-home"})
    assert list(scoped.sites) == ["beta-home"]
    assert list(scoped.tenants) == ["beta"]
    assert scoped.scope == frozenset({"gone-site", "beta-home"})


def test_the_default_derive_is_the_whole_fleet_and_unscoped() -> None:
    specs = fleet()
    full = derive(specs, billing(), now=NOW)
    assert list(full.sites) == sorted(specs.sites)
    assert list(full.tenants) == sorted(specs.tenants)
    assert full.scope is None
    assert derive(specs, billing(), now=NOW, scope=None) == full


def scoped_world(scope: set[str], **overrides: object) -> Observed:
    """What a daemon pass scoped to ``scope`` observes: converged ledgers and hostnames."""
    specs, facts = fleet(), billing()
    hostnames = {}
    ledgers = {}
    for name in sorted(scope & set(specs.sites)):
        site = specs.sites[name].spec
        ledgers[name] = ledger(name, live=2, deployment_id=f"dep-{name}")
        for domain in site.domains:
            hostnames[domain.canonical] = hostname(
                domain.canonical, site=name, tenant=site.tenant, origin=f"{name}.pages.dev"
            )
    tenants = {specs.sites[s].spec.tenant for s in scope if s in specs.sites}
    customers = {specs.tenants[t].spec.stripe.customer for t in tenants}
    base: dict[str, object] = {
        "at": NOW,
        "ledger": ledgers,
        "hostnames": hostnames,
        "tenants": {t: TenantRecord(name=t, access="active") for t in tenants},
        "billing": {c: facts[c] for c in customers},
        "billing_mirror": {c: billing_digest(facts[c]) for c in customers},
        "scope": frozenset(scope),
    }
    base.update(overrides)
    return Observed(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scope", [{"acme-home"}, {"acme-home", "acme-shop"}, {"beta-home"}, {"delta-home"}]
)
def test_a_plan_from_a_scoped_derive_equals_the_plan_from_the_whole_fleet_derive(
    scope: set[str],
) -> None:
    specs, facts = fleet(), billing()
    observed = scoped_world(scope)
    whole = build_plan(derive(specs, facts, now=NOW), observed)
    scoped = build_plan(derive(specs, facts, now=NOW, scope=scope), observed)
    assert scoped == whole
    assert whole.actions  # the locks and dunning of the fixture are planned


def test_a_hostname_another_site_took_is_not_deleted_by_the_scoped_pass_of_its_old_site() -> None:
    specs, facts = fleet(), billing()
    scope = {"acme-home"}
    moved = hostname(
        "moved.example.com",
        site="acme-home",
        tenant="acme",
        origin="acme-home.pages.dev",
        deletion_policy="delete",
    )
    observed = scoped_world(
        scope, hostnames={**scoped_world(scope).hostnames, "moved.example.com": moved}
    )
    scoped = build_plan(derive(specs, facts, now=NOW, scope=scope), observed)
    assert scoped == build_plan(derive(specs, facts, now=NOW), observed)
    assert not [a for a in scoped.actions if a.kind is ActionKind.DELETE_HOSTNAME]


def test_a_hostname_removed_from_a_scoped_site_is_still_deleted_by_its_scoped_pass() -> None:
    specs, facts = fleet(), billing()
    scope = {"acme-home"}
    removed = hostname(
        "old.acme-home.com",
        site="acme-home",
        tenant="acme",
        origin="acme-home.pages.dev",
        deletion_policy="delete",
    )
    observed = scoped_world(
        scope, hostnames={**scoped_world(scope).hostnames, "old.acme-home.com": removed}
    )
    scoped = build_plan(derive(specs, facts, now=NOW, scope=scope), observed)
    assert scoped == build_plan(derive(specs, facts, now=NOW), observed)
    deletes = [a.target for a in scoped.actions if a.kind is ActionKind.DELETE_HOSTNAME]
    assert deletes == ["Hostname/old.acme-home.com"]


def unlisted(name: str) -> DomainRecord:
    """A ``domains`` row of acme-home that the zone no longer shows."""
    return DomainRecord(
        hostname=name,
        site="acme-home",
        tenant="acme",
        status="active",
        custom_hostname_id=f"id-{name}",
        origin="acme-home.pages.dev",
    )


@pytest.mark.parametrize(
    ("name", "marked"), [("moved.example.com", False), ("old.acme-home.com", True)]
)
def test_a_scoped_pass_marks_deleted_only_rows_no_site_of_the_specs_declares(
    name: str, marked: bool
) -> None:
    # moved.example.com is declared by beta-home, outside the scope: its row is not marked
    specs, facts = fleet(), billing()
    scope = {"acme-home"}
    observed = scoped_world(scope, unlisted_domains={name: unlisted(name)})
    scoped = build_plan(derive(specs, facts, now=NOW, scope=scope), observed)
    assert scoped == build_plan(derive(specs, facts, now=NOW), observed)
    records = [
        (a.target, a.after["status"])
        for a in scoped.actions
        if a.kind is ActionKind.RECORD_HOSTNAME
    ]
    assert records == ([(f"Hostname/{name}", "deleted")] if marked else [])


def test_a_scoped_derive_narrower_than_the_observation_is_refused() -> None:
    specs, facts = fleet(), billing()
    observed = scoped_world({"acme-home", "beta-home"})
    with pytest.raises(ValueError, match="scoped derive"):
        build_plan(derive(specs, facts, now=NOW, scope={"acme-home"}), observed)
    with pytest.raises(ValueError, match="scoped derive"):
        build_plan(derive(specs, facts, now=NOW, scope={"acme-home"}), Observed(at=NOW))
