"""Providers: the one closed vocabulary of the external systems the reconciler reads and writes.

A provider is what a circuit breaker guards, what a rate budget and a plan's call forecast are
keyed by, and what ``ProviderError.provider`` names for these four systems. The values are the
strings plan JSON, metrics labels and error messages already show: the WhatsApp gateway is
``whatsapp`` everywhere (Evolution API is only the adapter that speaks to it), so no alias
table maps one name onto another.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from reconciler.core.observed import Source

__all__ = ["SOURCE_PROVIDERS", "Provider"]


class Provider(StrEnum):
    """An external system with its own breaker, budget and error name."""

    CLOUDFLARE = "cloudflare"  # Pages, custom hostnames, zones, KV, Workers
    D1 = "d1"  # the database (SQLite locally, D1 over REST in production)
    STRIPE = "stripe"  # billing facts (read-only)
    WHATSAPP = "whatsapp"  # the WhatsApp gateway, reached through Evolution API


SOURCE_PROVIDERS: Mapping[Source, Provider] = {
    Source.PAGES: Provider.CLOUDFLARE,
    Source.HOSTNAMES: Provider.CLOUDFLARE,
    Source.D1: Provider.D1,
    Source.STRIPE: Provider.STRIPE,
    Source.WHATSAPP: Provider.WHATSAPP,
    Source.WORKERS: Provider.CLOUDFLARE,
    Source.ROUTES: Provider.CLOUDFLARE,
    Source.PLATFORM: Provider.CLOUDFLARE,
}
"""The provider behind each reading of an observation."""
