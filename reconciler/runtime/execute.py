"""The executor: the only code that changes the world, one plan at a time.

Called by ``commands/apply.py`` (and the daemon's pass); calls one
:class:`~reconciler.runtime.handler.Handler` per action kind (``runtime/actions/``) and writes
the intent journal (``runtime/journal.py``) around every call.

Rules (tests in tests/runtime/test_execute.py cite them):

1. Dependency order: an action starts only after every action it depends on has finished
   (``graphlib``). Dependencies outside the plan are ignored, as the planner ignores them.
2. Bounded concurrency per provider: at most ``limits[handler.provider]`` actions of one
   provider run at once (1 when the provider is not listed). Among ready actions, the urgent
   lane (rollbacks, unlocks) starts first, then plan order.
3. An action whose dependency did not succeed is ``BLOCKED`` and never attempted; its message
   names the failed dependency. Independent actions go on.
4. Intent before effect: the journal row is written (``pending``) before the handler runs and
   finished (``done``/``failed``) after it returns. If the row cannot be written, the handler
   does not run and the action fails transiently.
5. An earlier run's row decides how the action runs:

   - ``done`` and finished at or after the plan's observation (``plan.planned_at``): the world
     was observed before that success, so the plan is behind; ``UNCHANGED``, handler not
     called.
   - ``done`` but finished before the observation: the world was seen after that success and
     still differs (it drifted back), so the action runs again.
   - ``pending`` (the process died mid-action) or ``failed`` (a timeout or 5xx may still have
     taken effect): the action runs again.

   Whenever a row existed, the handler gets ``ctx.resumed=True`` and looks before acting.
6. ``ProviderError`` raised by a handler becomes an outcome (transient or permanent) here, and
   only here (:func:`provider_outcome`; handlers let them propagate). Any other exception is a
   bug: the intent is recorded as failed with the error, actions already running
   are allowed to finish, nothing new starts, and the exception propagates.
7. Checkpoints ``execute.after-intent`` and ``execute.before-finish`` surround every handler
   call (the crash tests kill the process there).
8. Shared D1 round trips (``runtime/journal.py`` rule 5): a handler's opening statements ride
   in its intent's batch, its outcome and closing statements (``ctx.record``) are queued and
   ride in front of the next intent's batch; the rest is written when the plan is done. An
   outcome that could not be written says so in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from graphlib import TopologicalSorter

from reconciler.core.outcome import Outcome, Report, Status
from reconciler.core.plan import Action, ActionKind, Plan
from reconciler.core.provider import Provider
from reconciler.errors import PermanentError, PlanError, ProviderError, TransientError
from reconciler.providers.d1 import Statement, StatementResult
from reconciler.runtime.handler import ActionContext, Checkpoints, Handler, Opens, no_checkpoints
from reconciler.runtime.journal import Journal, Prior, outcome_from_json

__all__ = ["DEFAULT_LIMITS", "Progress", "execute", "provider_outcome"]

# Publishes mostly wait for Pages (a deployment takes about 15 s) and the token allows 4
# requests a second: 16 at once keep the token busy, and their purges share requests.
DEFAULT_LIMITS: Mapping[str, int] = {Provider.CLOUDFLARE: 16, Provider.D1: 4, Provider.WHATSAPP: 1}


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of an execution, for progress display.

    ``outcome`` is None when the action is starting; ``index`` counts finished actions
    (1-based) when it is set, and the actions started so far otherwise.
    """

    index: int
    total: int
    action: Action
    outcome: Outcome | None
    seconds: float


def _quiet(progress: Progress) -> None:
    """The default progress sink: nothing is shown."""


@dataclass(slots=True)
class _Run:
    """Mutable bookkeeping of one execution."""

    plan: Plan
    handlers: Mapping[ActionKind, Handler]
    journal: Journal
    limits: Mapping[str, int]
    now: Callable[[], float]
    checkpoint: Checkpoints
    progress: Callable[[Progress], None]
    handler_progress: Callable[[Action, str], None]
    monotonic: Callable[[], float]
    by_id: dict[str, Action] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    ready: list[Action] = field(default_factory=list)
    running: dict[asyncio.Task[Outcome], Action] = field(default_factory=dict)
    bug: BaseException | None = None
    started: int = 0
    finished: int = 0


async def execute(
    plan: Plan,
    *,
    handlers: Mapping[ActionKind, Handler],
    journal: Journal,
    limits: Mapping[str, int] = DEFAULT_LIMITS,
    now: Callable[[], float],
    checkpoint: Checkpoints = no_checkpoints,
    progress: Callable[[Progress], None] = _quiet,
    handler_progress: Callable[[Action, str], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Report:
    """Run the plan's actions (see the module rules) and report every outcome in plan order.

    Args:
        plan: the plan to execute; ``plan.blocked`` items are never attempted.
        handlers: one handler per action kind the plan uses.
        journal: the intent journal.
        limits: maximum concurrent actions per provider (``handler.provider``).
        now: the injected clock (epoch seconds), also given to handlers.
        checkpoint: named crash points (production: no-ops).
        progress: called when each action starts and finishes.
        handler_progress: where handlers' own progress messages go (``ctx.progress``).
        monotonic: the clock that times actions for display.

    Returns:
        The plan and one outcome per action, in plan order.

    Raises:
        PlanError: an action kind has no handler, or two actions share an id; nothing ran.
        Exception: whatever a handler raised that is not a ``ProviderError`` (a bug), after its
            intent was recorded as failed and the actions already running finished.
    """
    run = _Run(
        plan=plan,
        handlers=handlers,
        journal=journal,
        limits=limits,
        now=now,
        checkpoint=checkpoint,
        progress=progress,
        handler_progress=handler_progress or (lambda action, message: None),
        monotonic=monotonic,
        by_id=_index(plan, handlers),
    )
    await _drive(run)
    if run.bug is not None:
        if run.running:
            await asyncio.wait(run.running)
            for task in run.running:
                task.exception()  # retrieved: only the first bug propagates
        await journal.flush()
        raise run.bug
    await journal.flush()
    for action_id, problem in journal.unrecorded().items():
        outcome = run.outcomes[action_id]
        note = f"(outcome not recorded, the next run will look again: {problem})"
        run.outcomes[action_id] = replace(outcome, message=f"{outcome.message} {note}".strip())
    return Report(plan=plan, outcomes=tuple(run.outcomes[a.id] for a in plan.actions))


def _index(plan: Plan, handlers: Mapping[ActionKind, Handler]) -> dict[str, Action]:
    """The plan's actions by id; refused before anything runs when one cannot run at all."""
    by_id: dict[str, Action] = {}
    for action in plan.actions:
        if action.id in by_id:
            raise PlanError(f"two actions share the id {action.id} ({action.target})")
        if action.kind not in handlers:
            raise PlanError(f"no handler for {action.kind.value} actions ({action.target})")
        by_id[action.id] = action
    return by_id


async def _drive(run: _Run) -> None:
    """Run the schedule; a cancelled pass cancels its actions and waits for them."""
    try:
        await _schedule(run)
    except asyncio.CancelledError:
        # The pass itself is cancelled (stop, lost lease): its actions must not outlive it.
        # Cancel them and wait, so nothing keeps calling providers in the background; their
        # intents stay pending and the next pass looks before acting.
        for task in run.running:
            task.cancel()
        await asyncio.gather(*run.running, return_exceptions=True)
        run.journal.discard()
        raise


async def _schedule(run: _Run) -> None:
    """Start actions as their dependencies finish (rules 1-3) until all are done or a bug."""
    position = {action.id: index for index, action in enumerate(run.plan.actions)}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for action in run.plan.actions:
        sorter.add(action.id, *(dep for dep in action.depends_on if dep in run.by_id))
    sorter.prepare()
    while sorter.is_active() and run.bug is None:
        run.ready.extend(run.by_id[action_id] for action_id in sorter.get_ready())
        run.ready.sort(key=lambda a: (a.lane.rank, position[a.id]))
        progressed = _start_ready(run, sorter)
        if progressed and not run.running:
            continue  # only blocks were settled: new actions may be ready now
        if not run.running:
            break  # defensive: nothing ready, nothing running (graphlib forbids it)
        done, _ = await asyncio.wait(run.running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            action = run.running.pop(task)
            run.in_flight[run.handlers[action.kind].provider] -= 1
            sorter.done(action.id)
            error = task.exception()
            if error is not None:
                run.bug = run.bug or error


def _start_ready(run: _Run, sorter: TopologicalSorter[str]) -> bool:
    """Block what a failed dependency stops, start what its provider's limit allows.

    Returns:
        Whether anything was blocked or started.
    """
    progressed = False
    for action in list(run.ready):
        failed_dep = _failed_dependency(action, run.by_id, run.outcomes)
        if failed_dep is not None:
            run.ready.remove(action)
            _finish(run, action, _blocked(action, failed_dep, run.outcomes), seconds=0.0)
            sorter.done(action.id)
            progressed = True
            continue
        provider = run.handlers[action.kind].provider
        if run.in_flight.get(provider, 0) >= max(1, run.limits.get(provider, 1)):
            continue
        run.ready.remove(action)
        run.in_flight[provider] = run.in_flight.get(provider, 0) + 1
        run.running[asyncio.create_task(_perform(run, action))] = action
        progressed = True
    return progressed


def _failed_dependency(
    action: Action, by_id: Mapping[str, Action], outcomes: Mapping[str, Outcome]
) -> Action | None:
    for dep in action.depends_on:
        outcome = outcomes.get(dep)
        if dep in by_id and outcome is not None and not outcome.succeeded:
            return by_id[dep]
    return None


def _blocked(action: Action, dep: Action, outcomes: Mapping[str, Outcome]) -> Outcome:
    upstream = outcomes[dep.id]
    if upstream.status is Status.BLOCKED:
        message = upstream.message  # name the root failure, not the chain
    else:
        detail = upstream.message or upstream.status.value
        message = f"blocked: {dep.kind.value} {dep.target} failed: {detail}"
    return Outcome(action_id=action.id, status=Status.BLOCKED, message=message)


def _finish(run: _Run, action: Action, outcome: Outcome, *, seconds: float) -> None:
    run.outcomes[action.id] = outcome
    run.finished += 1
    run.progress(
        Progress(
            index=run.finished,
            total=len(run.plan.actions),
            action=action,
            outcome=outcome,
            seconds=seconds,
        )
    )


async def _perform(run: _Run, action: Action) -> Outcome:
    """Journal, call the handler, journal again; returns the outcome it also records."""
    started = run.monotonic()
    run.started += 1
    run.progress(
        Progress(
            index=run.started, total=len(run.plan.actions), action=action, outcome=None, seconds=0
        )
    )
    handler = run.handlers[action.kind]
    try:
        prior, opened = await _open(run, action, handler)
        if prior is not None and prior.is_current(run.plan.planned_at):
            skip = _already_done(action, prior)
            _finish(run, action, skip, seconds=run.monotonic() - started)
            return skip
    except ProviderError as exc:
        outcome = provider_outcome(action, exc, prefix="could not write the intent: ")
        _finish(run, action, outcome, seconds=run.monotonic() - started)
        return outcome
    run.checkpoint("execute.after-intent")
    closing: list[Statement] = []
    ctx = ActionContext(
        now=run.now,
        revision=run.plan.revision,
        resumed=prior is not None,
        checkpoint=run.checkpoint,
        progress=lambda message: run.handler_progress(action, message),
        opened=opened,
        record=closing.extend,
    )
    try:
        outcome = await handler(action, ctx)
    except ProviderError as exc:
        outcome = provider_outcome(action, exc)
    except Exception as exc:
        # If even that write fails, the intent stays pending: the next run resumes it.
        with contextlib.suppress(ProviderError):
            await run.journal.crash(action, exc)
        raise
    if outcome.action_id != action.id:
        outcome = replace(outcome, action_id=action.id)
    run.checkpoint("execute.before-finish")
    run.journal.defer_finish(action, outcome, closing)  # rule 8
    _finish(run, action, outcome, seconds=run.monotonic() - started)
    return outcome


async def _open(
    run: _Run, action: Action, handler: Handler
) -> tuple[Prior | None, tuple[StatementResult, ...] | None]:
    """The intent, with the handler's opening statements when it has some (rule 8)."""
    if not isinstance(handler, Opens):
        prior = await run.journal.begin(
            action, revision=run.plan.revision, planned_at=run.plan.planned_at
        )
        return prior, None
    unless = run.journal.unless_done(action, run.plan.planned_at)
    return await run.journal.open(
        action,
        revision=run.plan.revision,
        planned_at=run.plan.planned_at,
        opening=handler.opening(action, run.now(), unless),
    )


def _already_done(action: Action, prior: Prior) -> Outcome:
    """UNCHANGED, with the data the earlier success recorded (rule 5)."""
    stored = outcome_from_json(action.id, prior.outcome or {})
    return Outcome(
        action_id=action.id,
        status=Status.UNCHANGED,
        message="already done by an earlier run (intent journal)",
        data=stored.data if stored is not None else {},
    )


def provider_outcome(action: Action, exc: ProviderError, *, prefix: str = "") -> Outcome:
    """The outcome of a provider failure (rule 6): transient with its ``retry_after``, or
    permanent; ``prefix`` says which step failed."""
    if isinstance(exc, TransientError):
        return Outcome(
            action_id=action.id,
            status=Status.FAILED_TRANSIENT,
            message=f"{prefix}{exc}",
            retry_after=exc.retry_after,
        )
    status = Status.FAILED_PERMANENT if isinstance(exc, PermanentError) else Status.FAILED_TRANSIENT
    return Outcome(action_id=action.id, status=status, message=f"{prefix}{exc}")
