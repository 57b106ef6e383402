"""derive: specs + billing facts + ``now`` -> the desired facts the planner compares with the world.

First step of the pure pipeline (``load -> derive -> plan``); called by ``runtime`` (plan,
apply, the daemon) with the specs of one commit, the billing facts read from Stripe and the
injected clock's ``now``. It calls nothing but the pure policies in ``core/policy.py``.

Rules:

1. No I/O, no clock: ``now`` is an argument, so the same inputs give the same desired facts.
2. Hostnames are canonical (IDNA A-labels, lowercase, no final dot) from here on.
3. A tenant's access is the override when the spec sets one, else a function of its policy and
   the days past due of its oldest open invoice (``policy.desired_access``).
4. Dunning steps due are computed per open invoice (``policy.dunning_due``); the planner removes
   those already in the D1 log.
5. A scoped derive (``scope`` = site names) computes only those sites, their tenants and the
   ``tenants`` named besides, each exactly as the whole-fleet derive would: its cost follows
   the scope, not the fleet (a daemon pass for one tenant derives that tenant's sites only).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from reconciler.core.budget import BudgetLimits
from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.policy import (
    AccessDecision,
    DunningDue,
    desired_access,
    dunning_due,
)
from reconciler.core.spec_view import BillingPolicySpec, Located, SiteFields, SpecsView
from reconciler.core.worker_facts import DesiredWorker, desired_worker
from reconciler.spec.vocabulary import Access, DeletionPolicy, Kind, SslMethod


class DesiredHostname(NamedTuple):
    """One custom hostname as it should exist in the zone.

    A named tuple (immutable, typed), as :class:`DesiredSite` and ``RouteEntry`` are: a derive
    makes one per declared hostname (15,000 in a large fleet), and a frozen dataclass takes
    about three times as long to make.
    """

    hostname: str  # canonical
    site: str
    tenant: str
    ssl_method: str  # http | txt
    suspended: bool  # the tenant is hard-locked: its routing entry serves the suspension page
    suspension_origin: str
    validation_timeout: float  # seconds
    ssl_timeout: float  # seconds
    max_recreates: int
    position: int  # in the site's spec.domains, for source locations


class DesiredSite(NamedTuple):
    """One site as it should be: live versions, hostnames and the budget it must respect.

    A named tuple for the reason :class:`DesiredHostname` is one (one per site of the fleet).
    """

    name: str
    tenant: str
    pages_project: str
    production: int
    preview: int | None
    hostnames: tuple[DesiredHostname, ...]
    scripts: tuple[str, ...]
    deletion_policy: str  # retain | delete
    budget: BudgetLimits
    publish_allowed: bool  # False while the tenant is hard-locked


class DesiredTenant(NamedTuple):
    """One tenant's desired access and the dunning messages due now.

    A named tuple for the reason :class:`DesiredHostname` is one (one per tenant of the fleet).
    """

    name: str
    display_name: str
    policy: str
    customer: str
    whatsapp: str
    access: AccessDecision
    oldest_open_invoice: Invoice | None
    dunning: tuple[DunningDue, ...]


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything the world should look like at ``now`` for the specs at ``revision``.

    ``scope`` is None when every site and tenant of the specs was derived; otherwise the site
    names a scoped derive was asked for (``sites`` holds those the specs still declare).
    """

    sites: Mapping[str, DesiredSite]
    tenants: Mapping[str, DesiredTenant]
    revision: str | None
    now: float
    specs: SpecsView
    scope: frozenset[str] | None = None
    workers: Mapping[str, DesiredWorker] = field(default_factory=dict)  # by metadata.name

    def location(self, kind: Kind, name: str, field: str = "") -> Located | None:
        """Where in the specs a document (or one of its fields) was written, if known."""
        try:
            return self.specs.location(kind, name, field)
        except KeyError:
            return None


def derive(
    specs: SpecsView,
    billing: Mapping[str, CustomerBilling],
    *,
    now: float,
    scope: Collection[str] | None = None,
    tenants: Collection[str] = (),
) -> Desired:
    """Compute the desired facts of the whole fleet, or of the part ``scope`` names.

    Args:
        specs: the validated specs of one commit.
        billing: Stripe facts by customer id; a tenant whose customer is absent is treated as
            having no open invoice (the caller marks Stripe incomplete when reading failed,
            and the planner then makes no billing decision for it).
        now: the injected clock, epoch seconds.
        scope: site names to derive (None: the whole fleet). Their tenants are derived too;
            names the specs no longer declare are skipped (module rule 5).
        tenants: in a scoped derive, tenant names to derive besides the scoped sites' own
            (a tenant without sites); names the specs do not declare are skipped.

    Returns:
        The desired facts; for every site and tenant it holds, the same facts the
        whole-fleet derive gives.
    """
    if scope is None:
        site_names = sorted(specs.sites)
        tenant_names = sorted(specs.tenants)
    else:
        site_names = sorted(name for name in set(scope) if name in specs.sites)
        wanted = {specs.sites[name].spec.tenant for name in site_names}
        wanted.update(name for name in tenants if name in specs.tenants)
        tenant_names = sorted(wanted)

    derived: dict[str, DesiredTenant] = {}
    for name in tenant_names:
        derived[name] = _tenant(specs, name, billing, now)

    sites: dict[str, DesiredSite] = {}
    rules: dict[str, _PolicyRules] = {}
    for name in site_names:
        spec = specs.sites[name].spec
        sites[name] = _site(name, spec, specs, derived[spec.tenant], rules)
    return Desired(
        sites=sites,
        tenants=derived,
        revision=specs.revision,
        now=now,
        specs=specs,
        scope=frozenset(scope) if scope is not None else None,
        # The platform's Workers belong to no tenant: a whole-fleet derive carries them.
        workers={
            name: desired_worker(name, worker)
            for name, worker in specs.workers.items()
            if scope is None
        },
    )


def _tenant(
    specs: SpecsView, name: str, billing: Mapping[str, CustomerBilling], now: float
) -> DesiredTenant:
    """One tenant's desired access and dunning (module rules 3 and 4)."""
    tenant = specs.tenants[name]
    policy: BillingPolicySpec = specs.policies[tenant.spec.policy].spec
    facts = billing.get(tenant.spec.stripe.customer)
    invoices = facts.open_invoices if facts is not None else ()
    decision = desired_access(
        override=tenant.spec.access,
        override_reason=tenant.spec.access_reason,
        policy=policy,
        open_invoices=invoices,
        now=now,
    )
    due: tuple[DunningDue, ...] = ()
    if tenant.spec.access is Access.AUTO and invoices:  # no invoice, no step due
        due = dunning_due(
            policy=policy,
            open_invoices=invoices,
            tenant_name=tenant.spec.display_name,
            phone=tenant.spec.whatsapp,
            now=now,
        )
    return DesiredTenant(
        name=name,
        display_name=tenant.spec.display_name,
        policy=tenant.spec.policy,
        customer=tenant.spec.stripe.customer,
        whatsapp=tenant.spec.whatsapp,
        access=decision,
        oldest_open_invoice=decision.invoice,
        dunning=due,
    )


@dataclass(frozen=True, slots=True)
class _PolicyRules:
    """What one billing policy says of every site of its tenants and of their hostnames."""

    budget: BudgetLimits
    suspension_origin: str
    validation_timeout: float  # seconds
    ssl_timeout: float  # seconds
    max_recreates: int


def _policy_rules(policy: BillingPolicySpec) -> _PolicyRules:
    return _PolicyRules(
        budget=policy.performance_budget,
        suspension_origin=policy.suspension_origin,
        validation_timeout=policy.domains.validation_timeout.total_seconds(),
        ssl_timeout=policy.domains.ssl_timeout.total_seconds(),
        max_recreates=policy.domains.max_recreates,
    )


# An enum's ``value`` goes through its descriptor; a dict lookup is cheaper per hostname.
_SSL_METHODS: Mapping[SslMethod, str] = {method: method.value for method in SslMethod}
_DELETION_POLICIES: Mapping[DeletionPolicy, str] = {p: p.value for p in DeletionPolicy}


def _site(
    name: str,
    spec: SiteFields,
    specs: SpecsView,
    owner: DesiredTenant,
    rules: dict[str, _PolicyRules],
) -> DesiredSite:
    """Site ``name``'s (``spec``) desired versions and hostnames, given its tenant's facts.

    ``rules`` caches each policy's :class:`_PolicyRules` for the whole derive: they are read
    once per policy, not once per site and hostname.
    """
    rule = rules.get(owner.policy)
    if rule is None:
        rule = rules[owner.policy] = _policy_rules(specs.policies[owner.policy].spec)
    hard_locked = owner.access.level is Access.HARD_LOCKED
    tenant = spec.tenant
    hostnames = _hostnames(name, spec, rule, suspended=hard_locked)
    preview = spec.preview
    return DesiredSite(
        name=name,
        tenant=tenant,
        pages_project=spec.pages_project,
        production=spec.production.version,
        preview=preview.version if preview is not None else None,
        hostnames=hostnames,
        scripts=tuple(spec.scripts),
        deletion_policy=_DELETION_POLICIES[spec.deletion_policy],
        budget=rule.budget,
        publish_allowed=not hard_locked,
    )


def desired_hostnames(
    specs: SpecsView, name: str, *, suspended: bool
) -> tuple[DesiredHostname, ...] | None:
    """The hostnames site ``name`` declares, timed by its tenant's policy; None without one.

    ``suspended`` is the tenant's hard lock (derive knows it; a caller that only wants the
    timing, such as ``core/observe_scope.py``, passes False: the timing does not depend on it).
    """
    spec = specs.sites[name].spec
    tenant = specs.tenants.get(spec.tenant)
    policy = specs.policies.get(tenant.spec.policy) if tenant is not None else None
    if policy is None:
        return None
    return _hostnames(name, spec, _policy_rules(policy.spec), suspended=suspended)


def _hostnames(
    name: str, spec: SiteFields, rule: _PolicyRules, *, suspended: bool
) -> tuple[DesiredHostname, ...]:
    """Site ``name``'s declared domains as desired hostnames, timed by ``rule``."""
    tenant, origin = spec.tenant, rule.suspension_origin
    validation, ssl, recreates = rule.validation_timeout, rule.ssl_timeout, rule.max_recreates
    return tuple(
        [
            DesiredHostname(
                hostname=domain.canonical,
                site=name,
                tenant=tenant,
                ssl_method=_SSL_METHODS[domain.ssl.method],
                suspended=suspended,
                suspension_origin=origin,
                validation_timeout=validation,
                ssl_timeout=ssl,
                max_recreates=recreates,
                position=position,
            )
            for position, domain in enumerate(spec.domains)
        ]
    )
