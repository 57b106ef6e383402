"""The publish handler: runbook 1 (publish failed) and 4 (performance budget, images).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``publish`` and ``retry_publish`` actions (``rollback.py`` rolls back, ``publish_record.py``
records a publish the planner blocked). Calls the builder
(``build/content.py``, ``build/site.py``), the budget check (``core/budget.py``), the
Cloudflare adapter (Direct Upload, deployment status, rollback, purge) and
:class:`~reconciler.runtime.records.Records` for ``publish_versions``, ``sites`` and
``performance_budgets``.

A publish, step by step (checkpoints in quotes)::

    building row + content_json + budget (in the intent's batch: ``opening``)
      ─▶ parse + build (time limit) ─▶ budget
      ─▶ look for our deployment (resumed or an unfinished row) ─▶ upload  "publish.after-upload"
      ─▶ poll until live (timeout) ─▶ purge hosts  "publish.after-purge"
      ─▶ ONE batch, with the journal's result (``ctx.record``): row live with its build's
         hash, sizes and identity + previous live superseded + sites version + budget sizes

Build identity (``core/identity.py``): the publisher digests the inputs it builds from (the
SHA-256 of the ``content_json`` it read, which must equal the row's ``content_hash``; the Site's
scripts; the builder and encoder fingerprint), records them on the publish row and tags the
deployment with the identity, so the planner can tell a live build from the one wanted now.
Images are optimised on a worker thread (``build/media.py``); their variants are cached in R2
beside the originals, so a republish encodes nothing, and the Direct Upload sends only the
files Pages reports missing.

Crash safety: the deployment carries a tag with the site, version, a publish id derived from
the action id, and the build's content hash. A build is deterministic, so a rerun after a
crash rebuilds the same content hash and, before uploading, lists the project's deployments
for one with this publish id or this site/version/content that is live or in progress, and
waits for it instead of uploading again. The unfinished ``building``/``deploying`` row is
reused, not duplicated. Called directly (no ``ctx.opened``/``ctx.record``), the handler
writes its two batches itself.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.build.content import parse_snapshot
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.identity import builder_fingerprint
from reconciler.build.site import BuildOutput, build_site
from reconciler.core.budget import Budget, MediaWeight, check_budget, describe_violations
from reconciler.core.identity import BuildInputs
from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import PublishPayload, payload_as
from reconciler.core.plan import BUILD_FAILURE_PREFIX, Action
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare_models import Deployment, DeploymentTag
from reconciler.providers.d1 import Statement
from reconciler.providers.shared_calls import deployment_poll_delays
from reconciler.runtime.actions.by_name import copy_fields
from reconciler.runtime.actions.world import WorldHandler, applied
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import BuildRecord, BuildSizes, OpenedPublish, PublishTarget

__all__ = ["PublishHandler", "publish_id_of"]


def publish_id_of(action: Action) -> str:
    """The deployment tag's publish id: the first 12 hex digits of the action id."""
    return action.id[:12]


def _inputs(
    site: str, version: int, content: str, column: str | None, scripts: tuple[str, ...]
) -> BuildInputs:
    """The inputs of this build; the row's content_hash must be the digest of its JSON.

    Raises:
        BuildError: ``site_versions.content_hash`` disagrees with ``content_json`` (the editor
            wrote one without the other); building would record an identity the planner
            never sees, and republish forever.
    """
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    if column is not None and column.lower() != digest:
        raise BuildError(
            f"site_versions.content_hash of version {version} ({column[:12]}) is not the "
            f"sha256 of its content_json ({digest[:12]}); the editor must write both together",
            reason=BuildFailure.INVALID_CONTENT,
        )
    return BuildInputs(
        site=site,
        version=version,
        content=digest,
        scripts=scripts,
        builder=builder_fingerprint(),
    )


def _stored_budget(limits: Mapping[str, int] | None) -> Budget | None:
    """The limits D1's ``performance_budgets`` holds, for a plan that carries none."""
    if limits is None:
        return None
    return Budget(
        max_js_kb=limits["max_js_kb"],
        max_css_kb=limits["max_css_kb"],
        max_third_party_scripts=limits["max_third_party_scripts"],
    )


def _stage_text(deployment: Deployment) -> str:
    stage = deployment.failed_stage or deployment.latest_stage
    if stage is None:
        return "no stage reported"
    return f"stage {stage.name} {stage.status}"


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One publish under way: its input, its ``publish_versions`` row, whether it resumes."""

    action: Action
    want: PublishPayload
    row_id: int
    resumes: bool  # an earlier run left the intent or the row: look for our deployment first
    content: tuple[str, str | None] | None  # (content_json, content_hash); None: no snapshot
    stored_budget: Mapping[str, int] | None  # performance_budgets' limits, for a plan without


@dataclass(frozen=True, slots=True)
class _Built:
    """A build within its budget, with what the live row records of it."""

    output: BuildOutput
    inputs: BuildInputs
    sizes: BuildSizes
    budget: Budget | None


def _target(want: PublishPayload) -> PublishTarget:
    """The publish row's site, environment, version and commit."""
    return PublishTarget(
        want.site, want.tenant, want.project, want.environment, want.version, want.commit
    )


def _record_of(built: _Built) -> BuildRecord:
    """What the live row records of the build."""
    return BuildRecord(
        content_hash=built.output.content_hash,
        sizes=built.sizes,
        identity=built.inputs.identity,
        inputs=built.inputs.to_json(),
    )


def _applied(action: Action, deployment: Deployment, built: _Built) -> Outcome:
    build = built.output
    return applied(
        action,
        f"version {built.inputs.version} live as deployment {deployment.id}",
        data={
            "deployment_id": deployment.id,
            "url": deployment.url,
            "content_hash": build.content_hash,
            "js_kb": build.js_kb,
            "css_kb": build.css_kb,
            "build_identity": built.inputs.identity,
            "images_encoded": build.images_encoded,
            "images_cached": build.images_cached,
            "media_original_bytes": build.media_original_bytes,
            "media_variant_bytes": build.media_variant_bytes,
        },
    )


class PublishHandler(WorldHandler):
    """``publish`` and ``retry_publish``: build, check, upload, wait, purge, record."""

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Publish the payload's version of the site to its environment (module docstring)."""
        want = payload_as(action.payload, PublishPayload)
        opened = None if ctx.opened is None else self.records.opened(ctx.opened)
        if ctx.resumed:
            done = await self._already_live(want)
            if done is not None:
                if opened is not None:  # the intent's batch started a row for nothing
                    await self._record(ctx, self.records.unused(opened))
                return Outcome(
                    action.id,
                    Status.UNCHANGED,
                    message=f"version {want.version} is already live as deployment {done}",
                    data={"deployment_id": done},
                )
        attempt = await self._start(action, want, ctx, opened)
        built = await self._build(attempt, ctx)
        if isinstance(built, Outcome):
            return built
        deployment = await self._deploy(attempt, built, ctx)
        if deployment.state != "live":
            return await self._not_live(attempt, built, deployment, ctx)
        if want.hosts:
            ctx.progress(f"{want.site} {want.environment}: purging {len(want.hosts)} hosts")
            await self.world.cloudflare.purge_hosts(
                list(want.hosts)
            )  # shared with concurrent publishes
        ctx.checkpoint("publish.after-purge")
        live = self.records.live_statements(
            attempt.row_id,
            _target(want),
            deployment_id=deployment.id,
            url=deployment.url,
            now=ctx.now(),
            build=_record_of(built),
            budget=built.budget.limits() if built.budget is not None else None,
        )
        await self._record(ctx, live)
        return _applied(action, deployment, built)

    def opening(self, action: Action, now: float, unless: Statement) -> list[Statement]:
        """The ``building`` row and the build's inputs, run in the intent's batch."""
        return self._open_statements(payload_as(action.payload, PublishPayload), now, unless)

    def _open_statements(
        self, want: PublishPayload, now: float, unless: Statement | None
    ) -> list[Statement]:
        return self.records.open_statements(
            _target(want), attempt=want.attempt, now=now, unless=unless
        )

    async def _record(self, ctx: ActionContext, statements: list[Statement]) -> None:
        """Closing writes: with the journal's result when the executor offers it, else now."""
        if ctx.record is not None:
            ctx.record(statements)
        elif statements:
            await self.records.db.batch(statements)

    async def _start(
        self, action: Action, want: PublishPayload, ctx: ActionContext, opened: OpenedPublish | None
    ) -> _Attempt:
        """The ``building`` row (an unfinished one of this version reused), the content snapshot
        and the stored budget: one D1 batch, the intent's when the executor ran ``opening``."""
        if opened is None:
            statements = self._open_statements(want, ctx.now(), None)
            opened = self.records.opened(await self.records.db.batch(statements))
        ctx.progress(f"{want.site} {want.environment}: building version {want.version}")
        resumes = ctx.resumed or opened.reused
        return _Attempt(action, want, opened.row_id, resumes, opened.content, opened.budget)

    async def _build(self, attempt: _Attempt, ctx: ActionContext) -> _Built | Outcome:
        """Build the stored snapshot and check it against the budget; a failure is recorded."""
        want = attempt.want
        stored = attempt.content
        if stored is None:
            problem = f"version {want.version} has no content snapshot in site_versions"
            return await self._failed(attempt, BUILD_FAILURE_PREFIX + problem, ctx)
        content, column = stored
        inputs: BuildInputs | None = None
        try:
            inputs = _inputs(want.site, want.version, content, column, want.scripts)
            ctx.progress(
                f"{want.site} {want.environment}: building version {want.version} "
                "(images on a worker thread)"
            )
            build = await asyncio.to_thread(
                build_site,
                parse_snapshot(content),
                site=want.site,
                version=want.version,
                assets=self.world.assets,
                scripts=list(want.scripts),
                deadline=ctx.now() + self.world.settings.build_time_limit,
                clock=ctx.now,
                variants=self.world.variants,
            )
        except BuildError as exc:
            return await self._failed(attempt, BUILD_FAILURE_PREFIX + exc.message, ctx, inputs)
        sizes = copy_fields(BuildSizes, build)
        budget = want.budget or _stored_budget(attempt.stored_budget)
        if budget is not None:
            violations = check_budget(
                js_kb=build.js_kb,
                css_kb=build.css_kb,
                third_party_scripts=build.third_party_scripts,
                budget=budget,
                media=copy_fields(MediaWeight, build),
            )
            if violations:
                message = describe_violations(violations)
                return await self._failed(attempt, message, ctx, inputs, sizes)
        return _Built(build, inputs, sizes, budget)

    async def _deploy(self, attempt: _Attempt, built: _Built, ctx: ActionContext) -> Deployment:
        """Our deployment: found again, or uploaded; then waited on."""
        want, build = attempt.want, built.output
        cf = self.world.cloudflare
        tag = await self._tag(attempt, built)
        deployment = None
        if attempt.resumes:
            deployment = await self._find_ours(want.project, want.environment, tag)
        if deployment is None:
            ctx.progress(f"{want.site} {want.environment}: uploading {len(build.files)} files")
            deployment = await cf.create_deployment(
                want.project,
                files=build.files,
                branch=tag.branch,
                commit_hash=tag.commit,
                commit_message=tag.commit_message(),
                manifest=build.manifest,
                content_types=build.content_types,
            )
        ctx.checkpoint("publish.after-upload")
        return await self._wait(want.project, deployment, ctx)

    async def _tag(self, attempt: _Attempt, built: _Built) -> DeploymentTag:
        """The deployment's tag: this publish, its content and build, on the right branch."""
        want = attempt.want
        info = await self.world.cloudflare.project(want.project)  # observation has just read it
        branch = info.production_branch if want.environment == "production" else None
        preview = want.environment == "preview"
        branch = branch or (self.world.settings.preview_branch if preview else "main")
        return DeploymentTag(
            site=want.site,
            version=want.version,
            publish=publish_id_of(attempt.action),
            commit=want.commit or "",
            branch=branch,
            content=built.output.content_hash,
            build=built.inputs.identity,
        )

    async def _not_live(
        self, attempt: _Attempt, built: _Built, deployment: Deployment, ctx: ActionContext
    ) -> Outcome:
        """A deployment that failed or did not finish in time: recorded, retried later."""
        if deployment.state == "in_progress":
            problem = (
                f"deployment {deployment.id} did not finish within "
                f"{self.world.settings.deploy_timeout:g}s ({_stage_text(deployment)})"
            )
        else:
            problem = f"deployment {deployment.id} {deployment.state}: {_stage_text(deployment)}"
        failed = self.records.failed_statements(
            attempt.row_id,
            problem,
            now=ctx.now(),
            sizes=built.sizes,
            deployment_id=deployment.id,
            build_identity=built.inputs.identity,
            build_inputs=built.inputs.to_json(),
            content_hash=built.output.content_hash,
        )
        await self._record(ctx, failed)
        return Outcome(
            attempt.action.id,
            Status.FAILED_TRANSIENT,
            message=problem,
            data={"deployment_id": deployment.id},
        )

    async def _failed(
        self,
        attempt: _Attempt,
        message: str,
        ctx: ActionContext,
        inputs: BuildInputs | None = None,
        sizes: BuildSizes | None = None,
    ) -> Outcome:
        """Record a build or budget failure; the same input fails the same way (permanent).

        The failure is recorded with the build identity it happened under, so the planner
        retries once any input changes (a version fixed in place, a script removed).
        """
        failed = self.records.failed_statements(
            attempt.row_id,
            message,
            now=ctx.now(),
            sizes=sizes,
            build_identity=inputs.identity if inputs is not None else None,
            build_inputs=inputs.to_json() if inputs is not None else None,
        )
        await self._record(ctx, failed)
        return Outcome(attempt.action.id, Status.FAILED_PERMANENT, message=message)

    async def _already_live(self, want: PublishPayload) -> str | None:
        """The deployment id when a previous run finished this publish (D1 live + Pages live)."""
        live = await self.records.live_publish(want.site, want.environment)
        if live is None or live.version != want.version or live.deployment_id is None:
            return None
        try:
            found = await self.world.cloudflare.get_deployment(want.project, live.deployment_id)
        except NotFoundError:
            return None
        return found.id if found.state == "live" else None

    async def _find_ours(self, project: str, env: str, tag: DeploymentTag) -> Deployment | None:
        """The newest deployment of this publish (or this exact content) not failed."""
        found = await self.world.cloudflare.list_deployments(
            project, env="production" if env == "production" else "preview"
        )
        matches = []
        for deployment in found:
            mine = deployment.tag
            if mine is None or deployment.state not in ("live", "in_progress"):
                continue
            same_publish = mine.publish == tag.publish
            same_content = (
                mine.site == tag.site
                and mine.version == tag.version
                and mine.content == tag.content[:12]
                and mine.build == tag.build[:12]
            )
            if same_publish or same_content:
                matches.append(deployment)
        if not matches:
            return None
        return max(matches, key=lambda d: (d.created_on, d.id))

    async def _wait(self, project: str, deployment: Deployment, ctx: ActionContext) -> Deployment:
        """Poll until the deployment is no longer in progress, or the timeout passes.

        The first read waits as long as a deployment usually takes, the next ones back off.
        """
        settings = self.world.settings
        deadline = ctx.now() + settings.deploy_timeout
        delays = deployment_poll_delays(settings.deploy_expected, settings.deploy_poll_interval)
        while deployment.state == "in_progress" and ctx.now() < deadline:
            await self.world.sleep(min(next(delays), max(0.0, deadline - ctx.now())))
            deployment = await self.world.cloudflare.get_deployment(project, deployment.id)
        return deployment
