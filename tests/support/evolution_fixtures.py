"""Fixtures for the Evolution API tests: the simulator on loopback and clients pointed at it.

``evolution_sim`` (session) serves :mod:`reconciler.sandbox.evolution` over real HTTP through
:mod:`reconciler.sandbox.host`; ``evo`` (function) is the same handle after a reset (instance
``sitebuilder`` open, every plausible number on WhatsApp, no faults, messages or calls).
``fake_time`` gives a clock and a sleep that only move when awaited, for the token bucket and
the retry backoff, so no test waits for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from evolution_support import API_KEY, FAST_RETRY, INSTANCE, EvolutionSandbox, FakeTime

from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.evolution import create_app
from reconciler.sandbox.host import ServerHost


@pytest.fixture(scope="session")
def evolution_sim() -> Iterator[EvolutionSandbox]:
    """One Evolution API simulator for the whole session."""
    clock = VirtualClock()
    app, state = create_app(clock=clock, api_key=API_KEY, instance=INSTANCE, seed=3)
    host = ServerHost(app, name="evolution-test")
    host.start()
    try:
        yield EvolutionSandbox(state=state, host=host, clock=clock)
    finally:
        host.stop()


@pytest.fixture
def evo(evolution_sim: EvolutionSandbox) -> EvolutionSandbox:
    """The session simulator, reset, with the clock flowing."""
    evolution_sim.clock.thaw()
    evolution_sim.state.reset()
    return evolution_sim


@pytest.fixture
def fake_time() -> FakeTime:
    """Time that passes only when something sleeps."""
    return FakeTime()


@pytest.fixture
async def make_client(evo: EvolutionSandbox, fake_time: FakeTime) -> AsyncIterator[Any]:
    """Build EvolutionClients against ``evo``; a roomy bucket and instant retries by default."""
    made: list[EvolutionClient] = []

    def build(
        *,
        instance: str = INSTANCE,
        api_key: str = API_KEY,
        bucket: TokenBucket | None = None,
        retry: RetryPolicy = FAST_RETRY,
        **kwargs: Any,
    ) -> EvolutionClient:
        client = EvolutionClient(
            evo.settings(instance=instance, api_key=api_key),
            bucket=bucket
            if bucket is not None
            else TokenBucket(
                capacity=1000, period=60, clock=fake_time.clock, sleep=fake_time.sleep
            ),
            retry=retry,
            sleep=fake_time.sleep,
            **kwargs,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()
