"""Record a publish its build blocked: one ``failed`` ``publish_versions`` row (runbook 1).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``record_publish_failure`` actions; writes through
:class:`~reconciler.runtime.records.Records` only (D1), with the build identity the failure
happened under, so the planner retries once an input changes.
"""

from __future__ import annotations

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, ActionKind
from reconciler.runtime.actions.publish import ENVIRONMENTS, int_of
from reconciler.runtime.actions.world import World, guarded, text_of
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import BuildSizes, Records

__all__ = ["RecordPublishFailureHandler"]


class RecordPublishFailureHandler:
    """``record_publish_failure``: one ``failed`` publish row for a publish its build blocked.

    The planner blocked the publish (gate ``build`` or ``budget``), so nothing is built or
    uploaded here: the row records the plan's error where runbook 1 tells operators to look.
    Idempotent: when the newest row of the site and environment already records this version
    as failed with the same error, nothing is written (``unchanged``).
    """

    provider: str = "d1"

    def __init__(self, world: World) -> None:
        """Write through ``world.db``."""
        self.records = Records(world.db)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Insert the ``failed`` row unless it is already there."""
        return await guarded(action, self._record(action, ctx))

    async def _record(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        site = text_of(after.get("site"))
        env = text_of(after.get("environment"), "production")
        version = int_of(after.get("version"), 0)
        error = text_of(after.get("error_message"))
        if (
            action.kind is not ActionKind.RECORD_PUBLISH_FAILURE
            or env not in ENVIRONMENTS
            or not site
            or version < 1
            or not error
        ):
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"malformed record_publish_failure action {dict(after)}",
            )
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
        sizes_value = after.get("sizes")
        sizes = None
        if isinstance(sizes_value, dict):
            sizes = BuildSizes(
                js_kb=int_of(sizes_value.get("js_kb"), 0),
                css_kb=int_of(sizes_value.get("css_kb"), 0),
                third_party_scripts=int_of(sizes_value.get("third_party_scripts"), 0),
                image_kb=int_of(sizes_value.get("image_kb"), 0),
                page_weight_kb=int_of(sizes_value.get("page_weight_kb"), 0),
            )
        await self.records.record_publish_failure(
            site=site,
            tenant=text_of(after.get("tenant"), site),
            project=text_of(after.get("project"), site),
            environment=env,
            version=version,
            commit=text_of(after.get("commit")) or None,
            content_hash=text_of(after.get("content_hash")) or None,
            error_message=error,
            sizes=sizes,
            now=ctx.now(),
            build_identity=text_of(after.get("build_identity")) or None,
            build_inputs=text_of(after.get("build_inputs")) or None,
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"recorded version {version} of {site} {env} as failed: {error}",
        )
