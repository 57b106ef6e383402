"""Shared values for the Evolution API tests: the simulator handle, its key and fake time.

Imported by ``conftest.py`` (the fixtures) and the test modules (type hints and constants).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.clock import VirtualClock
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
