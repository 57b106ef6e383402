"""A pass's heavy steps leave the event loop free: while they run, another coroutine runs.

Each heavy step is wrapped so that it waits (on its thread) until a probe coroutine on the
event loop has run once it started: if the step ran on the loop, the probe could not run and
the step gives up and fails the test. No timing threshold decides anything; the wait's
timeout only stops a broken run from hanging.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from reconciler.core.plan import PlanSettings
from reconciler.providers.dns import SandboxResolver
from reconciler.runtime import observe as observe_module
from reconciler.runtime import pipeline as pipeline_module
from reconciler.runtime.offloop import OFF_LOOP_SITES, off_loop
from reconciler.runtime.pipeline import plan_pass
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import Specs

from support.plan import EXAMPLE_SPECS, clients, close, converged, example_specs

GIVE_UP = 30.0  # seconds a held step waits for the loop before it fails the test


class LoopProbe:
    """Holds wrapped steps until a coroutine on the event loop has run while they wait."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.held: list[str] = []

    def hold(self, name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        """``step``, made to wait for the loop before it runs."""

        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            if not self.released.wait(GIVE_UP):
                raise AssertionError(f"{name} held the event loop: the probe never ran")
            self.held.append(name)
            return step(*args, **kwargs)

        return held

    async def run(self, stop: asyncio.Event) -> None:
        """Each time a held step has started, let it go (from the event loop)."""
        while not stop.is_set():
            if self.entered.is_set():
                self.released.set()
            await asyncio.sleep(0.001)


@pytest.fixture
def world() -> Iterator[Sandbox]:
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        yield sandbox


@pytest.fixture
def specs(world: Sandbox) -> Specs:
    loaded = example_specs()
    converged.converge(world.cloudflare, world.cloudflare.d1_path, loaded)
    return loaded


async def test_a_large_step_runs_on_a_worker_thread_and_a_small_one_inline() -> None:
    loop_thread = threading.get_ident()
    assert await off_loop(None, threading.get_ident) != loop_thread
    assert await off_loop(OFF_LOOP_SITES + 1, threading.get_ident) != loop_thread
    assert await off_loop(OFF_LOOP_SITES, threading.get_ident) == loop_thread


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (observe_module, "observed_hostnames"),
        (observe_module, "hostnames_to_check"),
        (observe_module, "pages_needed"),
        (observe_module, "about_to_publish"),
        (pipeline_module, "derive"),
        (pipeline_module, "build_plan"),
    ],
)
async def test_a_whole_fleet_pass_joins_derives_and_plans_while_the_loop_runs(
    world: Sandbox, specs: Specs, monkeypatch: pytest.MonkeyPatch, module: object, name: str
) -> None:
    probe = LoopProbe()
    monkeypatch.setattr(module, name, probe.hold(name, getattr(module, name)))
    customers = [t.spec.stripe.customer for t in specs.tenants.values()]
    observers = clients(world, stripe=converged.FakeStripe(customers))
    observers = replace(observers, dns=SandboxResolver(world.control_url))
    stop = asyncio.Event()
    probing = asyncio.create_task(probe.run(stop))
    try:
        made = await plan_pass(
            specs, clients=observers, now=world.clock.now(), settings=PlanSettings
        )
    finally:
        stop.set()
        await probing
        await close(observers)
    assert probe.held == [name]
    assert made.plan.is_empty
