"""The publish handler: runbook 1 (publish failed) and 4 (performance budget, images).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``publish`` and ``retry_publish`` actions (``rollback.py`` rolls back, ``publish_record.py``
records a publish the planner blocked). Calls the builder
(``build/content.py``, ``build/site.py``), the budget check (``core/budget.py``), the
Cloudflare adapter (Direct Upload, deployment status, rollback, purge) and
:class:`~reconciler.runtime.records.Records` for ``publish_versions``, ``sites`` and
``performance_budgets``.

A publish, step by step (checkpoints in quotes)::

    building row + content_json (one batch) ─▶ parse + build (time limit) ─▶ budget ─▶ deploying row
      ─▶ look for our deployment (resumed or an unfinished row) ─▶ upload  "publish.after-upload"
      ─▶ poll until live (timeout) ─▶ purge hosts  "publish.after-purge"
      ─▶ ONE batch: row live + previous live superseded + sites version + budget sizes

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
reused, not duplicated.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from reconciler.build.content import parse_snapshot
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.identity import builder_fingerprint
from reconciler.build.site import BuildOutput, build_site
from reconciler.core.budget import MediaWeight, check_budget, describe_violations
from reconciler.core.identity import BuildInputs
from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import BUILD_FAILURE_PREFIX, Action, JsonValue
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare_models import Deployment, DeploymentTag
from reconciler.providers.shared_calls import deployment_poll_delays
from reconciler.runtime.actions.world import World, guarded, text_of
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import BuildSizes, Records

__all__ = ["ENVIRONMENTS", "PublishHandler", "budget_of", "hosts_of", "int_of", "publish_id_of"]

ENVIRONMENTS = ("production", "preview")


def publish_id_of(action: Action) -> str:
    """The deployment tag's publish id: the first 12 hex digits of the action id."""
    return action.id[:12]


def hosts_of(after: Mapping[str, JsonValue]) -> list[str]:
    value = after.get("hosts")
    return [h for h in value if isinstance(h, str)] if isinstance(value, list) else []


def _scripts(after: Mapping[str, JsonValue]) -> list[str]:
    value = after.get("scripts")
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def budget_of(after: Mapping[str, JsonValue]) -> dict[str, int] | None:
    value = after.get("budget")
    if not isinstance(value, dict):
        return None
    limits = {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
    keys = ("max_js_kb", "max_css_kb", "max_third_party_scripts")
    return limits if all(k in limits for k in keys) else None


def int_of(value: JsonValue, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


_UNLIMITED = 2**62  # a plan from before image limits existed: no image limit to check


class _Limits:
    """A budget mapping seen through ``core.budget.BudgetLimits``."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.max_js_kb = limits["max_js_kb"]
        self.max_css_kb = limits["max_css_kb"]
        self.max_third_party_scripts = limits["max_third_party_scripts"]
        self.max_image_kb = limits.get("max_image_kb", _UNLIMITED)
        self.max_page_weight_kb = limits.get("max_page_weight_kb", _UNLIMITED)


def _sizes(build: BuildOutput) -> BuildSizes:
    return BuildSizes(
        js_kb=build.js_kb,
        css_kb=build.css_kb,
        third_party_scripts=build.third_party_scripts,
        image_kb=build.image_kb,
        page_weight_kb=build.page_weight_kb,
    )


def _media(build: BuildOutput) -> MediaWeight:
    return MediaWeight(
        image_kb=build.image_kb,
        largest_image=build.largest_image,
        page_weight_kb=build.page_weight_kb,
        heaviest_page=build.heaviest_page,
    )


def _inputs(
    site: str, version: int, content: str, column: str | None, scripts: list[str]
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
        scripts=tuple(scripts),
        builder=builder_fingerprint(),
    )


def _stage_text(deployment: Deployment) -> str:
    stage = deployment.failed_stage or deployment.latest_stage
    if stage is None:
        return "no stage reported"
    return f"stage {stage.name} {stage.status}"


class PublishHandler:
    """``publish`` and ``retry_publish``: build, check, upload, wait, purge, record."""

    provider: str = "cloudflare"

    def __init__(self, world: World) -> None:
        """Act through ``world``."""
        self.world = world
        self.records = Records(world.db)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Publish ``action.after["version"]`` of the site to its environment."""
        return await guarded(action, self._publish(action, ctx))

    async def _publish(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        site = text_of(after.get("site"))
        tenant = text_of(after.get("tenant"), site)
        project = text_of(after.get("project"), site)
        env = text_of(after.get("environment"), "production")
        version = int_of(after.get("version"), 0)
        attempt = int_of(after.get("attempt"), 1)
        commit = text_of(after.get("commit")) or None
        if env not in ENVIRONMENTS or not site or version < 1:
            return Outcome(
                action.id, Status.FAILED_PERMANENT, message=f"malformed publish action {after}"
            )
        cf = self.world.cloudflare
        records = self.records

        if ctx.resumed:
            done = await self._already_live(project, site, env, version)
            if done is not None:
                return Outcome(
                    action.id,
                    Status.UNCHANGED,
                    message=f"version {version} is already live as deployment {done}",
                    data={"deployment_id": done},
                )

        opened = await records.open_publish(
            site=site,
            tenant=tenant,
            project=project,
            environment=env,
            version=version,
            attempt=attempt,
            commit=commit,
            now=ctx.now(),
        )
        row_id, stored = opened.row_id, opened.content
        ctx.progress(f"{site} {env}: building version {version}")

        if stored is None:
            return await self._failed(
                action,
                row_id,
                f"{BUILD_FAILURE_PREFIX}version {version} has no content snapshot in site_versions",
                ctx,
            )
        content, column = stored
        inputs: BuildInputs | None = None
        try:
            inputs = _inputs(site, version, content, column, _scripts(after))
            ctx.progress(f"{site} {env}: building version {version} (images on a worker thread)")
            build = await asyncio.to_thread(
                build_site,
                parse_snapshot(content),
                site=site,
                version=version,
                assets=self.world.assets,
                scripts=_scripts(after),
                deadline=ctx.now() + self.world.settings.build_time_limit,
                clock=ctx.now,
                variants=self.world.variants,
            )
        except BuildError as exc:
            return await self._failed(
                action, row_id, BUILD_FAILURE_PREFIX + exc.message, ctx, inputs=inputs
            )

        sizes = _sizes(build)
        budget = budget_of(after) or opened.budget
        if budget is not None:
            violations = check_budget(
                js_kb=build.js_kb,
                css_kb=build.css_kb,
                third_party_scripts=build.third_party_scripts,
                budget=_Limits(budget),
                media=_media(build),
            )
            if violations:
                return await self._failed(
                    action, row_id, describe_violations(violations), ctx, sizes=sizes, inputs=inputs
                )

        await records.publish_deploying(
            row_id,
            content_hash=build.content_hash,
            sizes=sizes,
            commit=commit,
            build_identity=inputs.identity,
            build_inputs=inputs.to_json(),
        )
        info = await cf.project(project)  # observation has just read it
        branch = info.production_branch if env == "production" else None
        branch = branch or (self.world.settings.preview_branch if env == "preview" else "main")
        tag = DeploymentTag(
            site=site,
            version=version,
            publish=publish_id_of(action),
            commit=commit or "",
            branch=branch,
            content=build.content_hash,
            build=inputs.identity,
        )

        deployment: Deployment | None = None
        if ctx.resumed or opened.reused:
            deployment = await self._find_ours(project, env, tag)
        if deployment is None:
            ctx.progress(f"{site} {env}: uploading {len(build.files)} files")
            deployment = await cf.create_deployment(
                project,
                files=build.files,
                branch=branch,
                commit_hash=tag.commit,
                commit_message=tag.commit_message(),
                manifest=build.manifest,
                content_types=build.content_types,
            )
        ctx.checkpoint("publish.after-upload")

        deployment = await self._wait(project, deployment, ctx)
        if deployment.state != "live":
            if deployment.state == "in_progress":
                problem = (
                    f"deployment {deployment.id} did not finish within "
                    f"{self.world.settings.deploy_timeout:g}s ({_stage_text(deployment)})"
                )
            else:
                problem = (
                    f"deployment {deployment.id} {deployment.state}: {_stage_text(deployment)}"
                )
            await records.publish_failed(
                row_id, problem, now=ctx.now(), deployment_id=deployment.id
            )
            return Outcome(
                action.id,
                Status.FAILED_TRANSIENT,
                message=problem,
                data={"deployment_id": deployment.id},
            )

        hosts = hosts_of(after)
        if hosts:
            ctx.progress(f"{site} {env}: purging {len(hosts)} hosts")
            await cf.purge_hosts(hosts)  # shares a request with concurrent publishes
        ctx.checkpoint("publish.after-purge")

        await records.publish_live(
            row_id,
            site=site,
            environment=env,
            version=version,
            deployment_id=deployment.id,
            url=deployment.url,
            now=ctx.now(),
            sizes=sizes,
            budget=budget,
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"version {version} live as deployment {deployment.id}",
            data={
                "deployment_id": deployment.id,
                "url": deployment.url,
                "content_hash": build.content_hash,
                "js_kb": build.js_kb,
                "css_kb": build.css_kb,
                "build_identity": inputs.identity,
                "images_encoded": build.images_encoded,
                "images_cached": build.images_cached,
                "media_original_bytes": build.media_original_bytes,
                "media_variant_bytes": build.media_variant_bytes,
            },
        )

    async def _failed(
        self,
        action: Action,
        row_id: int,
        message: str,
        ctx: ActionContext,
        *,
        sizes: BuildSizes | None = None,
        inputs: BuildInputs | None = None,
    ) -> Outcome:
        """Record a build or budget failure; the same input fails the same way (permanent).

        The failure is recorded with the build identity it happened under, so the planner
        retries once any input changes (a version fixed in place, a script removed).
        """
        await self.records.publish_failed(
            row_id,
            message,
            now=ctx.now(),
            sizes=sizes,
            build_identity=inputs.identity if inputs is not None else None,
            build_inputs=inputs.to_json() if inputs is not None else None,
        )
        return Outcome(action.id, Status.FAILED_PERMANENT, message=message)

    async def _already_live(self, project: str, site: str, env: str, version: int) -> str | None:
        """The deployment id when a previous run finished this publish (D1 live + Pages live)."""
        live = await self.records.live_publish(site, env)
        if live is None or live.version != version or live.deployment_id is None:
            return None
        try:
            found = await self.world.cloudflare.get_deployment(project, live.deployment_id)
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
