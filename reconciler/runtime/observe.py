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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar

from reconciler.build.content import parse_snapshot
from reconciler.build.errors import BuildError
from reconciler.build.identity import builder_fingerprint
from reconciler.build.media import ReadOnlyCache, VariantCache
from reconciler.build.site import AssetStore, build_site
from reconciler.core.budget import MediaWeight
from reconciler.core.facts import CustomerBilling
from reconciler.core.identity import is_stale, wanted_inputs
from reconciler.core.observed import (
    BuildPreview,
    DomainRecord,
    Gap,
    GapReason,
    Observed,
    ObservedDeployment,
    ObservedHostname,
    ObservedProject,
    SiteLedger,
    Source,
    domain_status,
)
from reconciler.core.routing import ObservedPlatform
from reconciler.core.worker_facts import ObservedWorker, WorkerRollout
from reconciler.errors import MigrationError, NotFoundError, ProviderError
from reconciler.providers.cloudflare import PROJECTS_PER_PAGE
from reconciler.providers.cloudflare_models import CustomHostname, Deployment, PagesProject
from reconciler.providers.d1 import Database
from reconciler.providers.dns import Resolver
from reconciler.runtime.observe_routes import (
    KvReader,
    PlatformReader,
    RoutingReading,
    RoutingTarget,
    read_platform,
    read_routes,
)
from reconciler.runtime.observe_workers import WorkersReader, read_rollouts, read_workers
from reconciler.runtime.records import DomainRow, Records, RecordsSnapshot
from reconciler.spec.load import Specs
from reconciler.spec.models import SiteSpec, normalize_hostname

__all__ = [
    "BillingReader",
    "CloudflareReader",
    "GatewayReader",
    "ObserveClients",
    "ObserveLimits",
    "observe",
]

T = TypeVar("T")


class CloudflareReader(Protocol):
    """The read methods of ``providers.cloudflare.CloudflareClient`` the observer uses."""

    async def get_project(self, project: str) -> PagesProject:
        """``GET .../pages/projects/{p}`` (NotFoundError when absent)."""
        ...

    async def list_projects(self) -> list[PagesProject]:
        """Every Pages project of the account (a hundred a request)."""
        ...

    async def list_deployments(
        self, project: str, *, env: Literal["production", "preview"] | None = None
    ) -> list[Deployment]:
        """Every deployment of a project, optionally of one environment."""
        ...

    async def list_custom_hostnames(
        self,
        *,
        hostname: str | None = None,
        per_page: int = 50,
        hostname_status: str | None = None,
        ssl_status: str | None = None,
    ) -> list[CustomHostname]:
        """Every custom hostname of the zone, the one named ``hostname``, or those in a status."""
        ...


class BillingReader(Protocol):
    """``providers.stripe.StripeBilling.customer_billing``: absent keys are unknown customers."""

    async def customer_billing(self, customer_ids: Sequence[str]) -> dict[str, CustomerBilling]:
        """Subscriptions and open invoices of exactly the given customers."""
        ...


class GatewayReader(Protocol):
    """``providers.evolution.EvolutionClient``'s connection state and instance name."""

    instance: str

    async def connection_state(self) -> object:
        """The instance's state (a ``ConnectionState``; ``"open"`` can send)."""
        ...


@dataclass(frozen=True, slots=True)
class ObserveClients:
    """Read-only clients for one observation; None where a provider is not configured.

    ``gaps`` says why a missing client is missing (the setting to set, or the pass's choice).
    ``dns`` looks up stuck hostnames (None: no DNS check); ``cname_target`` is the SaaS zone's
    CNAME target the customers' records must reach (None: not configured).
    """

    database: Database
    cloudflare: CloudflareReader | None
    stripe: BillingReader | None
    evolution: GatewayReader | None
    assets: AssetStore | None = None
    gaps: Mapping[Source, Gap] = field(default_factory=dict)
    dns: Resolver | None = None
    cname_target: str | None = None
    kv: KvReader | None = None  # the routing table (None: routing not configured)
    workers: PlatformReader | None = None  # the dispatch Worker platform
    routing: RoutingTarget | None = None
    worker_versions: WorkersReader | None = None  # the platform's Workers: versions
    variants: VariantCache | None = None  # read through, never written (a plan is read-only)
    builder: str = field(default_factory=builder_fingerprint)  # for build identities


@dataclass(frozen=True, slots=True)
class ObserveLimits:
    """Timeouts (seconds) per provider reading and how many Pages projects to read at once."""

    d1: float = 120.0
    hostnames: float = 600.0  # a 15,000-hostname zone is 300 pages under a 4-per-second budget
    stripe: float = 300.0
    whatsapp: float = 30.0
    pages: float = 300.0
    pages_concurrency: int = 8
    dns: float = 30.0  # all DNS lookups of one pass
    dns_checks: int = 20  # hostnames looked up per pass, at most
    dns_concurrency: int = 4
    # Each timeout above is a floor: a reading gets this many more seconds per request it is
    # expected to send (the production budget sustains about 4 a second, shared with the
    # other readings of the pass), so a large fleet is read slowly, never cut off.
    request_seconds: float = 0.5

    def scaled(self, base: float, requests: int) -> float:
        """The timeout of a reading of ``requests`` expected requests with floor ``base``."""
        return base + requests * self.request_seconds


@dataclass(slots=True)
class _Readings:
    """What phase one gathered; ``incomplete`` fills as providers fail."""

    ledger: RecordsSnapshot | None = None
    hostnames: list[CustomHostname] | None = None
    routing: RoutingReading | None = None
    platform: ObservedPlatform | None = None
    billing: dict[str, CustomerBilling] = field(default_factory=dict)
    incomplete: dict[Source, Gap] = field(default_factory=dict)
    fatal: MigrationError | None = None


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
    limits = limits or ObserveLimits()
    say = progress or (lambda _line: None)
    # A scoped observation looks up its own names only: no set of every site per pass.
    sites = (
        sorted(specs.sites) if scope is None else sorted(s for s in set(scope) if s in specs.sites)
    )
    scoped = scope is not None
    tenant_names = sorted({specs.sites[s].spec.tenant for s in sites}) if scoped else None
    tenants = tenant_names if tenant_names is not None else sorted(specs.tenants)
    customers = sorted(
        {specs.tenants[t].spec.stripe.customer for t in tenants if t in specs.tenants}
    )
    lookups: list[str] = []
    if scoped:
        wanted = {d.canonical for s in sites for d in specs.sites[s].spec.domains}
        wanted |= {_canonical(h) for h in hostnames}
        lookups = sorted(wanted)

    readings = _Readings(incomplete=dict(clients.gaps))

    async def read_d1() -> None:
        reader = Records(clients.database)
        readings.ledger = await reader.snapshot(
            sites=sites if scoped else None,
            tenants=tenants if scoped else None,
            customers=customers if scoped else None,
            hostnames=lookups if scoped else None,
        )
        say(f"d1: ledger of {len(readings.ledger.sites)} sites read")

    async def read_hostnames(cf: CloudflareReader) -> None:
        if not scoped:
            readings.hostnames = await cf.list_custom_hostnames()
        else:
            found = await _all(cf.list_custom_hostnames(hostname=name) for name in lookups)
            readings.hostnames = [h for group in found for h in group]
        say(f"cloudflare: {len(readings.hostnames)} custom hostnames listed")

    async def read_routing(kv: KvReader, target: RoutingTarget) -> None:
        readings.routing = await read_routes(kv, target, lookups if scoped else None)
        say(f"cloudflare: {len(readings.routing.routes)} routing entries listed")
        if target.declared and clients.workers is not None:
            await _guard(
                readings,
                Source.PLATFORM,
                limits.hostnames,
                _platform(readings, clients.workers, target),
            )
        else:  # the namespace is all the plan manages (plan_platform)
            readings.platform = ObservedPlatform(
                namespace_id=readings.routing.namespace_id,
                script_hash=None,
                script_namespace=None,
                route_id=None,
                route_script=None,
                fallback_origin=None,
            )

    async def read_stripe(stripe: BillingReader) -> None:
        readings.billing = await stripe.customer_billing(customers)
        say(f"stripe: billing of {len(readings.billing)} of {len(customers)} customers read")

    async def read_gateway(gateway: GatewayReader) -> None:
        state = str(getattr(await gateway.connection_state(), "value", "close"))
        if state != "open":
            readings.incomplete[Source.WHATSAPP] = Gap(
                GapReason.DISCONNECTED, f"instance {gateway.instance} is {state}"
            )
        say(f"whatsapp: instance {gateway.instance} is {state}")

    async with asyncio.TaskGroup() as group:
        group.create_task(_guard(readings, Source.D1, limits.d1, read_d1()))
        if clients.cloudflare is not None:
            declared = (
                sum(len(specs.sites[s].spec.domains) for s in sites)
                if scoped
                else specs.domain_count
            )
            pages = len(lookups) if scoped else -(-declared // 50)  # 50 hostnames a page
            group.create_task(
                _guard(
                    readings,
                    Source.HOSTNAMES,
                    limits.scaled(limits.hostnames, pages),
                    read_hostnames(clients.cloudflare),
                )
            )
        if clients.kv is not None and clients.routing is not None:
            group.create_task(
                _guard(
                    readings,
                    Source.ROUTES,
                    limits.hostnames,
                    read_routing(clients.kv, clients.routing),
                )
            )
        else:
            readings.incomplete.setdefault(
                Source.ROUTES, Gap(GapReason.UNCONFIGURED, "not configured")
            )
        if clients.stripe is not None and customers:
            group.create_task(
                _guard(readings, Source.STRIPE, limits.stripe, read_stripe(clients.stripe))
            )
        if clients.evolution is not None and tenants:
            group.create_task(
                _guard(readings, Source.WHATSAPP, limits.whatsapp, read_gateway(clients.evolution))
            )
    if readings.fatal is not None:
        raise readings.fatal

    ledger = readings.ledger
    domain_rows = ledger.domains if ledger is not None else {}
    # A whole zone's hostnames take seconds to join at 100,000 sites: off the event loop.
    join = (
        readings.hostnames or [],
        domain_rows,
        lookups if scoped else None,
        ledger.creating if ledger is not None else {},
    )
    observed_hostnames = _hostnames(*join) if scoped else await asyncio.to_thread(_hostnames, *join)
    listed = readings.hostnames is not None and Source.HOSTNAMES not in readings.incomplete
    unlisted = (
        _unlisted(domain_rows, observed_hostnames, lookups if scoped else None) if listed else {}
    )

    if clients.dns is not None and ledger is not None:
        late = _dns_candidates(specs, sites, observed_hostnames, now, limits.dns_checks)
        if late:
            await _check_dns(clients.dns, late, observed_hostnames, limits, say)

    projects: dict[str, ObservedProject] = {}
    if clients.cloudflare is not None and ledger is not None:
        needs = _pages_needed(
            specs,
            sites,
            ledger.sites,
            observed_hostnames,
            domain_rows,
            hostnames_complete=Source.HOSTNAMES not in readings.incomplete,
            builder=clients.builder,
        )
        if needs:
            await _guard(
                readings,
                Source.PAGES,
                limits.scaled(limits.pages, 2 * len(needs)),  # at most a project and a listing
                _read_pages(clients.cloudflare, specs, needs, ledger.sites, projects, limits, say),
            )

    builds: dict[tuple[str, int], BuildPreview] = {}
    if ledger is not None and Source.PAGES not in readings.incomplete:
        pending = _about_to_publish(specs, sites, ledger.sites, projects, clients.builder)
        if pending:
            await _guard(
                readings,
                Source.D1,
                limits.scaled(limits.d1, len(pending)),  # a content read and a build each
                _build_previews(clients, specs, pending, builds, say),
            )

    scripts = (
        sorted(set(workers))
        if scoped
        else sorted({worker.spec.script for worker in specs.workers.values()})
    )
    found, rollouts = await _observe_workers(scripts, clients, readings, limits, say)
    if readings.fatal is not None:
        raise readings.fatal

    return Observed(
        at=now,
        workers=found,
        worker_rollouts=rollouts,
        worker_scripts=frozenset(scripts),
        projects=dict(sorted(projects.items())),
        ledger=dict(ledger.sites) if ledger is not None else {},
        hostnames=dict(sorted(observed_hostnames.items())),
        known_domains=frozenset(domain_rows),
        unlisted_domains=unlisted,
        tenants=dict(ledger.tenants) if ledger is not None else {},
        dunning=dict(ledger.dunning) if ledger is not None else {},
        billing=dict(sorted(readings.billing.items())),
        billing_mirror=dict(ledger.mirror) if ledger is not None else {},
        builds=dict(sorted(builds.items())),
        unclaimed_projects=_unclaimed_projects(specs, ledger),
        incomplete=dict(sorted(readings.incomplete.items())),
        scope=frozenset(scope) if scope is not None else None,
        cname_target=clients.cname_target or None,
        routes=readings.routing.routes if readings.routing is not None else {},
        platform=readings.platform,
        builder=clients.builder,
    )


async def _platform(readings: _Readings, workers: PlatformReader, target: RoutingTarget) -> None:
    namespace = readings.routing.namespace_id if readings.routing is not None else None
    readings.platform = await read_platform(workers, target, namespace)


def _unclaimed_projects(specs: Specs, ledger: RecordsSnapshot | None) -> dict[str, str]:
    """D1's ``sites`` rows of sites the specs no longer declare: site -> Pages project."""
    if ledger is None:
        return {}
    recorded = sorted(ledger.projects.items())
    return {site: project for site, project in recorded if site not in specs.sites}


async def _observe_workers(
    scripts: list[str],
    clients: ObserveClients,
    readings: _Readings,
    limits: ObserveLimits,
    say: Callable[[str], None],
) -> tuple[dict[str, ObservedWorker], dict[str, WorkerRollout]]:
    """The Workers ``scripts`` name, and their rollouts."""
    workers: dict[str, ObservedWorker] = {}
    rollouts: dict[str, WorkerRollout] = {}
    if not scripts:
        return workers, rollouts
    if clients.worker_versions is None:
        readings.incomplete[Source.WORKERS] = Gap(
            GapReason.UNCONFIGURED, "not configured: no Cloudflare client"
        )
        return workers, rollouts

    async def read(reader: WorkersReader) -> None:
        workers.update(await read_workers(reader, scripts))
        rollouts.update(await read_rollouts(clients.database))
        say(f"cloudflare: {len(workers)} of {len(scripts)} Workers read")

    await _guard(readings, Source.WORKERS, limits.pages, read(clients.worker_versions))
    return workers, rollouts


async def _guard(
    readings: _Readings, source: Source, seconds: float, work: Awaitable[None]
) -> None:
    """Run one provider's reading; a failure or timeout marks ``source`` incomplete."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except MigrationError as exc:
        readings.fatal = readings.fatal or exc
    except ProviderError as exc:
        readings.incomplete.setdefault(source, Gap(GapReason.FAILED, str(exc)))
    except TimeoutError:
        gap = Gap(GapReason.TIMED_OUT, f"no answer within {seconds:g} s")
        readings.incomplete.setdefault(source, gap)  # the first reason stands


async def _all(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await every item concurrently; after all have finished, raise the first failure."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


def _canonical(name: str) -> str:
    try:
        return normalize_hostname(name)
    except ValueError:
        return name.strip().rstrip(".").lower()


def _time(text: str) -> float:
    if not text:
        return 0.0
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _owner(
    item: CustomHostname, row: DomainRow | None, creating: Mapping[str, tuple[str, str]]
) -> tuple[str, str | None] | None:
    """(site, tenant) when our records say we created ``item`` (``core/observed.py`` rule 3).

    The ``domains`` row recording this very id; else, unless the row says we deleted that
    hostname, an unfinished create of it in the journal; else our marker (entitled accounts).
    """
    name = _canonical(item.hostname)
    if row is not None and row.custom_hostname_id == item.id:
        return row.site, row.tenant
    if name in creating and (row is None or row.status != "deleted"):
        return creating[name]
    marker = item.owner
    if marker is not None and marker.site:
        return marker.site, marker.tenant or None
    return None


def _hostnames(
    listed: Iterable[CustomHostname],
    domains: Mapping[str, DomainRow],
    lookups: Sequence[str] | None,
    creating: Mapping[str, tuple[str, str]],
) -> dict[str, ObservedHostname]:
    """Custom hostnames as observed facts, joined with their D1 ``domains`` rows."""
    wanted = set(lookups) if lookups is not None else None
    result: dict[str, ObservedHostname] = {}
    for item in listed:
        name = _canonical(item.hostname)
        if wanted is not None and name not in wanted:
            continue  # a filtered list may match more loosely than the exact name
        row = domains.get(name)
        owner = _owner(item, row, creating)
        created = _time(item.created_at)
        policy = item.custom_metadata.get("deletion-policy") or item.custom_metadata.get(
            "deletion_policy"
        )
        since = row.status_since if row is not None and row.status_since is not None else created
        dcv = item.dcv_txt
        result[name] = ObservedHostname(
            id=item.id,
            hostname=name,
            status=item.status,
            ssl_status=item.ssl_status or None,
            ssl_method=item.ssl_method or None,
            origin=item.custom_origin_server,
            owned=owner is not None,
            site=owner[0] if owner is not None else None,
            tenant=owner[1] if owner is not None else None,
            deletion_policy=policy if policy in ("retain", "delete") else None,
            created_at=created,
            status_since=since,
            recreate_count=row.recreate_count if row is not None else 0,
            verification_errors=tuple(item.verification_errors) + item.ssl_validation_errors,
            recorded_status=row.status if row is not None else None,
            recorded_ssl_status=row.ssl_status if row is not None else None,
            recorded_id=row.custom_hostname_id if row is not None else None,
            recorded_origin=row.origin if row is not None else None,
            recorded_site=row.site if row is not None else None,
            txt_name=_canonical(item.ownership_txt_name) if item.ownership_txt_name else None,
            txt_value=item.ownership_txt_value,
            dcv_txt_name=dcv.txt_name if dcv is not None else None,
            dcv_txt_value=dcv.txt_value if dcv is not None else None,
            recorded_dcv_txt_value=row.dcv_txt_value if row is not None else None,
        )
    return result


def _unlisted(
    domains: Mapping[str, DomainRow],
    hostnames: Mapping[str, ObservedHostname],
    lookups: Sequence[str] | None,
) -> dict[str, DomainRecord]:
    """``domains`` rows not marked deleted whose hostname a successful listing did not show.

    A scoped observation looked up ``lookups`` only: a row of another name was not covered.
    """
    covered = set(lookups) if lookups is not None else None
    return {
        name: DomainRecord(
            hostname=name,
            site=row.site,
            tenant=row.tenant,
            status=row.status,
            custom_hostname_id=row.custom_hostname_id,
            origin=row.origin,
            recreate_count=row.recreate_count,
        )
        for name, row in sorted(domains.items())
        if row.status is not None
        and row.status != "deleted"
        and name not in hostnames
        and (covered is None or name in covered)
    }


def _dns_candidates(
    specs: Specs,
    sites: Sequence[str],
    hostnames: Mapping[str, ObservedHostname],
    now: float,
    limit: int,
) -> list[str]:
    """Declared, owned hostnames stuck or pending past their validation timeout (rule 1)."""
    found: list[str] = []
    for name in sites:
        spec = specs.sites[name].spec
        tenant = specs.tenants.get(spec.tenant)
        policy = specs.policies.get(tenant.spec.policy) if tenant is not None else None
        if policy is None:
            continue
        timing = policy.spec.domains
        for domain in spec.domains:
            have = hostnames.get(domain.canonical)
            if have is None or not have.owned:
                continue
            status = domain_status(have.status, have.ssl_status)
            if status == "failed":
                late = have.recreate_count >= timing.max_recreates
            else:
                late = status != "active" and (
                    now - have.status_since >= timing.validation_timeout.total_seconds()
                )
            if late:
                found.append(domain.canonical)
    return sorted(set(found))[: max(limit, 0)]


async def _check_dns(
    resolver: Resolver,
    names: Sequence[str],
    hostnames: dict[str, ObservedHostname],
    limits: ObserveLimits,
    say: Callable[[str], None],
) -> None:
    """Look up each name's CNAME (and TXT for txt validation); record what was found."""
    gate = asyncio.Semaphore(max(limits.dns_concurrency, 1))
    failures: list[str] = []

    async def one(name: str) -> None:
        have = hostnames[name]
        async with gate:
            try:
                cname = await resolver.cname(name)
                txt: list[str] = []
                if have.ssl_method == "txt" and have.txt_name:
                    txt = await resolver.txt(have.txt_name)
            except ProviderError as exc:
                failures.append(f"{name}: {exc}")
                return
        hostnames[name] = replace(
            have, dns_checked=True, dns_cname=cname, dns_txt=tuple(sorted(txt))
        )

    try:
        async with asyncio.timeout(limits.dns):
            await asyncio.gather(*(one(name) for name in names))
    except TimeoutError:
        failures.append(f"no answer within {limits.dns:g} s")
    checked = sum(1 for name in names if hostnames[name].dns_checked)
    say(
        f"dns: {checked} of {len(names)} stuck or late hostnames looked up"
        + (f" ({'; '.join(failures[:3])})" if failures else "")
    )


@dataclass(frozen=True, slots=True)
class _PagesNeed:
    """Why a site's Pages project is read, and whether its deployments must be listed."""

    site: str
    project: str
    deployments: bool


def _wanted_versions(spec: SiteSpec) -> list[tuple[str, int]]:
    wanted = [("production", spec.production.version)]
    if spec.preview is not None:
        wanted.append(("preview", spec.preview.version))
    return wanted


def _differs(
    site: str,
    scripts: Sequence[str],
    ledger: SiteLedger | None,
    env: str,
    version: int,
    builder: str,
) -> bool:
    """The live publish is not this version, or its build identity is stale (core/identity)."""
    live = ledger.live.get(env) if ledger is not None else None
    if live is None or live.version != version:
        return True
    content = ledger.content_digests.get(version) if ledger is not None else None
    return is_stale(
        live.build_identity, wanted_inputs(site, version, content, tuple(scripts), builder)
    )


def _pages_needed(
    specs: Specs,
    sites: Sequence[str],
    ledgers: Mapping[str, SiteLedger],
    hostnames: Mapping[str, ObservedHostname],
    domains: Mapping[str, DomainRow],
    *,
    hostnames_complete: bool,
    builder: str = "",
) -> list[_PagesNeed]:
    """The sites whose Pages project must be read this pass (module rule 1)."""
    suspension = {p.spec.suspension_origin for p in specs.policies.values()}
    needs: list[_PagesNeed] = []
    for name in sites:
        spec = specs.sites[name].spec
        ledger = ledgers.get(name)
        differing = [
            (env, version)
            for env, version in _wanted_versions(spec)
            if _differs(name, spec.scripts, ledger, env, version, builder)
        ]
        versions_differ = bool(differing)
        origin_needed = False
        for domain in spec.domains:
            have = hostnames.get(domain.canonical)
            if have is None:
                origin_needed = origin_needed or hostnames_complete
                continue
            row = domains.get(domain.canonical)
            if (
                have.origin in suspension
                or have.site != name
                or (row is not None and row.origin is not None and row.origin != have.origin)
            ):
                origin_needed = True
        if versions_differ or origin_needed:
            listed = any(_may_be_deployed(ledger, env, version) for env, version in differing)
            needs.append(_PagesNeed(name, spec.pages_project, deployments=listed))
    return needs


def _may_be_deployed(ledger: SiteLedger | None, env: str, version: int) -> bool:
    """Whether a deployment of ``version`` may exist in ``env``, so deployments are listed.

    Only a version D1 has seen there (tried, live or superseded: a row at or above it) can
    have one: a publish writes its row before it uploads. A version newer than every row (a
    bump) has none, and its site needs the project alone. Without rows, nothing is known.
    """
    if ledger is None:
        return True
    rows = [row for row in (ledger.live.get(env), ledger.latest.get(env)) if row is not None]
    return not rows or any(row.version >= version for row in rows)


async def _read_pages(
    cf: CloudflareReader,
    specs: Specs,
    needs: Sequence[_PagesNeed],
    ledgers: Mapping[str, SiteLedger],
    projects: dict[str, ObservedProject],
    limits: ObserveLimits,
    say: Callable[[str], None],
) -> None:
    gate = asyncio.Semaphore(limits.pages_concurrency)
    # The account's project list costs a request per hundred projects (about one per hundred
    # sites); when more projects are needed than that, one listing replaces their GETs.
    listing: dict[str, PagesProject] | None = None
    if -(-len(specs.sites) // PROJECTS_PER_PAGE) < len(needs):
        listing = {project.name: project for project in await cf.list_projects()}
        say(f"cloudflare: {len(listing)} Pages projects listed")

    async def one(need: _PagesNeed) -> None:
        async with gate:
            if listing is not None:
                project = listing.get(need.project)
                if project is None:
                    return  # the planner reports the missing project
            else:
                try:
                    project = await cf.get_project(need.project)
                except NotFoundError:
                    return  # the planner reports the missing project
            serving = (
                project.canonical_deployment.id
                if project.canonical_deployment is not None
                else None
            )
            ledger = ledgers.get(need.site)
            recorded = ledger.live.get("production") if ledger is not None else None
            moved = serving is not None and (recorded is None or recorded.deployment_id != serving)
            deployments: tuple[ObservedDeployment, ...] | None = None
            if need.deployments or moved:
                listed = await cf.list_deployments(need.project, env="production")
                deployments = tuple(
                    sorted((_deployment(d) for d in listed), key=lambda d: (d.created_on, d.id))
                )
            projects[need.project] = ObservedProject(
                name=need.project,
                subdomain=project.subdomain or f"{need.project}.pages.dev",
                production_deployment_id=serving,
                deployments=deployments,
            )

    await _all(one(need) for need in needs)
    listed = sum(1 for p in projects.values() if p.deployments is not None)
    say(f"cloudflare: {len(projects)} Pages projects read ({listed} with deployments)")


_STATUS = {"live": "success", "failed": "failure", "canceled": "canceled", "skipped": "skipped"}


def _deployment(item: Deployment) -> ObservedDeployment:
    tag = item.tag
    stage = item.latest_stage
    return ObservedDeployment(
        id=item.id,
        environment=item.environment,
        status=_STATUS.get(item.state, "active"),
        stage=stage.name if stage is not None else "",
        created_on=_time(item.created_on),
        site=tag.site if tag is not None else None,
        version=tag.version if tag is not None else None,
        commit=(tag.commit or None) if tag is not None else None,
        build=(tag.build or None) if tag is not None else None,
    )


def _about_to_publish(
    specs: Specs,
    sites: Sequence[str],
    ledgers: Mapping[str, SiteLedger],
    projects: Mapping[str, ObservedProject],
    builder: str = "",
) -> list[tuple[str, int]]:
    """(site, version) pairs the planner would build: the ledger disagrees, no deployment."""
    pending: list[tuple[str, int]] = []
    for name in sites:
        spec = specs.sites[name].spec
        ledger = ledgers.get(name)
        for env, version in _wanted_versions(spec):
            if not _differs(name, spec.scripts, ledger, env, version, builder):
                continue
            if ledger is not None and ledger.versions and version not in ledger.versions:
                continue  # no snapshot: the planner blocks it as missing_version
            project = projects.get(spec.pages_project)
            live = ledger.live.get(env) if ledger is not None else None
            stale = live is not None and live.version == version  # live, but other inputs
            if (
                env == "production"
                and not stale
                and project is not None
                and any(
                    d.status == "success" and d.site == name and d.version == version
                    for d in project.deployments or ()
                )
            ):
                continue  # a rollback, not a build
            pending.append((name, version))
    return sorted(set(pending))


async def _build_previews(
    clients: ObserveClients,
    specs: Specs,
    pending: Sequence[tuple[str, int]],
    builds: dict[tuple[str, int], BuildPreview],
    say: Callable[[str], None],
) -> None:
    contents = await Records(clients.database).content(pending)
    for site, version in pending:
        raw = contents.get((site, version))
        if raw is None:
            continue  # no snapshot in D1: nothing to build (the planner decides)
        scripts = tuple(specs.sites[site].spec.scripts)
        variants = ReadOnlyCache(clients.variants) if clients.variants is not None else None
        preview = await asyncio.to_thread(
            _preview, site, version, raw, scripts, clients.assets, variants
        )
        if preview is not None:
            builds[(site, version)] = preview
    say(f"build: {len(builds)} versions built in memory for the budget check")


def _preview(
    site: str,
    version: int,
    raw: str,
    scripts: tuple[str, ...],
    assets: AssetStore | None,
    variants: VariantCache | None,
) -> BuildPreview | None:
    """Build one version in memory; None when its assets cannot be checked here.

    Variants come from the cache where they are; the others are encoded in memory and
    dropped (the publisher encodes and caches them), so a plan writes nothing anywhere.
    """
    try:
        snapshot = parse_snapshot(raw)
        if snapshot.assets and assets is None:
            return None  # no asset store configured: the publisher checks at publish time
        output = build_site(
            snapshot,
            site=site,
            version=version,
            assets=assets or {},
            scripts=scripts,
            variants=variants,
        )
    except BuildError as exc:
        return BuildPreview(
            site=site,
            version=version,
            content_hash=None,
            js_kb=0,
            css_kb=0,
            third_party_scripts=0,
            error=exc.message,
        )
    return BuildPreview(
        site=site,
        version=version,
        content_hash=output.content_hash,
        js_kb=output.js_kb,
        css_kb=output.css_kb,
        third_party_scripts=output.third_party_scripts,
        media=MediaWeight(
            image_kb=output.image_kb,
            largest_image=output.largest_image,
            page_weight_kb=output.page_weight_kb,
            heaviest_page=output.heaviest_page,
        ),
    )
