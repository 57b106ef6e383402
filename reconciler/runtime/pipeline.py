"""The pipeline of one pass: observe the world, derive the desired facts, plan.

Called by ``reconciler plan`` and ``reconciler apply`` (``commands/plan.py``) and by the
daemon's pass (``runtime/daemon_pass.py``): there is no second pipeline. It calls the
observation (``runtime/observe.py``) and the pure core (:func:`~reconciler.core.desired.derive`,
:func:`~reconciler.core.plan.build_plan`); executing the plan is the caller's step.

Rules:

1. Same specs, observation, ``now`` and settings: same plan (the core is pure).
2. Derive once, only the sites and tenants named (``derive(..., scope=...)``; the daemon names
   its key's); the planner, the conditions and the timers reuse it.
3. A whole-fleet derive and plan takes seconds of CPU on a large fleet: it runs off the event
   loop (``runtime/offloop.py``), so a daemon keeps renewing its lease and serving webhooks
   meanwhile; so does a replan, and a scoped one over many sites (the moving sweep's). A
   small scope costs milliseconds and runs inline. The CLI's plan is the same either way.
4. The planner's settings are read once the observation is done (the daemon's approvals may
   arrive while it reads).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.core.desired import Desired, derive
from reconciler.core.observed import Observed
from reconciler.core.plan import Plan, PlanSettings, build_plan
from reconciler.runtime.observe import ObserveClients, observe
from reconciler.runtime.offloop import off_loop
from reconciler.spec.load import Specs

__all__ = ["Pass", "plan_pass", "replan"]


@dataclass(frozen=True, slots=True)
class Pass:
    """One plan and what it was made from."""

    desired: Desired
    observed: Observed
    plan: Plan
    narrowed: bool = False  # cut down by --target or a lever (core.levers): not the whole plan


async def plan_pass(
    specs: Specs,
    *,
    clients: ObserveClients,
    now: float,
    settings: Callable[[], PlanSettings],
    scope: Collection[str] | None = None,
    hostnames: Collection[str] = (),
    workers: Collection[str] = (),
    derive_scope: Collection[str] | None = None,
    tenants: Collection[str] = (),
    progress: Callable[[str], None] | None = None,
    check: Callable[[Observed], None] | None = None,
) -> Pass:
    """Observe what ``specs`` describe (or the part ``scope`` names), derive and plan.

    Args:
        specs: the desired specs.
        clients: the read-only clients.
        now: the clock for the observation, derive and the plan, epoch seconds.
        settings: the planner's settings, read after the observation (rule 4).
        scope: the site names to observe; None: the whole fleet.
        hostnames: hostnames to look up beyond the scope's (domains a change removed).
        workers: in a scoped observation, the Worker scripts to read.
        derive_scope: the site names to derive; None: the whole fleet. A daemon pass
            derives what it observes; a pull request's plan derives the whole fleet over
            its scoped observation, as its base's plan does.
        tenants: in a scoped derive, tenants to derive beyond its sites' (a tenant key's).
        progress: called with a short line as each provider finishes.
        check: called with the observation before anything is derived; it may raise.

    Returns:
        The desired facts, the observation and the plan.
    """
    observed = await observe(
        specs,
        clients=clients,
        now=now,
        scope=scope,
        hostnames=hostnames,
        workers=workers,
        progress=progress,
    )
    if check is not None:
        check(observed)

    plan_settings = settings()  # here, on the event loop (rule 4)

    def think() -> Pass:
        desired = derive(specs, observed.billing, now=now, scope=derive_scope, tenants=tenants)
        plan = build_plan(desired, observed, plan_settings)
        return Pass(desired, observed, plan, narrowed=plan_settings.selection.narrowed)

    return await off_loop(None if derive_scope is None else len(derive_scope), think)  # rule 3


async def replan(made: Pass, observed: Observed, settings: PlanSettings) -> Pass:
    """``made``'s desired facts planned again on a richer ``observed`` (same scope)."""
    sites = None if observed.scope is None else len(observed.scope)
    plan = await off_loop(sites, lambda: build_plan(made.desired, observed, settings))
    return Pass(made.desired, observed, plan, narrowed=settings.selection.narrowed)
