"""The Evolution API simulator for tests: its handle, key, fake time and fixtures.

``evolution_sim`` (session) serves :mod:`reconciler.sandbox.evolution` over real HTTP through
:mod:`reconciler.sandbox.host`; ``evo`` (function) is the same handle after a reset (instance
``sitebuilder`` open, every plausible number on WhatsApp, no faults, messages or calls).
``fake_time`` gives a clock and a sleep that only move when awaited, for the token bucket and
the retry backoff, so no test waits for real. ``make_client`` builds clients against ``evo``.
The fixtures are registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.evolution import create_app
from reconciler.sandbox.evolution_state import EvolutionState
from reconciler.sandbox.host import ServerHost
from reconciler.settings import EvolutionSettings, Secret

API_KEY = "evo-test-global-key-4f1c9a"
INSTANCE = "sitebuilder"
FAST_RETRY = RetryPolicy(attempts=3)


class FakeTime:
    """A clock and an async sleep that advances it instantly."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class EvolutionSandbox:
    """A running Evolution API simulator and what a client needs to reach it."""

    state: EvolutionState
    host: ServerHost
    clock: VirtualClock

    @property
    def base_url(self) -> str:
        return self.host.base_url

    def settings(self, *, instance: str = INSTANCE, api_key: str = API_KEY) -> EvolutionSettings:
        return EvolutionSettings(base_url=self.base_url, api_key=Secret(api_key), instance=instance)

    def http(self, *, api_key: str | None = API_KEY) -> httpx.Client:
        headers = {"apikey": api_key} if api_key is not None else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base_url}/__sandbox{path}", timeout=30.0, **kwargs)

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.state.calls_since(since)


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
