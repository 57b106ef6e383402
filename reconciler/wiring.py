"""The composition root: settings -> clients -> runtime. The one reader of the environment.

Commands call :func:`load_settings` (the only place ``os.environ`` is read), :func:`wall_clock`
(the only real clock the runtime sees; tests and the demo pass their own ``now``), and build
what they need here:

- :class:`ReadOnlyWorld`: observers only, for ``reconciler plan`` and every dry run. It
  constructs no writer at all, so a plan cannot change the world whatever the code below it
  does; it needs read-only tokens only.
- :class:`WriterWorld`: the write-capable clients of ``reconciler apply`` (and the daemon):
  Cloudflare and Evolution in the ``CHANGE`` lane, Stripe (still read-only: the reconciler
  never charges), the D1 database, the actions'
  :class:`~reconciler.runtime.actions.world.World`, its handlers and the checkpoints.
- :class:`DaemonWorld`: both of the above for ``reconciler run``, every client guarded by the
  provider's circuit breaker and the writers fenced by the leader lease, plus the loop's parts
  (Git follower, lease, status store, journal, metrics, HTTP endpoints).
- :class:`Buckets`: one shared :class:`~reconciler.providers.ratelimit.TokenBucket` per
  provider and credential, handed to every client of that credential (DESIGN.md section 7).

Two test-and-sandbox knobs are read here and nowhere else:

- ``RECONCILER_CRASH_AT`` (:data:`~reconciler.runtime.checkpoints.CRASH_ENV`): named crash
  points for the crash tests (:func:`load_checkpoints`); unset in production.
- ``RECONCILER_SANDBOX_CONTROL`` (:data:`SANDBOX_CONTROL_ENV`): the sandbox's control root
  (``http://127.0.0.1:<port>/__sandbox``). When set, the handlers' waits between deployment
  polls advance the sandbox's virtual clock instead of sleeping (:func:`load_sleep`), so a
  publish in the demo, the scenario tests and the benchmarks takes milliseconds, not the
  fifteen simulated seconds of a deployment; ``DNS_RESOLVER=sandbox`` reads the sandbox DNS
  there. ``Sandbox.settings_env()`` sets both. Unset in production.

The observers' DNS resolver (:func:`load_resolver`) follows ``DNS_RESOLVER``: the host's
resolvers (``system``, the default), the sandbox DNS, or none (``off``).

It calls the adapters' constructors (``providers/*``) and nothing else; no decision is made
here beyond "is this provider configured".
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler.build.site import AssetStore
from reconciler.core.lane import Lane
from reconciler.core.observed import Gap, GapReason, Source
from reconciler.core.plan import ActionKind, PlanSettings
from reconciler.core.provider import Provider
from reconciler.core.render import Rate
from reconciler.core.routing import DesiredPlatform
from reconciler.errors import MigrationError, PermanentError, TransientError
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.cloudflare import CloudflareClient, ProjectMemo
from reconciler.providers.cloudflare_kv import KvClient
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.providers.d1 import D1HttpDatabase, Database, SqliteDatabase
from reconciler.providers.dns import Resolver, SandboxResolver, SystemResolver
from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.r2 import R2Store
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.stripe import StripeBilling
from reconciler.redact import register
from reconciler.runtime.actions import ActionSettings, RoutingConfig, World, handlers_for
from reconciler.runtime.checkpoints import CRASH_ENV, checkpoints_from_spec
from reconciler.runtime.handler import Checkpoints, Handler
from reconciler.runtime.observe import ObserveClients
from reconciler.runtime.observe_routes import RoutingTarget
from reconciler.settings import SANDBOX_CONTROL_ENV, RateBudget, Secret, Settings

if TYPE_CHECKING:  # the daemon's parts are imported when a daemon is built (see DaemonWorld)
    from reconciler.runtime.breaker import Breakers
    from reconciler.runtime.daemon_parts import DaemonParts
    from reconciler.runtime.gitfollow import GitFollower
    from reconciler.runtime.lease import LeaderLease
    from reconciler.runtime.metrics import Metrics

__all__ = [
    "EVOLUTION_BUDGET",
    "SANDBOX_CONTROL_ENV",
    "Buckets",
    "DaemonWorld",
    "ReadOnlyWorld",
    "WriterWorld",
    "load_checkpoints",
    "load_resolver",
    "load_settings",
    "load_sleep",
    "wall_clock",
]

Sleep = Callable[[float], Awaitable[None]]

EVOLUTION_BUDGET = RateBudget(requests=30, period=60.0)
"""Client-side pacing of the WhatsApp gateway (docs/evolution.md: sends plus a few reads)."""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env``, or from the process environment when None.

    Every credential in them is registered for redaction (``reconciler/redact.py``), so no
    output can show it.

    Raises:
        ValueError: a malformed setting (the message names the variable).
    """
    settings = Settings.from_env(os.environ if env is None else env)
    register(secret.reveal() for secret in settings.secrets())
    return settings


def wall_clock() -> float:
    """The real time, epoch seconds: the default ``now`` of commands."""
    return time.time()


def load_checkpoints(env: Mapping[str, str] | None = None) -> Checkpoints:
    """The crash points of ``RECONCILER_CRASH_AT`` (tests only); no-ops when unset.

    Raises:
        ValueError: the variable is set but malformed.
    """
    source = os.environ if env is None else env
    return checkpoints_from_spec(source.get(CRASH_ENV))


def load_sleep(env: Mapping[str, str] | None = None) -> Sleep:
    """How handlers wait: :func:`asyncio.sleep`, or the sandbox's virtual clock when
    ``RECONCILER_SANDBOX_CONTROL`` names a sandbox control root."""
    source = os.environ if env is None else env
    control = source.get(SANDBOX_CONTROL_ENV, "").rstrip("/")
    if not control:
        return asyncio.sleep
    return _VirtualSleep(control)


def load_resolver(settings: Settings) -> Resolver | None:
    """The DNS resolver the observers ask about stuck hostnames (``DNS_RESOLVER``).

    Returns:
        A :class:`SystemResolver` (``system``), a :class:`SandboxResolver` on the sandbox's
        control root (``sandbox``), or None (``off``: no DNS check).
    """
    dns = settings.dns
    if dns.resolver == "off":
        return None
    if dns.resolver == "sandbox":
        return SandboxResolver(dns.sandbox_control)
    return SystemResolver(timeout=dns.timeout)


class _VirtualSleep:
    """Waits that move the sandbox's virtual clock forward instead of passing real time."""

    def __init__(self, control: str) -> None:
        self.control = control

    async def __call__(self, seconds: float) -> None:
        if seconds > 0:
            try:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    answer = await http.post(f"{self.control}/clock", json={"seconds": seconds})
            except httpx.TransportError as exc:
                raise TransientError("sandbox", f"clock control unreachable: {exc}") from exc
            if answer.status_code != 200:
                raise TransientError("sandbox", f"clock control answered HTTP {answer.status_code}")
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualSleep({self.control!r})"


DISPATCH_WORKER = Path(__file__).resolve().parent.parent / "workers" / "dispatch" / "index.js"
"""The dispatch Worker module shipped in the repository (``ROUTING_WORKER_SOURCE`` overrides)."""


def worker_source(settings: Settings) -> bytes | None:
    """The dispatch Worker module's bytes, or None when the file does not exist."""
    path = Path(settings.routing.worker_source) if settings.routing.worker_source else None
    try:
        return (path or DISPATCH_WORKER).read_bytes()
    except OSError:
        return None


def routing_config(settings: Settings) -> RoutingConfig:
    """What the handlers need of the routing settings (docs/routing.md)."""
    routing = settings.routing
    return RoutingConfig(
        namespace=routing.namespace,
        namespace_id=routing.namespace_id or None,
        worker=routing.worker,
        route_pattern=routing.route_pattern,
        worker_source=worker_source(settings),
        custom_metadata=routing.custom_metadata,
    )


def plan_settings(
    settings: Settings,
    *,
    allow_mass_deletion: bool = False,
    approved_deletions: Mapping[str, str] | None = None,
) -> PlanSettings:
    """The planner's knobs: the declared platform (when ``ROUTING_FALLBACK_ORIGIN`` is set and
    the Worker's source is found) and the custom metadata entitlement."""
    routing = settings.routing
    source = worker_source(settings)
    platform = None
    if routing.fallback_origin and source is not None:
        platform = DesiredPlatform(
            script=routing.worker,
            script_hash="sha256:" + hashlib.sha256(source).hexdigest(),
            namespace=routing.namespace,
            route_pattern=routing.route_pattern,
            fallback_origin=routing.fallback_origin,
        )
    return PlanSettings(
        allow_mass_deletion=allow_mass_deletion,
        approved_deletions=dict(approved_deletions or {}),
        routes_namespace=routing.namespace,
        platform=platform,
        custom_metadata=routing.custom_metadata,
    )


def _routing_target(settings: Settings) -> RoutingTarget:
    routing = settings.routing
    return RoutingTarget(
        namespace=routing.namespace,
        worker=routing.worker,
        route_pattern=routing.route_pattern,
        declared=bool(routing.fallback_origin),
        namespace_id=routing.namespace_id or None,
    )


def _database(settings: Settings, cloudflare: CloudflareClient | None, create: bool) -> Database:
    """The D1 backend the settings select (shared by both worlds)."""
    if settings.d1.backend == "sqlite":
        path = Path(settings.d1.sqlite_path)
        if not create and not path.exists():
            raise MigrationError(
                f"the D1 SQLite file {path} does not exist: run `reconciler migrate` to "
                "create it (or set D1_SQLITE_PATH)"
            )
        return SqliteDatabase(path)
    if cloudflare is None or not settings.d1.database_id:
        raise ValueError(
            "D1_BACKEND=d1 needs D1_DATABASE_ID and the Cloudflare settings "
            "(CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_ZONE_ID)"
        )
    return D1HttpDatabase(cloudflare, settings.d1.database_id)


class Buckets:
    """One token bucket per (provider, credential), created on first use and then shared."""

    def __init__(self) -> None:
        """Start with no bucket."""
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        # Pages projects the observers read, for the writers of the same account (a publish
        # needs its project's production branch): one memo beside the shared bucket.
        self.pages = ProjectMemo()

    def get(self, provider: str, credential: Secret, budget: RateBudget) -> TokenBucket:
        """The bucket of ``credential`` at ``provider``, sized by ``budget`` when first made."""
        key = (provider, hashlib.sha256(credential.reveal().encode()).hexdigest())
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(
                capacity=budget.requests, period=budget.period, margin=budget.margin
            )
            self._buckets[key] = bucket
        return bucket


def load_media(settings: Settings) -> R2Store | None:
    """The R2 media bucket (originals and the variant cache), when ``R2_*`` configure one."""
    return R2Store(settings.r2) if settings.r2.configured else None


_CLOUDFLARE_UNSET = "set CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_ZONE_ID"


def _cloudflare(settings: Settings, buckets: Buckets, lane: Lane) -> CloudflareClient | None:
    """The Cloudflare client in ``lane`` on the token's shared bucket, when configured."""
    cf = settings.cloudflare
    if not (cf.token and cf.account_id and cf.zone_id):
        return None
    bucket = buckets.get(Provider.CLOUDFLARE, cf.token, cf.rate)
    return CloudflareClient(cf, bucket=bucket, lane=lane, memo=buckets.pages)


def _evolution(settings: Settings, buckets: Buckets, lane: Lane) -> EvolutionClient | None:
    """The WhatsApp gateway's client in ``lane`` on the key's shared bucket, when configured."""
    evo = settings.evolution
    if not (evo.base_url and evo.instance):
        return None
    bucket = buckets.get(Provider.WHATSAPP, evo.api_key, EVOLUTION_BUDGET)
    return EvolutionClient(evo, bucket=bucket, lane=lane)


def _stripe(settings: Settings) -> StripeBilling | None:
    """The Stripe reader, when an API key is set."""
    return StripeBilling(settings.stripe) if settings.stripe.api_key else None


def _unconfigured(
    cloudflare: object | None, stripe: object | None, evolution: object | None
) -> dict[Source, Gap]:
    """The readings no client is configured for, each with the settings it lacks."""
    reasons: dict[Source, str] = {}
    if cloudflare is None:
        reasons[Source.PAGES] = reasons[Source.HOSTNAMES] = "not configured: " + _CLOUDFLARE_UNSET
    if stripe is None:
        reasons[Source.STRIPE] = "not configured: set STRIPE_API_KEY"
    if evolution is None:
        reasons[Source.WHATSAPP] = "not configured: set EVOLUTION_API_BASE and EVOLUTION_INSTANCE"
    return {source: Gap(GapReason.UNCONFIGURED, reason) for source, reason in reasons.items()}


class _Clients(AsyncClosing):
    """What both worlds hold: the D1 database and the provider clients, closed together."""

    settings: Settings
    database: Database
    cloudflare: CloudflareClient | None
    stripe: StripeBilling | None
    evolution: EvolutionClient | None

    def requests(self) -> dict[str, int]:
        """Requests sent so far per provider (Cloudflare counts D1 over REST too)."""
        counts: dict[str, int] = {}
        if self.cloudflare is not None:
            counts[Provider.CLOUDFLARE] = sum(self.cloudflare.calls.values())
        if self.stripe is not None:
            counts[Provider.STRIPE] = self.stripe.calls
        if self.evolution is not None:
            counts[Provider.WHATSAPP] = sum(self.evolution.calls.values())
        return counts

    async def aclose(self) -> None:
        """Close every client (idempotent enough: each adapter tolerates a second close)."""
        await self.database.close()
        if self.cloudflare is not None:
            await self.cloudflare.aclose()
        if self.stripe is not None:
            await self.stripe.aclose()
        if self.evolution is not None:
            await self.evolution.aclose()

    def __repr__(self) -> str:
        """Which providers are wired; never a credential."""
        wired: list[Any] = [
            name
            for name, client in (
                ("cloudflare", self.cloudflare),
                ("stripe", self.stripe),
                ("evolution", self.evolution),
            )
            if client is not None
        ]
        return f"{type(self).__name__}(d1={self.settings.d1.backend!r}, providers={wired!r})"


class ReadOnlyWorld(_Clients):
    """The observers of one command: read-only clients, closed together.

    Use as ``async with ReadOnlyWorld(settings) as world: observe(..., clients=world.clients)``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        buckets: Buckets | None = None,
        assets: AssetStore | None = None,
        create_database: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        """Prepare (without connecting) the clients the settings configure.

        Args:
            settings: where each provider lives and its credentials.
            buckets: shared token buckets (a new set when None).
            assets: the asset store for in-memory builds; R2 from ``R2_*`` when None and
                configured (its variant cache is read, never written: a plan is read-only).
            resolver: the DNS resolver for stuck hostnames; from ``DNS_RESOLVER`` when None
                (:func:`load_resolver`).
            create_database: allow a missing SQLite file to be created (tests); a plan
                otherwise refuses, because a missing file means ``reconciler migrate`` never ran.

        Raises:
            MigrationError: the SQLite D1 file does not exist.
            ValueError: the D1 REST backend is selected without the Cloudflare settings.
        """
        self.settings = settings
        self.buckets = buckets or Buckets()
        self.cloudflare = _cloudflare(settings, self.buckets, Lane.SWEEP)
        self.database = _database(settings, self.cloudflare, create_database)
        self.stripe = _stripe(settings)
        self.evolution = _evolution(settings, self.buckets, Lane.SWEEP)
        self.resolver = resolver if resolver is not None else load_resolver(settings)
        self.kv = KvClient(self.cloudflare) if self.cloudflare is not None else None
        self.workers = WorkersClient(self.cloudflare) if self.cloudflare is not None else None
        self.media = load_media(settings)
        if assets is None and self.media is not None:
            assets = self.media
        self.clients = ObserveClients(
            database=self.database,
            cloudflare=self.cloudflare,
            stripe=self.stripe,
            evolution=self.evolution,
            assets=assets,
            gaps=_unconfigured(self.cloudflare, self.stripe, self.evolution),
            dns=self.resolver,
            cname_target=settings.dns.cname_target or None,
            kv=self.kv,
            workers=self.workers,
            routing=_routing_target(settings),
            worker_versions=self.cloudflare,
            variants=self.media,
        )

    def plan_settings(
        self,
        *,
        allow_mass_deletion: bool = False,
        approved_deletions: Mapping[str, str] | None = None,
    ) -> PlanSettings:
        """The planner's knobs for these settings (:func:`plan_settings`)."""
        return plan_settings(
            self.settings,
            allow_mass_deletion=allow_mass_deletion,
            approved_deletions=approved_deletions,
        )

    def rates(self) -> dict[str, Rate]:
        """The request budget per provider, for the plan's cost forecast."""
        budget = self.settings.cloudflare.rate
        rates: dict[str, Rate] = {
            Provider.CLOUDFLARE: Rate(requests=budget.requests, period=budget.period),
            Provider.WHATSAPP: Rate(
                requests=EVOLUTION_BUDGET.requests, period=EVOLUTION_BUDGET.period
            ),
        }
        if self.settings.d1.backend == "d1":  # D1 over REST spends the Cloudflare token
            rates[Provider.D1] = Rate(
                requests=budget.requests, period=budget.period, spends=Provider.CLOUDFLARE
            )
        return rates


class WriterWorld(_Clients):
    """The writers of one ``apply``: write-capable clients, the handlers, the checkpoints.

    Use as::

        async with WriterWorld(settings, buckets=buckets) as writers:
            report = await execute(plan, handlers=writers.handlers(),
                                   journal=Journal(writers.database, now=now),
                                   checkpoint=writers.checkpoints, now=now)

    Cloudflare and Evolution requests go in the ``CHANGE`` lane of the shared buckets (the
    observers of the same command use ``SWEEP``), so a pass's writes are served before its
    drift reads. Stripe stays read-only: the handlers only read billing facts.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        buckets: Buckets | None = None,
        assets: Mapping[str, bytes] | AssetStore | None = None,
        action_settings: ActionSettings | None = None,
        checkpoints: Checkpoints | None = None,
        sleep: Sleep | None = None,
        create_database: bool = False,
    ) -> None:
        """Prepare (without connecting) the writers the settings configure.

        Args:
            settings: where each provider lives and its credentials.
            buckets: shared token buckets (pass the observers' set; a new set when None).
            assets: asset bytes for builds; R2 from ``R2_*`` when None and configured (it is
                the variant cache too), else an empty store.
            action_settings: the handlers' time limits (production defaults when None).
            checkpoints: crash points; from ``RECONCILER_CRASH_AT`` when None
                (:func:`load_checkpoints`).
            sleep: how handlers wait between polls; from ``RECONCILER_SANDBOX_CONTROL`` when
                None (:func:`load_sleep`).
            create_database: allow a missing SQLite file to be created (tests).

        Raises:
            ValueError: Cloudflare is not configured (every handler needs it), the D1 REST
                backend lacks its settings, or ``RECONCILER_CRASH_AT`` is malformed.
            MigrationError: the SQLite D1 file does not exist.
        """
        self.settings = settings
        self.buckets = buckets or Buckets()
        cloudflare = _cloudflare(settings, self.buckets, Lane.CHANGE)
        if cloudflare is None:
            raise ValueError("apply needs Cloudflare: " + _CLOUDFLARE_UNSET)
        self.checkpoints: Checkpoints = (
            checkpoints if checkpoints is not None else load_checkpoints()
        )
        self.sleep: Sleep = sleep if sleep is not None else load_sleep()
        self.cloudflare: CloudflareClient = cloudflare
        self.database = _database(settings, self.cloudflare, create_database)
        self.stripe = _stripe(settings)
        self.evolution = _evolution(settings, self.buckets, Lane.CHANGE)
        self.media = load_media(settings)
        self.world = World(
            cloudflare=self.cloudflare,
            db=self.database,
            stripe=self.stripe,
            evolution=self.evolution,
            assets=assets if assets is not None else (self.media or {}),
            variants=self.media,
            settings=action_settings or ActionSettings(),
            sleep=self.sleep,
            routing=routing_config(settings),
        )

    def handlers(self) -> Mapping[ActionKind, Handler]:
        """One handler per action kind, acting through :attr:`world`."""
        return handlers_for(self.world)

    def fence(self, check: Callable[[], object]) -> Database:
        """Fence every writer of :attr:`world` with ``check`` (``lease.ensure``); return the
        fenced database for the journal. :attr:`database` itself stays unfenced: the lease
        is kept through it."""
        from reconciler.runtime.lease import fenced_client

        acting = self.world
        evolution = acting.evolution
        fenced_db: Database = fenced_client(self.database, check)
        # replace(), not a new World: every other field (assets, the variant cache, routing,
        # settings) is kept whatever World gains; only the writers are wrapped.
        self.world = dataclasses.replace(
            acting,
            cloudflare=fenced_client(acting.cloudflare, check),
            db=fenced_db,
            evolution=fenced_client(evolution, check) if evolution is not None else None,
        )
        return fenced_db


@dataclasses.dataclass(frozen=True, slots=True)
class _Guard:
    """Puts each client behind its provider's breaker and the API metrics; fences writers."""

    breakers: Breakers
    metrics: Metrics
    fence: Callable[[], object]

    def reader(self, target: Any, provider: Provider) -> Any:
        """``target`` guarded (None stays None)."""
        from reconciler.runtime.guard import guarded_client

        if target is None:
            return None
        return guarded_client(
            target, provider=provider, breakers=self.breakers, metrics=self.metrics
        )

    def writer(self, target: Any, provider: Provider) -> Any:
        """``target`` guarded and fenced: every call checks the lease first."""
        from reconciler.runtime.guard import guarded_client

        if target is None:
            return None
        return guarded_client(
            target,
            provider=provider,
            breakers=self.breakers,
            metrics=self.metrics,
            fence=self.fence,
        )

    def observers(self, read: ObserveClients) -> ObserveClients:
        """The observers' clients, each guarded; every other field kept."""
        return dataclasses.replace(
            read,
            database=self.reader(read.database, Provider.D1),
            cloudflare=self.reader(read.cloudflare, Provider.CLOUDFLARE),
            stripe=self.reader(read.stripe, Provider.STRIPE),
            evolution=self.reader(read.evolution, Provider.WHATSAPP),
            kv=self.reader(read.kv, Provider.CLOUDFLARE),
            workers=self.reader(read.workers, Provider.CLOUDFLARE),
            worker_versions=self.reader(read.worker_versions, Provider.CLOUDFLARE),
        )

    def actors(self, acting: World, fenced_db: Database) -> World:
        """The handlers' world with its writers guarded and fenced (Stripe is only read)."""
        return dataclasses.replace(
            acting,
            cloudflare=self.writer(acting.cloudflare, Provider.CLOUDFLARE),
            db=fenced_db,
            stripe=self.reader(acting.stripe, Provider.STRIPE),
            evolution=self.writer(acting.evolution, Provider.WHATSAPP),
        )


def _lease(
    database: Database,
    holder: str | None,
    ttl: float,
    *,
    clock: Callable[[], float],
    sleep: Sleep,
) -> LeaderLease:
    """The leader lease, kept through the unfenced database (default holder: this process)."""
    from reconciler.runtime.lease import LeaderLease, default_holder

    return LeaderLease(
        database, holder=holder or default_holder(), ttl=ttl, clock=clock, sleep=sleep
    )


class DaemonWorld(AsyncClosing):
    """Everything ``reconciler run`` needs: observers, fenced writers and the loop's parts.

    Use as::

        async with DaemonWorld(settings, repo_url=url, branch="main", workdir=path) as world:
            code = await Daemon(world.parts, loop_settings).run()

    Built on :class:`ReadOnlyWorld` (observers, ``SWEEP`` lane) and :class:`WriterWorld`
    (writers, ``CHANGE`` lane), sharing one set of token buckets. Every client is wrapped by
    :func:`reconciler.runtime.guard.guarded_client`: the provider's circuit breaker and the API
    metrics see each call, and every writer (and the journal and status writes through the
    fenced D1) calls ``lease.ensure()`` first, so nothing is written once the lease is lost.
    The lease itself uses an unfenced database connection of its own.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        repo_url: str,
        branch: str,
        workdir: Path,
        specs_subdir: str = "specs",
        listen: tuple[str, int] | None = None,
        holder: str | None = None,
        lease_ttl: float = 15.0,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        action_settings: ActionSettings | None = None,
        handler_sleep: Sleep | None = None,
        create_database: bool = False,
    ) -> None:
        """Prepare (without connecting) the daemon's clients and parts.

        Args:
            settings: where each provider lives and its credentials.
            repo_url: the Git remote to follow (credentials in it are masked in logs).
            branch: the branch to follow.
            workdir: the daemon's own directory (the bare repository lives in ``repo``).
            specs_subdir: the specs directory inside the repository.
            listen: ``(host, port)`` for the HTTP endpoints (port 0: any free port); None
                serves nothing.
            holder: this process's lease holder id (default: host, pid and a random part).
            lease_ttl: seconds a lease lasts after each renewal.
            clock: epoch seconds for the loop, lease, breakers and status.
            sleep: how the loop waits (polls, sweeps, standby).
            action_settings: the handlers' time limits.
            handler_sleep: how handlers wait between polls (see :class:`WriterWorld`).
            create_database: allow a missing SQLite file to be created (tests).

        Raises:
            ValueError: Cloudflare is not configured, or a setting is malformed.
            MigrationError: the SQLite D1 file does not exist.
        """
        # NB: imported here, not at the top: ``plan`` and ``apply`` import this module and
        # need neither the loop nor the HTTP server (uvicorn, starlette).
        from reconciler.runtime.breaker import Breakers
        from reconciler.runtime.gitfollow import GitFollower
        from reconciler.runtime.metrics import Metrics
        from reconciler.runtime.server import EndpointServer, create_app

        self.settings = settings
        self.buckets = Buckets()
        self.metrics = Metrics()
        self.breakers = Breakers(clock=clock, on_change=self.metrics.set_breaker_state)
        self.readers = ReadOnlyWorld(
            settings, buckets=self.buckets, create_database=create_database
        )
        self.writers = WriterWorld(
            settings,
            buckets=self.buckets,
            action_settings=action_settings,
            sleep=handler_sleep,
            create_database=create_database,
        )
        # The lease on a connection of its own: no pass's reads and writes queue before a renewal.
        self.lease_database = _database(settings, self.writers.cloudflare, create_database)
        self.lease = _lease(self.lease_database, holder, lease_ttl, clock=clock, sleep=sleep)
        guard = _Guard(self.breakers, self.metrics, self.lease.ensure)
        follower = GitFollower(
            workdir / "repo",
            repo_url,
            branch,
            specs_subdir=specs_subdir,
            clock=clock,
            sleep=sleep,
            on_fetch=self.metrics.git_fetch,
        )
        self.parts = self._parts(guard, follower, clock=clock, sleep=sleep)
        self._listen = listen
        self._create_app = create_app
        self._server_type = EndpointServer

    def _parts(
        self,
        guard: _Guard,
        follower: GitFollower,
        *,
        clock: Callable[[], float],
        sleep: Sleep,
    ) -> DaemonParts:
        """The loop's parts: every client guarded, every D1 write fenced by the lease."""
        from reconciler.runtime.daemon_parts import DaemonParts
        from reconciler.runtime.journal import Journal
        from reconciler.runtime.status import StatusStore

        fenced_db: Database = guard.writer(self.writers.database, Provider.D1)
        self.database = fenced_db  # every daemon write to D1 (journal, status) goes through it
        return DaemonParts(
            follower=follower,
            lease=self.lease,
            status=StatusStore(fenced_db, clock),
            metrics=self.metrics,
            breakers=self.breakers,
            observe_clients=guard.observers(self.readers.clients),
            handlers=handlers_for(guard.actors(self.writers.world, fenced_db)),
            journal=Journal(fenced_db, now=clock),
            clock=clock,
            sleep=sleep,
            plan_settings=plan_settings(self.settings),
        )

    def serve(self, daemon: Any) -> None:
        """Attach the HTTP endpoints, wired to ``daemon``'s probes and webhook handlers.

        Args:
            daemon: the :class:`reconciler.runtime.loop.Daemon` built on :attr:`parts`.
        """
        if self._listen is None:
            return
        stripe = self.writers.stripe
        verify = stripe.verify_webhook if stripe is not None else _no_stripe_verifier
        app = self._create_app(
            metrics=self.metrics,
            health=daemon.health,
            ready=daemon.ready,
            readiness=daemon.readiness,
            on_git_push=daemon.on_git_push,
            on_stripe_event=daemon.on_stripe_event,
            git_secret=self.settings.git_webhook_secret,
            stripe_verifier=verify,
            before_metrics=self.breakers.states,
        )
        host, port = self._listen
        self.parts.server = self._server_type(app, host=host, port=port)

    async def aclose(self) -> None:
        """Close every client."""
        await self.readers.aclose()
        await self.writers.aclose()
        await self.lease_database.close()

    def __repr__(self) -> str:
        """The worlds it wraps; never a credential."""
        return f"DaemonWorld({self.readers!r}, {self.writers!r})"


def _no_stripe_verifier(payload: bytes, signature: str) -> Any:
    """The Stripe webhook verifier when Stripe is not configured: every event is refused."""
    raise PermanentError(Provider.STRIPE, "webhook rejected: no webhook secret is configured")
