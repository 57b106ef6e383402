"""Record a publish its build blocked: one ``failed`` ``publish_versions`` row (runbook 1).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``record_publish_failure`` actions; writes through
:class:`~reconciler.runtime.records.Records` only (D1), with the build identity the failure
happened under, so the planner retries once an input changes.
"""

from __future__ import annotations

from dataclasses import asdict

from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import RecordPublishFailurePayload, payload_as
from reconciler.core.plan import Action
from reconciler.core.provider import Provider
from reconciler.runtime.actions.world import WorldHandler, applied
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import BuildSizes, PublishTarget

__all__ = ["RecordPublishFailureHandler"]


class RecordPublishFailureHandler(WorldHandler):
    """``record_publish_failure``: one ``failed`` publish row for a publish its build blocked.

    The planner blocked the publish (gate ``build`` or ``budget``), so nothing is built or
    uploaded here: the row records the plan's error where runbook 1 tells operators to look.
    Idempotent: when the newest row of the site and environment already records this version
    as failed with the same error, nothing is written (``unchanged``).
    """

    provider: str = Provider.D1

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Insert the ``failed`` row unless it is already there."""
        want = payload_as(action.payload, RecordPublishFailurePayload)
        site, env, version, error = want.site, want.environment, want.version, want.error_message
        latest = await self.records.latest_publish(site, env)
        if (
            latest is not None
            and latest.version == version
            and latest.status == "failed"
            and latest.error_message == error
        ):
            return Outcome(
                action.id,
                Status.UNCHANGED,
                message=f"version {version} is already recorded as failed",
            )
        sizes = want.sizes  # the same five figures the records name BuildSizes
        await self.records.record_publish_failure(
            PublishTarget(site, want.tenant, want.project, env, version, want.commit),
            content_hash=want.content_hash,
            error_message=error,
            sizes=None if sizes is None else BuildSizes(**asdict(sizes)),
            now=ctx.now(),
            build_identity=want.build_identity,
            build_inputs=want.build_inputs,
        )
        return applied(
            action,
            f"recorded version {version} of {site} {env} as failed: {error}",
        )
