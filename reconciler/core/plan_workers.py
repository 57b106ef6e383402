"""plan_workers: the platform's own Workers, pinned to versions (runbook 6, "Deploy Broken").

Called by :func:`reconciler.core.plan.build_plan`; fills the :class:`PlanBuilder`. Pure.

Rules (tests in tests/core/test_plan_workers.py cite them):

1. A Worker whose serving split differs from the spec's gets one action: ``rollback_worker_version``
   (urgent lane) when the spec's newest version is older than the newest one serving, else
   ``deploy_worker_version``. Both name existing versions only: a deployment of a version Cloudflare
   already holds, never an upload, so a ``git revert`` of a bump rolls back at once.
2. A version the spec names that Cloudflare does not hold is blocked (gate
   ``missing_worker_version``,
   at the spec line): nothing is uploaded, nothing else changes for that Worker.
3. A script Cloudflare does not show is blocked (gate ``missing_worker``); a Workers reading
   that failed blocks every Worker change (gate ``incomplete``).
4. When the health gate turned back the latest rollout of a version the spec still asks for,
   the move is blocked (gate ``health``) and a note says where traffic went, until the spec
   changes (another version, or the revert that makes it agree with what serves).
5. ``after`` carries the split by version id and number, the split to return to
   (``before``), and the health check, so the executor needs nothing else.
7. A scoped observation (PR mode) reads only the Workers the PR changes; the others are not
   planned at all.
6. A rollout recorded ``checking`` (a run deployed it and stopped before judging its health
   check) whose split serves and is still asked for is planned again: the same deployment
   (harmless, it already serves) and the check, with the recorded split to return to; one
   stopped part-way through its schedule returns to that recorded split too, not to the
   partial split it left serving.
"""

from __future__ import annotations

from reconciler.core.observed import Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.worker_facts import DesiredWorker, ObservedWorker, Split, describe
from reconciler.spec.vocabulary import Kind

__all__ = ["plan_workers", "worker_target"]


def worker_target(name: str) -> str:
    """``Worker/api``: the plan target of a Worker document."""
    return f"Worker/{name}"


def plan_workers(builder: PlanBuilder) -> None:
    """Plan every declared Worker (module rules)."""
    for name, worker in builder.desired.workers.items():
        _plan_one(builder, name, worker)


def _kind(desired: Split, serving: Split | None) -> ActionKind:
    if serving is None:
        return ActionKind.DEPLOY_WORKER_VERSION
    newest_wanted = max(number for number, _ in desired)
    newest_serving = max(number for number, _ in serving)
    return (
        ActionKind.ROLLBACK_WORKER_VERSION
        if newest_wanted < newest_serving
        else ActionKind.DEPLOY_WORKER_VERSION
    )


def _plan_one(builder: PlanBuilder, name: str, worker: DesiredWorker) -> None:
    target = worker_target(name)
    source = builder.source(Kind.WORKER, name, "spec.production.version")
    block = builder.blocker(target, tenant=None, site=None, source=source)
    unreadable = builder.incomplete(Source.WORKERS)
    observed = builder.observed
    if observed.scope is not None and worker.script not in observed.worker_scripts:
        return  # rule 7: a PR that does not touch this Worker did not look at it
    seen = observed.workers.get(worker.script)
    if seen is None:
        if unreadable is not None:
            block(ActionKind.DEPLOY_WORKER_VERSION, gate="incomplete", reason=unreadable)
        else:
            block(
                ActionKind.DEPLOY_WORKER_VERSION,
                gate="missing_worker",
                reason=f"Worker script {worker.script} does not exist on the account",
            )
        return
    serving = seen.split()
    if serving == worker.split:
        _check_again(builder, name, worker, seen)
        return
    kind = _kind(worker.split, serving)
    missing = [number for number, _ in worker.split if number not in seen.versions]
    if missing:
        held = ", ".join(str(n) for n in sorted(seen.versions)) or "none"
        block(
            kind,
            gate="missing_worker_version",
            reason=f"version {missing[0]} of {worker.script} does not exist (versions: {held}); "
            "nothing is uploaded: deploy it with wrangler first, or name an existing version",
        )
        return
    if _turned_back(builder, worker, target):
        return
    builder.add(
        kind,
        target,
        tenant=None,
        site=None,
        before=_before(seen, serving),
        after=_unjudged(builder, worker, seen) or _after(worker, seen, serving),
        reason=_reason(kind, worker, serving),
        source=source,
        cause=Cause.CHANGE,
    )


def _turned_back(builder: PlanBuilder, worker: DesiredWorker, target: str) -> bool:
    """Rule 4: block a move the health gate already turned back, and say so."""
    rollout = builder.observed.worker_rollouts.get(worker.script)
    if rollout is None or rollout.status != "turned_back":
        return False
    if rollout.version not in {number for number, _ in worker.split}:
        return False
    source = builder.source(Kind.WORKER, worker.name, "spec.production.version")
    builder.block(
        ActionKind.DEPLOY_WORKER_VERSION,
        target,
        tenant=None,
        site=None,
        gate="health",
        reason=f"version {rollout.version} of {worker.script} failed its health check "
        f"({rollout.error}); traffic went back to {rollout.returned_to}",
        source=source,
    )
    builder.note(
        target,
        tenant=None,
        site=None,
        category="rolled_back",
        reason=f"{worker.script} serves {rollout.returned_to} since version {rollout.version} "
        "failed its health check; change the spec (a fixed version, or revert the bump) to go on",
    )
    return True


def _unjudged(
    builder: PlanBuilder, worker: DesiredWorker, seen: ObservedWorker
) -> dict[str, JsonValue] | None:
    """Rule 6: after a run stopped mid-rollout, return to the split it recorded as last good."""
    rollout = builder.observed.worker_rollouts.get(worker.script)
    if rollout is None or rollout.status != "checking" or not rollout.return_to:
        return None
    if rollout.version not in {number for number, _ in worker.split}:
        return None
    numbers = {version_id: number for number, version_id in seen.versions.items()}
    back: list[JsonValue] = [
        {"number": numbers.get(v, 0), "percentage": round(p), "version_id": v}
        for v, p in rollout.return_to
    ]
    return {**_after(worker, seen, None), "return_to": back}


def _check_again(
    builder: PlanBuilder, name: str, worker: DesiredWorker, seen: ObservedWorker
) -> None:
    """Rule 6: a rollout deployed but never judged (the run stopped) is checked again."""
    rollout = builder.observed.worker_rollouts.get(worker.script)
    if rollout is None or rollout.status != "checking" or worker.health is None:
        return
    after = _unjudged(builder, worker, seen)
    if after is None:
        return
    builder.add(
        ActionKind.DEPLOY_WORKER_VERSION,
        worker_target(name),
        tenant=None,
        site=None,
        before={"versions": _versions(seen, worker.split)},
        after=after,
        reason=f"check {worker.script} {describe(worker.split)} again: a run deployed it and "
        f"stopped before its health check was judged (GET {worker.health.url})",
        source=builder.source(Kind.WORKER, name, "spec.production.version"),
        cause=Cause.DRIFT,
    )


def _versions(seen: ObservedWorker, split: Split) -> list[JsonValue]:
    return [
        {"number": number, "percentage": percentage, "version_id": seen.versions[number]}
        for number, percentage in split
    ]


def _before(seen: ObservedWorker, serving: Split | None) -> dict[str, JsonValue]:
    if serving is None:
        return {"serving": [list(item) for item in seen.serving]}
    return {"versions": _versions(seen, serving)}


def _after(
    worker: DesiredWorker, seen: ObservedWorker, serving: Split | None
) -> dict[str, JsonValue]:
    after: dict[str, JsonValue] = {
        "script": worker.script,
        "versions": _versions(seen, worker.split),
        "return_to": [] if serving is None else _versions(seen, serving),
        "health": None,
    }
    if worker.health is not None:
        after["health"] = {
            "url": worker.health.url,
            "expect": list(worker.health.expect),
            "steps": list(worker.health.steps),
        }
    return after


def _reason(kind: ActionKind, worker: DesiredWorker, serving: Split | None) -> str:
    now = "an unknown version" if serving is None else describe(serving)
    verb = "roll back" if kind is ActionKind.ROLLBACK_WORKER_VERSION else "deploy"
    gate = "" if worker.health is None else f", checked by GET {worker.health.url}"
    return f"{verb} {worker.script} to {describe(worker.split)} (serving {now}){gate}"
