"""Fixtures of the runbook scenarios: one sandbox per session, a fresh world per test.

``scenario_sandbox`` (session) starts the whole :class:`~reconciler.sandbox.world.Sandbox`
once: the Cloudflare and Evolution simulators on loopback and localstripe as a separate process
(slow to start, so shared). ``world`` (function) resets it: the Cloudflare simulator back to its
initial state with an empty D1 file, migrated again; ``RECONCILER_SANDBOX_CONTROL`` set, so the
handlers' waits for a deployment advance the virtual clock instead of sleeping; the Evolution
simulator back to an open instance and empty logs; localstripe's store flushed; the shared
clock frozen, so only the scenario moves time. The sandbox's settings are put in the
environment for the in-process CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import migrate
from reconciler.sandbox.localstripe import LocalStripeError
from reconciler.sandbox.world import Sandbox
from reconciler.wiring import SANDBOX_CONTROL_ENV

from support.scenario import MIGRATIONS, Fleet, Scenario

_CLEARED = ("RECONCILER_CRASH_AT",)


@pytest.fixture(scope="session")
def scenario_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The whole local world, started once for every scenario."""
    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("scenario-sandbox"), with_stripe=True)
    try:
        sandbox.start()
    except LocalStripeError as exc:
        pytest.fail(f"the sandbox could not start localstripe: {exc}")
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _migrate(path: Path) -> None:
    async def run() -> None:
        async with SqliteDatabase(path) as db:
            await migrate(db, MIGRATIONS)

    asyncio.run(run())


@pytest.fixture
def world(
    scenario_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scenario]:
    """The session's sandbox reset to an empty, migrated world, its settings in the env."""
    sandbox = scenario_sandbox
    sandbox.clock.freeze()
    cloudflare = sandbox.cloudflare
    cloudflare.reset()
    sandbox.evolution.reset()
    sandbox.stripe.flush()
    _migrate(cloudflare.d1_path)
    for name, value in sandbox.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANDBOX_CONTROL_ENV, sandbox.control_url)
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    yield Scenario(sandbox=sandbox, fleet=Fleet(root=tmp_path / "specs"))
    cloudflare.faults.clear()
