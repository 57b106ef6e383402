"""The provider clients the settings configure, on shared token buckets, closed together."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reconciler.core.lane import Lane
from reconciler.core.observed import Gap, GapReason, Source
from reconciler.core.provider import Provider
from reconciler.errors import MigrationError
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.cloudflare import CloudflareClient, ProjectMemo
from reconciler.providers.d1 import D1HttpDatabase, Database, SqliteDatabase
from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.r2 import R2Store
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.stripe import StripeBilling
from reconciler.settings import RateBudget, Secret, Settings

EVOLUTION_BUDGET = RateBudget(requests=30, period=60.0)
"""Client-side pacing of the WhatsApp gateway (docs/evolution.md: sends plus a few reads)."""


def d1_database(settings: Settings, cloudflare: CloudflareClient | None, create: bool) -> Database:
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


CLOUDFLARE_UNSET = "set CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_ZONE_ID"


def cloudflare_client(settings: Settings, buckets: Buckets, lane: Lane) -> CloudflareClient | None:
    """The Cloudflare client in ``lane`` on the token's shared bucket, when configured."""
    cf = settings.cloudflare
    if not (cf.token and cf.account_id and cf.zone_id):
        return None
    bucket = buckets.get(Provider.CLOUDFLARE, cf.token, cf.rate)
    return CloudflareClient(cf, bucket=bucket, lane=lane, memo=buckets.pages)


def evolution_client(settings: Settings, buckets: Buckets, lane: Lane) -> EvolutionClient | None:
    """The WhatsApp gateway's client in ``lane`` on the key's shared bucket, when configured."""
    evo = settings.evolution
    if not (evo.base_url and evo.instance):
        return None
    bucket = buckets.get(Provider.WHATSAPP, evo.api_key, EVOLUTION_BUDGET)
    return EvolutionClient(evo, bucket=bucket, lane=lane)


def stripe_client(settings: Settings) -> StripeBilling | None:
    """The Stripe reader, when an API key is set."""
    return StripeBilling(settings.stripe) if settings.stripe.api_key else None


def unconfigured(
    cloudflare: object | None, stripe: object | None, evolution: object | None
) -> dict[Source, Gap]:
    """The readings no client is configured for, each with the settings it lacks."""
    reasons: dict[Source, str] = {}
    if cloudflare is None:
        reasons[Source.PAGES] = reasons[Source.HOSTNAMES] = "not configured: " + CLOUDFLARE_UNSET
    if stripe is None:
        reasons[Source.STRIPE] = "not configured: set STRIPE_API_KEY"
    if evolution is None:
        reasons[Source.WHATSAPP] = "not configured: set EVOLUTION_API_BASE and EVOLUTION_INSTANCE"
    return {source: Gap(GapReason.UNCONFIGURED, reason) for source, reason in reasons.items()}


class Clients(AsyncClosing):
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
