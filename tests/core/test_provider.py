"""Providers: one closed name per external system, and the provider behind every reading."""

from __future__ import annotations

from reconciler.core.observed import Source
from reconciler.core.provider import SOURCE_PROVIDERS, Provider
from reconciler.providers.cloudflare_errors import PROVIDER as CLOUDFLARE
from reconciler.providers.d1 import PROVIDER as D1
from reconciler.providers.evolution import PROVIDER as EVOLUTION
from reconciler.providers.stripe import PROVIDER as STRIPE


def test_every_reading_has_a_provider() -> None:
    # The command's copy of this table lacked Source.WORKERS, so an unreadable Workers
    # reading had no provider to name; the one table in the core covers every source.
    assert set(SOURCE_PROVIDERS) == set(Source)


def test_each_adapter_raises_under_its_provider_name() -> None:
    # The Evolution adapter used to raise as "evolution" while the breakers, budgets and
    # readings said "whatsapp" (an alias table bridged them): now the name is the gateway's.
    assert tuple(Provider) == (CLOUDFLARE, D1, STRIPE, EVOLUTION)
    assert EVOLUTION == "whatsapp" and SOURCE_PROVIDERS[Source.WHATSAPP] is EVOLUTION
