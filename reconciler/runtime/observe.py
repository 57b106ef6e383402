"""observe: read the world through the adapters, within the API budget, into ``Observed``.

Called by ``commands/plan.py`` (and later ``apply`` and the daemon) with the specs of one commit
and the read-only clients the wiring built (:class:`ObserveClients`); it calls the adapters'
read methods only, :class:`~reconciler.runtime.records.Records` for D1, and
:func:`reconciler.build.site.build_site` for in-memory builds. Nothing is written anywhere.

Rules (DESIGN.md section 7):

1. Two phases. First, concurrently (one task per provider, each under its own timeout): the
   D1 ledger in a handful of queries, custom hostnames by listing (50 per page; in a scoped
   observation, one filtered list per hostname the scope touches), Stripe for the managed
   customers only, the WhatsApp instance's connection state once. Then Pages, for the sites
   that need it only: the ledger disagrees with the desired version, the site has no live
   row, or a desired hostname must be created or re-pointed (the origin is the project's
   subdomain): a GET per project, or one listing of the account's projects (a hundred a
   request) when that is cheaper. ``list_deployments`` is read only where a version is to
   change to one D1 has a row at or above (a deployment of it may exist) or production serves
   a deployment the ledger does not record. Last, in-memory builds of the versions about
   to be published (no successful deployment of them exists) for the budget gate.
   DNS (``providers/dns.py``) is asked only about declared, owned hostnames that are stuck
   (failed after ``max_recreates``) or still pending past ``validation_timeout``, at most
   ``ObserveLimits.dns_checks`` per pass: their CNAME, and for txt validation the TXT record
   of the ownership verification. A failed lookup leaves the hostname unchecked; it never
   makes a reading incomplete.
2. A provider whose reading fails (a ``ProviderError``, a timeout) is recorded in
   ``Observed.incomplete`` as a ``Gap`` (``FAILED`` or ``TIMED_OUT``, with the words) and the
   other providers carry on; the planner then makes no create and no delete that depends on
   it. A provider that is not configured is incomplete too (``UNCONFIGURED``, with the setting
   to set as the words); a WhatsApp instance found closed is ``DISCONNECTED``.
3. A D1 database without the migrations' tables is an error (``MigrationError``), not an
   incomplete reading: nothing sensible can be planned until ``reconciler migrate`` runs.
4. The joins between readings (hostnames with D1, what Pages and builds are needed, the
   ``Observed`` value) cost CPU in proportion to the sites covered: over a large scope they
   run off the event loop (``runtime/offloop.py``), each on readings nothing else touches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from reconciler.core.observe_scope import hostnames_to_check
from reconciler.core.observed import (
    BuildPreview,
    DomainRecord,
    Gap,
    GapReason,
    Observed,
    ObservedHostname,
    ObservedProject,
    Source,
)
from reconciler.core.routing import ObservedPlatform
from reconciler.core.worker_facts import ObservedWorker, WorkerRollout
from reconciler.runtime.observe_builds import about_to_publish, build_previews
from reconciler.runtime.observe_clients import (
    BillingReader,
    CloudflareReader,
    GatewayReader,
    ObserveClients,
    ObserveLimits,
    Readings,
    gather_all,
    guard,
)
from reconciler.runtime.observe_hostnames import (
    canonical,
    check_dns,
    observed_hostnames,
    unlisted,
)
from reconciler.runtime.observe_pages import pages_needed, read_pages
from reconciler.runtime.observe_routes import (
    KvReader,
    PlatformReader,
    RoutingTarget,
    read_platform,
    read_routes,
)
from reconciler.runtime.observe_workers import WorkersReader, read_rollouts, read_workers
from reconciler.runtime.offloop import off_loop
from reconciler.runtime.records import Records, RecordsSnapshot
from reconciler.spec.load import Specs

__all__ = ["ObserveClients", "ObserveLimits", "observe"]


async def observe(
    specs: Specs,
    *,
    clients: ObserveClients,
    now: float,
    scope: Collection[str] | None = None,
    hostnames: Collection[str] = (),
    workers: Collection[str] = (),
    limits: ObserveLimits | None = None,
    progress: Callable[[str], None] | None = None,
) -> Observed:
    """Read the world the specs describe (or the part ``scope`` names) into ``Observed``.

    Args:
        specs: the desired specs (their sites, hostnames, tenants and customers say what to
            read).
        clients: the read-only clients from the wiring.
        now: the injected clock's time, recorded as ``Observed.at``.
        scope: site names to observe (PR mode); None observes the whole fleet. Names the
            specs no longer hold (a removed site) stay in ``Observed.scope`` so the planner
            decides about their hostnames.
        hostnames: in a scoped observation, hostnames to look up besides those the scoped
            sites declare (domains a change removed, for deletion decisions).
        workers: in a scoped observation, the Worker scripts to read (those a PR changes);
            a whole-fleet observation reads every declared one.
        limits: timeouts and concurrency.
        progress: called with a short line as each provider finishes.

    Returns:
        The observation; failed providers are named in ``incomplete`` with the reason.

    Raises:
        MigrationError: the D1 database has not been migrated.
    """
    asked = None if scope is None else len(scope)
    covered = await off_loop(asked, lambda: _scope(specs, scope, hostnames, workers))  # rule 4
    run = _Observation(
        specs=specs,
        clients=clients,
        limits=limits or ObserveLimits(),
        say=progress or (lambda _line: None),
        scope=covered,
        readings=Readings(incomplete=dict(clients.gaps)),
    )
    await run.first_phase()
    ledger = run.readings.ledger
    size = run.scope.size
    # A whole zone's hostnames take seconds to join at 100,000 sites: off the event loop.
    found = await off_loop(size, run.hostnames)
    if clients.dns is not None and ledger is not None:
        await run.check_late_dns(found, now)
    projects = await run.pages(ledger, found) if ledger is not None else {}
    builds = await run.builds(ledger, projects) if ledger is not None else {}
    workers_found, rollouts = await run.workers()
    if run.readings.fatal is not None:
        raise run.readings.fatal
    return await off_loop(
        size, lambda: run.result(now, scope, found, projects, builds, workers_found, rollouts)
    )


@dataclass(frozen=True, slots=True)
class _Scope:
    """What one observation covers; a scoped one looks up its own names only (PR mode)."""

    scoped: bool
    sites: list[str]
    tenants: list[str]
    customers: list[str]
    lookups: list[str]  # a scoped observation's hostnames (empty for the whole fleet)
    scripts: list[str]  # the Worker scripts to read

    def only(self, names: list[str]) -> list[str] | None:
        """``names`` as a filter of a scoped reading; None (read everything) otherwise."""
        return names if self.scoped else None

    @property
    def size(self) -> int | None:
        """The sites a scoped observation covers; None: the whole fleet (``offloop``)."""
        return len(self.sites) if self.scoped else None


def _scope(
    specs: Specs,
    scope: Collection[str] | None,
    hostnames: Collection[str],
    workers: Collection[str],
) -> _Scope:
    """The sites, tenants, customers, hostnames and Workers one observation reads."""
    if scope is None:
        sites = sorted(specs.sites)
        tenants = sorted(specs.tenants)
        scripts = sorted({worker.spec.script for worker in specs.workers.values()})
    else:
        sites = sorted(s for s in set(scope) if s in specs.sites)
        tenants = sorted({specs.sites[s].spec.tenant for s in sites})
        scripts = sorted(set(workers))
    customers = sorted(
        {specs.tenants[t].spec.stripe.customer for t in tenants if t in specs.tenants}
    )
    lookups: list[str] = []
    if scope is not None:
        wanted = {d.canonical for s in sites for d in specs.sites[s].spec.domains}
        wanted |= {canonical(h) for h in hostnames}
        lookups = sorted(wanted)
    return _Scope(scope is not None, sites, tenants, customers, lookups, scripts)


@dataclass(slots=True)
class _Observation:
    """One observation's steps, in order (module rule 1), sharing its clients and readings."""

    specs: Specs
    clients: ObserveClients
    limits: ObserveLimits
    say: Callable[[str], None]
    scope: _Scope
    readings: Readings
    unlisted: dict[str, DomainRecord] = field(default_factory=dict)

    async def first_phase(self) -> None:
        """D1, hostnames, routing, Stripe and WhatsApp concurrently, each under its timeout."""
        clients, limits, scope, readings = self.clients, self.limits, self.scope, self.readings
        async with asyncio.TaskGroup() as group:
            group.create_task(guard(readings, Source.D1, limits.d1, self._read_d1()))
            if clients.cloudflare is not None:
                declared = (
                    sum(len(self.specs.sites[s].spec.domains) for s in scope.sites)
                    if scope.scoped
                    else self.specs.domain_count
                )
                pages = len(scope.lookups) if scope.scoped else -(-declared // 50)  # 50 a page
                seconds = limits.scaled(limits.hostnames, pages)
                reading = self._read_hostnames(clients.cloudflare)
                group.create_task(guard(readings, Source.HOSTNAMES, seconds, reading))
            if clients.kv is not None and clients.routing is not None:
                routing = self._read_routing(clients.kv, clients.routing)
                group.create_task(guard(readings, Source.ROUTES, limits.hostnames, routing))
            else:
                readings.incomplete.setdefault(
                    Source.ROUTES, Gap(GapReason.UNCONFIGURED, "not configured")
                )
            if clients.stripe is not None and scope.customers:
                stripe = self._read_stripe(clients.stripe)
                group.create_task(guard(readings, Source.STRIPE, limits.stripe, stripe))
            if clients.evolution is not None and scope.tenants:
                gateway = self._read_gateway(clients.evolution)
                group.create_task(guard(readings, Source.WHATSAPP, limits.whatsapp, gateway))
        if readings.fatal is not None:
            raise readings.fatal

    async def _read_d1(self) -> None:
        scope = self.scope
        self.readings.ledger = await Records(self.clients.database).snapshot(
            sites=scope.only(scope.sites),
            tenants=scope.only(scope.tenants),
            customers=scope.only(scope.customers),
            hostnames=scope.only(scope.lookups),
        )
        self.say(f"d1: ledger of {len(self.readings.ledger.sites)} sites read")

    async def _read_hostnames(self, cf: CloudflareReader) -> None:
        if not self.scope.scoped:
            listed = await cf.list_custom_hostnames()
        else:
            found = await gather_all(
                cf.list_custom_hostnames(hostname=name) for name in self.scope.lookups
            )
            listed = [h for group in found for h in group]
        self.readings.hostnames = listed
        self.say(f"cloudflare: {len(listed)} custom hostnames listed")

    async def _read_routing(self, kv: KvReader, target: RoutingTarget) -> None:
        readings = self.readings
        routing = await read_routes(kv, target, self.scope.only(self.scope.lookups))
        readings.routing = routing
        self.say(f"cloudflare: {len(routing.routes)} routing entries listed")
        if target.declared and self.clients.workers is not None:
            platform = self.clients.workers
            seconds = self.limits.hostnames
            await guard(readings, Source.PLATFORM, seconds, self._read_platform(platform, target))
        else:  # the namespace is all the plan manages (plan_platform)
            readings.platform = ObservedPlatform.namespace_only(routing.namespace_id)

    async def _read_platform(self, workers: PlatformReader, target: RoutingTarget) -> None:
        routing = self.readings.routing
        namespace = routing.namespace_id if routing is not None else None
        self.readings.platform = await read_platform(workers, target, namespace)

    async def _read_stripe(self, stripe: BillingReader) -> None:
        customers = self.scope.customers
        self.readings.billing = await stripe.customer_billing(customers)
        self.say(
            f"stripe: billing of {len(self.readings.billing)} of {len(customers)} customers read"
        )

    async def _read_gateway(self, gateway: GatewayReader) -> None:
        state = str(getattr(await gateway.connection_state(), "value", "close"))
        if state != "open":
            self.readings.incomplete[Source.WHATSAPP] = Gap(
                GapReason.DISCONNECTED, f"instance {gateway.instance} is {state}"
            )
        self.say(f"whatsapp: instance {gateway.instance} is {state}")

    def hostnames(self) -> dict[str, ObservedHostname]:
        """The listed hostnames joined with D1; rows a complete listing missed go to unlisted."""
        readings, lookups = self.readings, self.scope.only(self.scope.lookups)
        ledger = readings.ledger
        rows = ledger.domains if ledger is not None else {}
        creating = ledger.creating if ledger is not None else {}
        found = observed_hostnames(readings.hostnames or [], rows, lookups, creating)
        if readings.hostnames is not None and Source.HOSTNAMES not in readings.incomplete:
            self.unlisted = unlisted(rows, found, lookups)
        return found

    async def check_late_dns(self, found: dict[str, ObservedHostname], now: float) -> None:
        """Look up the DNS of the stuck or late hostnames (``core/observe_scope``)."""
        resolver = self.clients.dns
        specs, sites, limit = self.specs, self.scope.sites, self.limits.dns_checks
        late = await off_loop(
            self.scope.size, lambda: hostnames_to_check(specs, sites, found, now, limit)
        )
        if resolver is not None and late:
            await check_dns(resolver, late, found, self.limits, self.say)

    async def pages(
        self, ledger: RecordsSnapshot, found: dict[str, ObservedHostname]
    ) -> dict[str, ObservedProject]:
        """The Pages projects (and deployments) the planner needs this pass."""
        projects: dict[str, ObservedProject] = {}
        cf = self.clients.cloudflare
        if cf is None:
            return projects
        complete = Source.HOSTNAMES not in self.readings.incomplete
        specs, sites, builder = self.specs, self.scope.sites, self.clients.builder
        needs = await off_loop(
            self.scope.size,
            lambda: pages_needed(
                specs,
                sites,
                ledger.sites,
                found,
                ledger.domains,
                hostnames_complete=complete,
                builder=builder,
            ),
        )
        if needs:
            seconds = self.limits.scaled(self.limits.pages, 2 * len(needs))  # project + listing
            reading = read_pages(
                cf, self.specs, needs, ledger.sites, projects, self.limits, self.say
            )
            await guard(self.readings, Source.PAGES, seconds, reading)
        return projects

    async def builds(
        self, ledger: RecordsSnapshot, projects: dict[str, ObservedProject]
    ) -> dict[tuple[str, int], BuildPreview]:
        """In-memory builds of the versions about to be published, for the budget gate."""
        builds: dict[tuple[str, int], BuildPreview] = {}
        if Source.PAGES in self.readings.incomplete:
            return builds
        specs, sites, builder = self.specs, self.scope.sites, self.clients.builder
        pending = await off_loop(
            self.scope.size,
            lambda: about_to_publish(specs, sites, ledger.sites, projects, builder),
        )
        if pending:
            seconds = self.limits.scaled(self.limits.d1, len(pending))  # a read and a build each
            building = build_previews(self.clients, self.specs, pending, builds, self.say)
            await guard(self.readings, Source.D1, seconds, building)
        return builds

    async def workers(self) -> tuple[dict[str, ObservedWorker], dict[str, WorkerRollout]]:
        """The Workers the scope names, and their rollouts."""
        scripts = self.scope.scripts
        workers: dict[str, ObservedWorker] = {}
        rollouts: dict[str, WorkerRollout] = {}
        if not scripts:
            return workers, rollouts
        if self.clients.worker_versions is None:
            self.readings.incomplete[Source.WORKERS] = Gap(
                GapReason.UNCONFIGURED, "not configured: no Cloudflare client"
            )
            return workers, rollouts

        async def read(reader: WorkersReader) -> None:
            workers.update(await read_workers(reader, scripts))
            rollouts.update(await read_rollouts(self.clients.database))
            self.say(f"cloudflare: {len(workers)} of {len(scripts)} Workers read")

        reading = read(self.clients.worker_versions)
        await guard(self.readings, Source.WORKERS, self.limits.pages, reading)
        return workers, rollouts

    def result(
        self,
        now: float,
        scope: Collection[str] | None,
        found: dict[str, ObservedHostname],
        projects: dict[str, ObservedProject],
        builds: dict[tuple[str, int], BuildPreview],
        workers: dict[str, ObservedWorker],
        rollouts: dict[str, WorkerRollout],
    ) -> Observed:
        """Everything read, as the ``Observed`` the planner takes."""
        readings, ledger, clients = self.readings, self.readings.ledger, self.clients
        return Observed(
            at=now,
            workers=workers,
            worker_rollouts=rollouts,
            worker_scripts=frozenset(self.scope.scripts),
            projects=dict(sorted(projects.items())),
            ledger=dict(ledger.sites) if ledger is not None else {},
            hostnames=dict(sorted(found.items())),
            known_domains=frozenset(ledger.domains if ledger is not None else {}),
            unlisted_domains=self.unlisted,
            tenants=dict(ledger.tenants) if ledger is not None else {},
            dunning=dict(ledger.dunning) if ledger is not None else {},
            billing=dict(sorted(readings.billing.items())),
            billing_mirror=dict(ledger.mirror) if ledger is not None else {},
            builds=dict(sorted(builds.items())),
            unclaimed_projects=_unclaimed_projects(self.specs, ledger),
            incomplete=dict(sorted(readings.incomplete.items())),
            scope=frozenset(scope) if scope is not None else None,
            cname_target=clients.cname_target or None,
            routes=readings.routing.routes if readings.routing is not None else {},
            platform=readings.platform,
            builder=clients.builder,
        )


def _unclaimed_projects(specs: Specs, ledger: RecordsSnapshot | None) -> dict[str, str]:
    """D1's ``sites`` rows of sites the specs no longer declare: site -> Pages project."""
    if ledger is None:
        return {}
    recorded = sorted(ledger.projects.items())
    return {site: project for site, project in recorded if site not in specs.sites}
