"""The two worlds of one command: read-only observers (plan) and the writers (apply)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from reconciler.build.site import AssetStore
from reconciler.core.lane import Lane
from reconciler.core.plan import ActionKind, PlanSettings
from reconciler.core.provider import Provider
from reconciler.core.render import Rate
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.cloudflare_kv import KvClient
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.providers.d1 import Database
from reconciler.providers.dns import Resolver
from reconciler.runtime.actions import ActionSettings, World, handlers_for
from reconciler.runtime.handler import Checkpoints, Handler
from reconciler.runtime.observe import ObserveClients
from reconciler.settings import Settings
from reconciler.wiring.clients import (
    CLOUDFLARE_UNSET,
    EVOLUTION_BUDGET,
    Buckets,
    Clients,
    cloudflare_client,
    d1_database,
    evolution_client,
    load_media,
    stripe_client,
    unconfigured,
)
from reconciler.wiring.config import plan_settings, routing_config, routing_target
from reconciler.wiring.env import Sleep, load_checkpoints, load_resolver, load_sleep


class ReadOnlyWorld(Clients):
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
        self.cloudflare = cloudflare_client(settings, self.buckets, Lane.SWEEP)
        self.database = d1_database(settings, self.cloudflare, create_database)
        self.stripe = stripe_client(settings)
        self.evolution = evolution_client(settings, self.buckets, Lane.SWEEP)
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
            gaps=unconfigured(self.cloudflare, self.stripe, self.evolution),
            dns=self.resolver,
            cname_target=settings.dns.cname_target or None,
            kv=self.kv,
            workers=self.workers,
            routing=routing_target(settings),
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


class WriterWorld(Clients):
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
        cloudflare = cloudflare_client(settings, self.buckets, Lane.CHANGE)
        if cloudflare is None:
            raise ValueError("apply needs Cloudflare: " + CLOUDFLARE_UNSET)
        self.checkpoints: Checkpoints = (
            checkpoints if checkpoints is not None else load_checkpoints()
        )
        self.sleep: Sleep = sleep if sleep is not None else load_sleep()
        self.cloudflare: CloudflareClient = cloudflare
        self.database = d1_database(settings, self.cloudflare, create_database)
        self.stripe = stripe_client(settings)
        self.evolution = evolution_client(settings, self.buckets, Lane.CHANGE)
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
