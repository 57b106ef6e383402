"""What the action handlers act on: the clients, the database and the knobs.

``wiring`` builds one :class:`World` per process (``reconciler apply``, the daemon, the
sandbox) and passes it to :func:`reconciler.runtime.actions.handlers_for`; every handler in
``runtime/actions/`` reads its clients from it, most through :class:`WorldHandler`'s shared
constructor. Nothing here performs I/O itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.build.media import VariantCache
from reconciler.build.site import AssetStore
from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, JsonValue
from reconciler.core.provider import Provider
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.d1 import Database
from reconciler.providers.evolution import EvolutionClient
from reconciler.runtime.records import Records

__all__ = ["ActionSettings", "BillingSource", "RoutingConfig", "World", "WorldHandler", "applied"]


class BillingSource(Protocol):
    """The two Stripe reads the billing sync needs (``providers/stripe.StripeBilling``)."""

    async def customer_billing(self, customer_ids: Sequence[str]) -> dict[str, CustomerBilling]:
        """Subscriptions and open invoices per customer; an unknown customer is left out."""
        ...

    async def invoice(self, invoice_id: str) -> Invoice:
        """One invoice, whatever its status (``NotFoundError`` when Stripe has none)."""
        ...


@dataclass(frozen=True, slots=True)
class ActionSettings:
    """Time limits and names the handlers use; defaults suit production."""

    build_time_limit: float = 60.0  # seconds a build may take (runbook 1: build timeout)
    deploy_timeout: float = 600.0  # seconds a Pages deployment may take to become live
    deploy_poll_interval: float = 3.0  # seconds between status polls once late (doubling)
    # Seconds a Pages deployment usually takes: the first status read waits this long. Five
    # stages (queued, initialize, clone, build, deploy) of about one poll interval each.
    deploy_expected_stages: int = 5

    @property
    def deploy_expected(self) -> float:
        """Seconds before the first status read of a new deployment."""
        return self.deploy_expected_stages * self.deploy_poll_interval

    rollback_timeout: float = 60.0  # seconds for production to point at a rollback target
    preview_branch: str = "preview"  # the branch preview deployments are uploaded on


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The routing platform the handlers act on (``settings.RoutingSettings``; docs/routing.md).

    ``worker_source`` is the dispatch Worker module to deploy (None: no source was found, so a
    ``deploy_worker`` fails permanently); ``custom_metadata``: the account is entitled to
    custom hostname metadata (off by default: no request carries it).
    """

    namespace: str = "sitebuilder-routes"
    namespace_id: str | None = None  # known from settings: no lookup by title
    worker: str = "sitebuilder-dispatch"
    route_pattern: str = "*/*"
    worker_source: bytes | None = None
    custom_metadata: bool = False


@dataclass(frozen=True, slots=True)
class World:
    """The clients and settings every handler acts through.

    Attributes:
        cloudflare: Pages, custom hostnames and cache purge.
        db: D1 (the app tables the runbooks query, and the ledger).
        stripe: read-only Stripe; None when billing is not configured (sync fails permanently).
        evolution: the WhatsApp gateway; None when not configured (dunning fails permanently).
        assets: asset bytes by key for builds (R2 in production, a dict in the sandbox).
        variants: the image variant cache (R2 beside the originals); None encodes every build.
        settings: time limits and branch names.
        routing: the routing table's namespace, the dispatch Worker and entitlements.
        sleep: how the handlers wait between polls (the sandbox advances its virtual clock).
    """

    cloudflare: CloudflareClient
    db: Database
    stripe: BillingSource | None = None
    evolution: EvolutionClient | None = None
    assets: Mapping[str, bytes] | AssetStore = field(default_factory=dict)
    variants: VariantCache | None = None
    settings: ActionSettings = field(default_factory=ActionSettings)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    routing: RoutingConfig = field(default_factory=RoutingConfig)


def applied(
    action: Action, message: str, *, data: Mapping[str, JsonValue] | None = None
) -> Outcome:
    """The outcome of a handler that changed the world as ``action`` asked."""
    return Outcome(
        action.id, Status.APPLIED, message=message, data=data if data is not None else {}
    )


class WorldHandler:
    """A handler acting through one :class:`World` and its D1 :class:`Records`."""

    provider: str = Provider.CLOUDFLARE

    def __init__(self, world: World) -> None:
        """Act through ``world``."""
        self.world = world
        self.records = Records(world.db)
