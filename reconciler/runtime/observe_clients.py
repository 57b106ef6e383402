"""observe_clients: what one observation reads with: its clients, limits, readings and guard.

``runtime/observe.py`` and its parts (``observe_hostnames``, ``observe_pages``,
``observe_builds``) share these: the read-only clients the wiring built
(:class:`ObserveClients`), the timeouts (:class:`ObserveLimits`), what phase one gathered
(:class:`Readings`), and :func:`guard`, which runs one provider's reading and records its
failure or timeout as a ``Gap`` (``observe`` rule 2) instead of raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from reconciler.build.identity import builder_fingerprint
from reconciler.build.media import VariantCache
from reconciler.build.site import AssetStore
from reconciler.core.facts import CustomerBilling
from reconciler.core.observed import Gap, GapReason, Source
from reconciler.core.routing import ObservedPlatform
from reconciler.errors import MigrationError, ProviderError
from reconciler.providers.cloudflare_models import CustomHostname, Deployment, PagesProject
from reconciler.providers.d1 import Database
from reconciler.providers.dns import Resolver
from reconciler.runtime.observe_routes import (
    KvReader,
    PlatformReader,
    RoutingReading,
    RoutingTarget,
)
from reconciler.runtime.observe_workers import WorkersReader
from reconciler.runtime.records import RecordsSnapshot

__all__ = [
    "BillingReader",
    "CloudflareReader",
    "GatewayReader",
    "ObserveClients",
    "ObserveLimits",
    "Readings",
    "gather_all",
    "guard",
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
class Readings:
    """What phase one gathered; ``incomplete`` fills as providers fail."""

    ledger: RecordsSnapshot | None = None
    hostnames: list[CustomHostname] | None = None
    routing: RoutingReading | None = None
    platform: ObservedPlatform | None = None
    billing: dict[str, CustomerBilling] = field(default_factory=dict)
    incomplete: dict[Source, Gap] = field(default_factory=dict)
    fatal: MigrationError | None = None


async def guard(readings: Readings, source: Source, seconds: float, work: Awaitable[None]) -> None:
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


async def gather_all(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await every item concurrently; after all have finished, raise the first failure."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]
