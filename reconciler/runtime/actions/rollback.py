"""The rollback handler: point production at an existing deployment (runbook 1, git revert).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``rollback`` actions; calls the Cloudflare adapter (Pages rollback, project, purge) and
:class:`~reconciler.runtime.records.Records`. It never builds: when the target deployment is
gone the outcome says so and the next plan rebuilds the version instead.
"""

from __future__ import annotations

from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import RollbackPayload, payload_as
from reconciler.core.plan import Action
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare_models import Deployment
from reconciler.runtime.actions.world import WorldHandler, applied
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import PublishTarget

__all__ = ["RollbackHandler"]


class RollbackHandler(WorldHandler):
    """``rollback``: point production at an existing deployment, purge, record; never rebuild."""

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Roll production back to the payload's ``deployment_id``."""
        want = payload_as(action.payload, RollbackPayload)
        target = want.deployment_id
        if ctx.resumed and await self._already_done(want):
            return Outcome(
                action.id,
                Status.UNCHANGED,
                message=f"production already serves deployment {target}",
                data={"deployment_id": target},
            )
        ctx.progress(f"{want.site}: rolling production back to deployment {target}")
        try:
            deployment = await self.world.cloudflare.rollback_deployment(want.project, target)
        except NotFoundError:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=(
                    f"deployment {target} of version {want.version} is gone; the next plan will "
                    "rebuild and publish the version instead"
                ),
            )
        ctx.checkpoint("rollback.after-rollback")
        if not await self._switched(want.project, target, deployment, ctx):
            return Outcome(
                action.id,
                Status.FAILED_TRANSIENT,
                message=(
                    f"production did not switch to deployment {target} within "
                    f"{self.world.settings.rollback_timeout:g}s"
                ),
            )
        await self._record(want, deployment, ctx)
        return applied(
            action,
            f"production rolled back to deployment {target} (version {want.version})",
            data={"deployment_id": target, "url": deployment.url},
        )

    async def _record(
        self, want: RollbackPayload, deployment: Deployment, ctx: ActionContext
    ) -> None:
        """Purge the site's hosts, then record the rollback target live in D1."""
        if want.hosts:
            await self.world.cloudflare.purge_cache(hosts=list(want.hosts))
        ctx.checkpoint("rollback.after-purge")
        target = PublishTarget(
            want.site, want.tenant, want.project, want.environment, want.version, want.commit
        )
        await self.records.record_rollback(
            target, deployment_id=want.deployment_id, url=deployment.url, now=ctx.now()
        )

    async def _already_done(self, want: RollbackPayload) -> bool:
        """A resumed rollback whose effect is there: D1 records it live and Pages serves it."""
        target = want.deployment_id
        live = await self.records.live_publish(want.site, want.environment)
        serving = (await self.world.cloudflare.get_project(want.project)).canonical_deployment
        return (
            live is not None
            and live.deployment_id == target
            and serving is not None
            and serving.id == target
        )

    async def _switched(
        self, project: str, target: str, answer: Deployment, ctx: ActionContext
    ) -> bool:
        """Poll until production serves ``target``; False when the rollback timeout passes.

        ``canonical_deployment`` has two readings (CONTRACT.md §9 item 3): the deployment that
        serves, or the most recent production deployment, which stays on the newer one after a
        rollback. Under the second, the rollback's own ``answer`` naming the target is the proof
        (``core/plan_sites.canonical_is_latest`` reads observations the same way).
        """
        deadline = ctx.now() + self.world.settings.rollback_timeout
        while True:
            serving = (await self.world.cloudflare.get_project(project)).canonical_deployment
            if serving is not None and serving.id == target:
                return True
            if serving is not None and answer.id == target and _newer(serving, answer):
                return True
            if ctx.now() >= deadline:
                return False
            await self.world.sleep(self.world.settings.deploy_poll_interval)


def _newer(serving: Deployment, target: Deployment) -> bool:
    """Whether ``serving`` was created after ``target`` (ISO-8601 times compare as text)."""
    return bool(serving.created_on and target.created_on) and serving.created_on > target.created_on
