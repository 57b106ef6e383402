"""Fixtures for the contract tests: corrected checkers and the Evolution API simulator.

Role: loads ``../shared/contracts/cloudflare/openapi-subset.json`` and
``../shared/contracts/evolution/openapi-v2.json`` once per session, applies the documented
corrections (``support/contract/corrections.py``) and hands out ``OpenAPIChecker`` instances;
when the shared directory is absent, these fixtures skip with the reason. It also serves the
Evolution API simulator on loopback (``evolution_contract_sim``, reset per test by
``evo_contract``) rather than using the suite-wide ``evo`` of ``support/evolution.py``. The
Cloudflare simulator comes from ``tests/conftest.py`` (``cf``).

Called by: pytest, for the modules in ``tests/contract/``.
Calls: ``support.contract.openapi_checker.OpenAPIChecker``, ``support.contract.corrections``,
``reconciler.sandbox.evolution``, ``reconciler.sandbox.host``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.evolution import create_app
from reconciler.sandbox.evolution_state import EvolutionState
from reconciler.sandbox.host import ServerHost

from support.contract.corrections import (
    CLOUDFLARE_CORRECTIONS,
    CLOUDFLARE_DOCUMENT,
    EVOLUTION_CORRECTIONS,
    EVOLUTION_DOCUMENT,
)
from support.contract.openapi_checker import OpenAPIChecker

EVOLUTION_API_KEY = "contract-evo-global-key-7d2e"
EVOLUTION_INSTANCE = "sitebuilder"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared contract not found at {path} (../shared is absent beside the repo)")
    return path


@pytest.fixture(scope="session")
def cloudflare_checker() -> OpenAPIChecker:
    """The Cloudflare subset, corrected as cloudflare/CONTRACT.md documents."""
    path = _require(CLOUDFLARE_DOCUMENT)
    return OpenAPIChecker.from_file("cloudflare", path, *CLOUDFLARE_CORRECTIONS)


@pytest.fixture(scope="session")
def evolution_checker() -> OpenAPIChecker:
    """The Evolution API v2 document, corrected as evolution/CONTRACT.md documents."""
    path = _require(EVOLUTION_DOCUMENT)
    return OpenAPIChecker.from_file("evolution", path, *EVOLUTION_CORRECTIONS)


@dataclass
class EvolutionSim:
    """A running Evolution API simulator: its state, server and virtual clock."""

    state: EvolutionState
    host: ServerHost
    clock: VirtualClock
    api_key: str = EVOLUTION_API_KEY
    instance: str = EVOLUTION_INSTANCE

    @property
    def base_url(self) -> str:
        """The server root (``EVOLUTION_API_BASE``)."""
        return self.host.base_url

    def calls(self) -> list[dict[str, Any]]:
        """Every exchange recorded since the last reset."""
        return self.state.calls_since(0)


@pytest.fixture(scope="session")
def evolution_contract_sim() -> Iterator[EvolutionSim]:
    """One Evolution API simulator for the contract tests of the session."""
    clock = VirtualClock()
    app, state = create_app(
        clock=clock, api_key=EVOLUTION_API_KEY, instance=EVOLUTION_INSTANCE, seed=11
    )
    host = ServerHost(app, name="evolution-contract")
    host.start()
    try:
        yield EvolutionSim(state=state, host=host, clock=clock)
    finally:
        host.stop()


@pytest.fixture
def evo_contract(evolution_contract_sim: EvolutionSim) -> EvolutionSim:
    """The session's Evolution simulator, reset (instance open, empty call log)."""
    evolution_contract_sim.clock.thaw()
    evolution_contract_sim.state.reset()
    return evolution_contract_sim


class InstantTime:
    """A monotonic clock and a sleep that advances it at once: waits cost no real time.

    Given to token buckets and clients so a 429's ``retry-after`` is honoured (the client does
    wait, on this clock) without the test sleeping for real.
    """

    def __init__(self) -> None:
        self.now = 10_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        """The current fake time in seconds."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the fake time by ``seconds`` and yield to the loop once."""
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


@pytest.fixture
def instant_time() -> InstantTime:
    """Fake time for buckets and retry backoff."""
    return InstantTime()
