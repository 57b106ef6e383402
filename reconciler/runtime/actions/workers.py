"""The Worker handler: deploy an existing version of one of the platform's Workers, health-gated.

Registered by ``runtime/actions/__init__.py`` for ``deploy_worker_version`` and
``rollback_worker_version``; called by ``runtime/execute.py``. Reads only the typed
``action.payload`` (``core/payloads_platform.py``, made by ``core/plan_workers.py``): the split
to serve (version ids), the split to return to, and the health check. Never uploads code.

Steps (runbook 6, "Deploy Broken: rollback immediately", without a human):

1. With a health check, a ``checking`` row goes to D1 ``worker_rollouts`` first (with the split
   to return to), so a run killed after the deployment is checked again on the next pass.
2. A ``deploy_worker_version`` with a health check and a split schedule (``steps``) serves the new
   version at each step's percentage, checking each; then the whole split asked for.
3. The check GETs the URL :data:`PROBES` times; any status outside ``expect`` (or no answer)
   fails it. On failure traffic goes back to the split it replaced at once, the row becomes
   ``turned_back`` with what the check saw, and the outcome fails permanently with both: the
   plan then blocks that version (gate ``health``) until the spec changes.
4. Otherwise the row becomes ``live``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

import httpx

from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import (
    HealthCheck,
    WorkerSplitEntry,
    WorkerVersionPayload,
    payload_as,
)
from reconciler.core.plan import Action, ActionKind
from reconciler.core.provider import Provider
from reconciler.runtime.actions.world import World, applied
from reconciler.runtime.handler import ActionContext

__all__ = ["PROBES", "WorkerHandler", "http_status"]

PROBES = 20
"""GETs per health check: enough that a 10 % canary is reached (2 of 20 on an even split)."""


async def http_status(url: str) -> int | str:
    """GET ``url``: its status, or what went wrong instead of an answer."""
    try:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
            return (await client.get(url)).status_code
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"


def _words(entries: Sequence[WorkerSplitEntry]) -> str:
    return " and ".join(f"version {e.number} at {round(e.percentage)} %" for e in entries)


class WorkerHandler:
    """``deploy_worker_version`` and ``rollback_worker_version`` (module docstring)."""

    provider: str = Provider.CLOUDFLARE

    def __init__(
        self,
        world: World,
        kind: ActionKind,
        probe: Callable[[str], Awaitable[int | str]] = http_status,
    ) -> None:
        """Act through ``world``'s Cloudflare client and database; ``probe`` GETs a URL."""
        self._world = world
        self._kind = kind
        self._probe = probe

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Deploy, check, and turn back on a failed check."""
        want = payload_as(action.payload, WorkerVersionPayload)
        script, check = want.script, want.health
        target, back = want.versions, want.return_to
        newest = max(entry.number for entry in target)
        if check is not None:
            await self._record(script, newest, "checking", target, back, "", "", ctx)
        for stage in self._stages(target, back, check):
            await self._deploy(script, stage, ctx)
            ctx.checkpoint("worker.after-deploy")
            failure = await self._judge(check)
            if failure is not None:
                return await self._turn_back(action, script, newest, target, back, failure, ctx)
        if check is not None:
            await self._record(script, newest, "live", target, back, "", "", ctx)
        return applied(action, f"{script} serves {_words(target)}")

    def _stages(
        self,
        target: Sequence[WorkerSplitEntry],
        back: Sequence[WorkerSplitEntry],
        check: HealthCheck | None,
    ) -> list[Sequence[WorkerSplitEntry]]:
        """The splits to serve in order: the schedule's steps, then the split asked for."""
        if check is None or self._kind is not ActionKind.DEPLOY_WORKER_VERSION or len(target) != 1:
            return [target]
        old = [entry for entry in back if entry.version_id != target[0].version_id]
        if len(old) != 1:
            return [target]
        new = target[0]
        steps = [
            [
                WorkerSplitEntry(new.version_id, new.number, step),
                WorkerSplitEntry(old[0].version_id, old[0].number, 100 - step),
            ]
            for step in check.steps
        ]
        return [*steps, target]

    async def _deploy(
        self, script: str, split: Sequence[WorkerSplitEntry], ctx: ActionContext
    ) -> None:
        ctx.progress(f"{script}: serving {_words(split)}")
        versions = [(entry.version_id, entry.percentage) for entry in split]
        await self._world.cloudflare.deploy_worker(script, versions, f"reconciler: {_words(split)}")

    async def _judge(self, check: HealthCheck | None) -> str | None:
        """None when healthy; otherwise what the check saw."""
        if check is None:
            return None
        for _ in range(PROBES):
            status = await self._probe(check.url)
            if status not in check.expect:
                expected = ", ".join(str(s) for s in check.expect)
                return f"GET {check.url} answered {status} (expected {expected})"
        return None

    async def _turn_back(
        self,
        action: Action,
        script: str,
        newest: int,
        target: Sequence[WorkerSplitEntry],
        back: Sequence[WorkerSplitEntry],
        failure: str,
        ctx: ActionContext,
    ) -> Outcome:
        if not back:
            message = f"health check failed: {failure}; no earlier split is known to return to"
            return Outcome(action.id, Status.FAILED_PERMANENT, message=message)
        await self._deploy(script, back, ctx)
        ctx.checkpoint("worker.after-turn-back")
        await self._record(script, newest, "turned_back", target, back, _words(back), failure, ctx)
        message = f"health check failed: {failure}; traffic returned to {_words(back)}"
        return Outcome(action.id, Status.FAILED_PERMANENT, message=message)

    async def _record(
        self,
        script: str,
        newest: int,
        status: str,
        target: Sequence[WorkerSplitEntry],
        back: Sequence[WorkerSplitEntry],
        returned_to: str,
        error: str,
        ctx: ActionContext,
    ) -> None:
        return_to = json.dumps([[entry.version_id, entry.percentage] for entry in back])
        await self._world.db.execute(
            "INSERT INTO worker_rollouts (script, version, split, status, return_to, "
            "returned_to, error, revision, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                script,
                newest,
                _words(target),
                status,
                return_to,
                returned_to,
                error,
                ctx.revision,
                ctx.now(),
            ),
        )
