"""The daemon's world: guarded observers, lease-fenced writers and the loop's parts."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.provider import Provider
from reconciler.errors import PermanentError
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.d1 import Database
from reconciler.runtime.actions import ActionSettings, World, handlers_for
from reconciler.runtime.observe import ObserveClients
from reconciler.settings import Settings
from reconciler.wiring.clients import (
    Buckets,
    d1_database,
)
from reconciler.wiring.config import plan_settings
from reconciler.wiring.env import Sleep
from reconciler.wiring.worlds import ReadOnlyWorld, WriterWorld

if TYPE_CHECKING:
    from reconciler.runtime.breaker import Breakers
    from reconciler.runtime.daemon_parts import DaemonParts
    from reconciler.runtime.gitfollow import GitFollower
    from reconciler.runtime.lease import LeaderLease
    from reconciler.runtime.metrics import Metrics


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
        self.lease_database = d1_database(settings, self.writers.cloudflare, create_database)
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
