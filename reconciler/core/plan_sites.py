"""plan_sites: the planner's site area: publish, rollback, retry and record a failed publish.

Called by :func:`reconciler.core.plan.build_plan` once per site in scope (rules 4, 5, 7, 8 and
9 of ``core.plan``). Fills a :class:`~reconciler.core.plan_builder.PlanBuilder` with
``rollback``, ``publish``, ``retry_publish``, ``record_publish_failure`` and (the ``purge``
lever only) ``purge_cache`` actions, or blocks them behind a gate; calls ``core.budget`` to
check an in-memory build and ``core.identity`` to compare the build wanted now with the one
live (or last failed). Pure.

Build identity (``core/identity.py``): a live version whose recorded identity differs from the
identity a build would have now (content edited in place, scripts, builder or encoder changed)
is republished, with the changed inputs as the reason; a failure recorded for other inputs
than today's does not block (a version fixed in place is rebuilt), and neither does a build
failure whose in-memory build now succeeds (the missing object was uploaded to R2). Rows or
deployments without an identity (made before it existed) are compared by version alone.

A publish stuck at the retry cap waits for a change when the failure was ours (the content
does not build, the budget): those are blocked until the version changes. One that failed
on the provider's side (deployment failures) is tried again by itself once
``PlanSettings.stuck_cooldown`` has passed since its last attempt. The ``publish`` lever
(requeue, or redeploy the live version) and ``clear_stuck`` force one attempt now, through
the same gates (a hard-locked tenant's publish is refused).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.budget import BudgetMetric, check_budget, describe_violations
from reconciler.core.desired import DesiredSite
from reconciler.core.identity import BuildInputs, describe_changes, is_stale, wanted_inputs
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import (
    BuildPreview,
    ObservedDeployment,
    ObservedProject,
    PublishRecord,
    Source,
)
from reconciler.core.plan import (
    BUDGET_FAILURE_PREFIX,
    BUILD_FAILURE_PREFIX,
    ActionKind,
    Cause,
    JsonValue,
    is_permanent_build_failure,
)
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.plan_site_levers import (
    past_the_cap,
    plan_purge,
    plan_redeploy,
    stuck_reason,
)
from reconciler.spec.models import Kind


def note_unclaimed_projects(builder: PlanBuilder) -> None:
    """A Pages project that D1 records for a site no spec declares, and that no Site of the
    specs claims, is noted ``unmanaged`` (plan rule 3): left alone, never deleted."""
    claimed = {site.pages_project for site in builder.desired.sites.values()}
    for site, project in sorted(builder.observed.unclaimed_projects.items()):
        if project in claimed:
            continue  # another site took it over
        builder.note(
            f"PagesProject/{project}",
            tenant=None,
            site=None,
            category="unmanaged",
            reason=(
                f"D1 records it for site {site}, which no spec declares, and no Site claims "
                "it: left alone, never deleted or published to"
            ),
        )


def plan_site(builder: PlanBuilder, site: DesiredSite) -> None:
    """Plan a site's production, then its preview, environment.

    Args:
        builder: The collector of this plan.
        site: The derived site, in scope.
    """
    _plan_env_lever(builder, site, "production", site.production)
    if site.preview is not None:
        _plan_env_lever(builder, site, "preview", site.preview)
    plan_purge(builder, site)


def _plan_env_lever(builder: PlanBuilder, site: DesiredSite, env: str, version: int) -> None:
    target = f"Site/{site.name}:{env}"
    lever = builder.lever(target, LeverKind.PUBLISH, LeverKind.CLEAR_STUCK)
    if lever is None:
        _plan_environment(builder, site, env, version, None)
        return
    mark = builder.mark()
    _plan_environment(builder, site, env, version, lever)
    if builder.attribute(mark):
        return
    verb = "publish" if lever.kind is LeverKind.PUBLISH else "clear"
    builder.note(
        target,
        tenant=site.tenant,
        site=site.name,
        category="unchanged",
        reason=(
            f"{env} serves version {version} as the spec asks and nothing is stuck: "
            f"nothing to {verb}"
        ),
    )
    builder.attribute(mark)


def _plan_environment(
    builder: PlanBuilder, site: DesiredSite, env: str, version: int, lever: Lever | None
) -> None:
    target = f"Site/{site.name}:{env}"
    field_path = f"spec.{env}.version"
    source = builder.source(Kind.SITE, site.name, field_path)
    block = builder.blocker(target, tenant=site.tenant, site=site.name, source=source)
    d1_gap = builder.incomplete(Source.D1)
    pages_gap = builder.incomplete(Source.PAGES)
    if d1_gap is not None:
        builder.note(target, tenant=site.tenant, site=site.name, category="waiting", reason=d1_gap)
        return
    ledger = builder.observed.ledger.get(site.name)
    live = ledger.live.get(env) if ledger is not None else None
    latest = ledger.latest.get(env) if ledger is not None else None
    project = builder.observed.projects.get(site.pages_project)
    wanted = _wanted_inputs(builder, site, version)
    stale = _stale(live, wanted) if live is not None and live.version == version else None

    if pages_gap is not None:
        if live is None or live.version != version:
            block(
                ActionKind.PUBLISH,
                gate="incomplete",
                reason=f"version {version} is wanted but {pages_gap}",
            )
        return
    if project is None and live is not None and live.version == version and stale is None:
        # The ledger agrees, so Pages was not read this pass (DESIGN.md section 7).
        if lever is not None and lever.kind is LeverKind.PUBLISH:
            _redeploy(builder, site, env, version, live, source, wanted)
        return
    if project is None:
        builder.block(
            ActionKind.PUBLISH,
            target,
            tenant=site.tenant,
            site=site.name,
            gate="missing_project",
            reason=(
                f"Pages project {site.pages_project!r} does not exist; create it in "
                "Cloudflare (the reconciler publishes into projects, it does not create them)"
            ),
            source=builder.source(Kind.SITE, site.name, "spec.pages_project"),
        )
        return

    if live is not None and live.version == version and stale is None:
        serving = project.production_deployment_id
        if env != "production" or serving is None or serving == live.deployment_id:
            if lever is not None and lever.kind is LeverKind.PUBLISH:
                _redeploy(builder, site, env, version, live, source, wanted)
            return  # converged
        if project.deployments is None:
            return  # deployments not listed this pass: no evidence the recorded one is gone
        if canonical_is_latest(project, live):
            return  # production is on the recorded rollback target (the "latest" reading)
        deployment = _find(project, deployment_id=live.deployment_id)
        if deployment is not None:
            builder.add(
                ActionKind.ROLLBACK,
                target,
                tenant=site.tenant,
                site=site.name,
                before={"deployment_id": serving, "version": version},
                after=_rollback_after(site, env, version, deployment, builder.desired.revision),
                reason=(
                    f"production serves deployment {serving}, not {live.deployment_id} "
                    f"(version {version}, recorded live in D1); point it back, no rebuild"
                ),
                source=source,
                cause=Cause.DRIFT,
            )
            return
        # The recorded deployment is gone: fall through to a rebuild.

    before: dict[str, JsonValue] = {
        "version": live.version if live is not None else None,
        "deployment_id": live.deployment_id if live is not None else None,
    }
    was = f"at version {live.version}" if live is not None else "not published yet"
    policy = builder.desired.tenants[site.tenant].policy
    if env == "production":
        candidate = _find(
            project,
            site=site.name,
            version=version,
            env=env,
            build=_build_tag(wanted),
            untagged=stale is None,
        )
        if candidate is not None:
            builder.add(
                ActionKind.ROLLBACK,
                target,
                tenant=site.tenant,
                site=site.name,
                before=before,
                after=_rollback_after(site, env, version, candidate, builder.desired.revision),
                reason=(
                    f"{env} is {was}; the spec asks for version {version}, which has a "
                    f"successful deployment {candidate.id}: roll back to it, no rebuild"
                ),
                source=source,
                cause=Cause.CHANGE,
            )
            return

    build = builder.observed.builds.get((site.name, version))
    kind = ActionKind.PUBLISH
    attempts = 1
    failed = latest if latest is not None and latest.version == version else None
    if failed is not None and failed.status != "failed":
        failed = None
    if failed is not None and _failure_outdated(failed, wanted, build):
        failed = None  # failed for other inputs (or the store now serves what was missing)
    if failed is not None and is_permanent_build_failure(failed.error_message) and lever is None:
        # Rule 8: the same snapshot fails the same way; wait for a new version.
        block(
            kind,
            gate="build",
            reason=(
                f"version {version} does not build: "
                f"{_without_prefix(failed.error_message or '')}; it is not retried (the "
                "same content fails the same way): fix the content and publish a new "
                "version"
            ),
        )
        return
    budget_decides = (
        failed is not None
        and build is not None
        and build.error is None
        and (failed.error_message or "").startswith(BUDGET_FAILURE_PREFIX)
    )
    retried = ""
    if failed is not None and not budget_decides:
        if failed.attempts >= builder.settings.max_publish_attempts:
            retried = past_the_cap(builder, failed, lever)
            if not retried:
                block(ActionKind.RETRY_PUBLISH, gate="stuck", reason=stuck_reason(builder, failed))
                return
        kind = ActionKind.RETRY_PUBLISH
        attempts = failed.attempts + 1
    if not site.publish_allowed:
        block(
            kind,
            gate="hard_locked",
            reason=(
                f"version {version} is wanted, but tenant {site.tenant} is hard-locked: "
                "nothing is published until it is unlocked"
            ),
        )
        return
    if ledger is not None and ledger.versions and version not in ledger.versions:
        block(
            kind,
            gate="missing_version",
            reason=f"version {version} has no content snapshot in D1 site_versions",
        )
        return
    if build is not None and build.error is not None:
        block(kind, gate="build", reason=f"version {version} does not build: {build.error}")
        _record_publish_failure(
            builder, site, env, version, build, BUILD_FAILURE_PREFIX + build.error, source
        )
        return
    if build is not None:
        violations = check_budget(
            js_kb=build.js_kb,
            css_kb=build.css_kb,
            third_party_scripts=build.third_party_scripts,
            budget=site.budget,
            media=build.media,
        )
        if violations:
            block(
                kind,
                gate="budget",
                reason=(
                    f"the in-memory build of version {version} is over the performance budget "
                    f"of policy {policy}: "
                    + ", ".join(_budget_use(v.metric, v.actual, v.limit, build) for v in violations)
                    + "; nothing is uploaded. Make the site lighter or raise the budget"
                ),
            )
            _record_publish_failure(
                builder, site, env, version, build, describe_violations(violations), source
            )
            return
    retry = f" (attempt {attempts}, last error: {failed.error_message})" if failed else ""
    retry += retried
    reason = (
        f"{env} is {was}; the spec asks for version {version}, which has no deployment "
        f"yet: build and publish it{retry if kind is ActionKind.RETRY_PUBLISH else ''}"
    )
    if stale is not None:
        reason = f"{env} is at version {version}, but its build inputs changed: {stale}; rebuild"
        reason += " and publish it"
    if build is not None:
        reason += ". The in-memory build is within the performance budget: " + ", ".join(
            _budget_use(metric, actual, limit, build)
            for metric, actual, limit in _budget_figures(build, site)
        )
    after = _publish_after(builder, site, env, version, attempts, build, wanted)
    builder.add(
        kind,
        target,
        tenant=site.tenant,
        site=site.name,
        before=before,
        after=after,
        reason=reason,
        source=source,
        cause=Cause.CHANGE,
    )


def _record_publish_failure(
    builder: PlanBuilder,
    site: DesiredSite,
    env: str,
    version: int,
    build: BuildPreview,
    error: str,
    source: str | None,
) -> None:
    """Rule 7: one ``failed`` publish_versions row for a publish its build blocks."""
    ledger = builder.observed.ledger.get(site.name)
    latest = ledger.latest.get(env) if ledger is not None else None
    if (
        latest is not None
        and latest.version == version
        and latest.status == "failed"
        and latest.error_message == error
        and not _failure_outdated(latest, _wanted_inputs(builder, site, version), None)
    ):
        return  # already recorded
    after: dict[str, JsonValue] = {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": env,
        "version": version,
        "commit": builder.desired.revision,
        "content_hash": build.content_hash,
        "error_message": error,
    }
    wanted = _wanted_inputs(builder, site, version)
    if wanted is not None:
        after["build_identity"] = wanted.identity
        after["build_inputs"] = wanted.to_json()
    if build.error is None:
        after["sizes"] = {
            "js_kb": build.js_kb,
            "css_kb": build.css_kb,
            "third_party_scripts": build.third_party_scripts,
            "image_kb": build.media.image_kb,
            "page_weight_kb": build.media.page_weight_kb,
        }
    builder.add(
        ActionKind.RECORD_PUBLISH_FAILURE,
        f"Site/{site.name}:{env}",
        tenant=site.tenant,
        site=site.name,
        before={
            "version": latest.version if latest is not None else None,
            "status": latest.status if latest is not None else None,
        },
        after=after,
        reason=(
            f"the publish of version {version} is blocked by its build; record it as "
            "failed in publish_versions with the error, where runbook 1 looks"
        ),
        source=source,
        cause=Cause.CHANGE,
    )


def canonical_is_latest(project: ObservedProject, live: PublishRecord) -> bool:
    """Whether ``canonical_deployment`` differs from the recorded live one only by its reading.

    What ``canonical_deployment`` names after a rollback is unconfirmed (CONTRACT.md §9 item
    3): the deployment serving production (then it is the rollback target), or the most recent
    production deployment (then it stays on the newest one). Both are handled: the divergence is
    the second reading when the canonical deployment is the newest successful production one,
    it existed before D1 recorded the live deployment (a rollback recorded after it), and the
    recorded one is still a successful deployment. A deployment made after our record, or a
    rollback to anything but the newest, stays drift under either reading.
    """
    serving = project.production_deployment_id
    newest = _find(project, env="production")
    recorded = _find(project, deployment_id=live.deployment_id)
    return (
        newest is not None
        and recorded is not None
        and newest.id == serving
        and newest.created_on < live.created_at
    )


def _find(
    project: ObservedProject,
    *,
    deployment_id: str | None = None,
    site: str | None = None,
    version: int | None = None,
    env: str | None = None,
    build: str | None = None,
    untagged: bool = True,
) -> ObservedDeployment | None:
    """The newest successful deployment matching the filters, if the deployments were read.

    ``build`` (12 hex digits of an identity) rules out deployments tagged with another build;
    ``untagged=False`` rules out deployments without a build tag too (the live one is stale).
    """
    matches = [
        d
        for d in project.deployments or ()
        if d.status == "success"
        and (deployment_id is None or d.id == deployment_id)
        and (site is None or d.site == site)
        and (version is None or d.version == version)
        and (env is None or d.environment == env)
        and (build is None or d.build == build or (d.build is None and untagged))
    ]
    if not matches:
        return None
    return max(matches, key=lambda d: (d.created_on, d.id))


def _rollback_after(
    site: DesiredSite,
    env: str,
    version: int,
    deployment: ObservedDeployment,
    revision: str | None,
) -> dict[str, JsonValue]:
    return {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": env,
        "version": version,
        "deployment_id": deployment.id,
        "commit": revision,
        "hosts": [h.hostname for h in site.hostnames],
    }


def _wanted_inputs(builder: PlanBuilder, site: DesiredSite, version: int) -> BuildInputs | None:
    """The inputs a build of ``version`` would have now; None when not all are known."""
    ledger = builder.observed.ledger.get(site.name)
    content = ledger.content_digests.get(version) if ledger is not None else None
    return wanted_inputs(site.name, version, content, tuple(site.scripts), builder.observed.builder)


def _stale(live: PublishRecord, wanted: BuildInputs | None) -> str | None:
    """Why the live build is not the one wanted now; None when it is (or cannot be told)."""
    if wanted is None or not is_stale(live.build_identity, wanted):
        return None
    if live.build_inputs is None:
        return "its recorded build identity differs"
    changes = describe_changes(live.build_inputs, wanted)
    return "; ".join(changes) if changes else "its recorded build identity differs"


def _build_tag(wanted: BuildInputs | None) -> str | None:
    """The ``build`` filter for rollback candidates (see ``_find``)."""
    return wanted.identity[:12] if wanted is not None else None


def _failure_outdated(
    failed: PublishRecord, wanted: BuildInputs | None, build: BuildPreview | None
) -> bool:
    """A recorded failure that no longer says anything about the build wanted now."""
    if is_stale(failed.build_identity, wanted):
        return True  # fixed in place, or scripts/builder changed since
    return (
        build is not None
        and build.error is None
        and is_permanent_build_failure(failed.error_message)
    )


def _redeploy(
    builder: PlanBuilder,
    site: DesiredSite,
    env: str,
    version: int,
    live: PublishRecord,
    source: str | None,
    wanted: BuildInputs | None,
) -> None:
    """The ``publish`` lever on a converged environment (``plan_site_levers.plan_redeploy``)."""
    build = builder.observed.builds.get((site.name, version))
    after = _publish_after(builder, site, env, version, 1, build, wanted)
    plan_redeploy(builder, site, env, version, live.deployment_id or "?", source, after)


def _publish_after(
    builder: PlanBuilder,
    site: DesiredSite,
    env: str,
    version: int,
    attempts: int,
    build: BuildPreview | None,
    wanted: BuildInputs | None,
) -> dict[str, JsonValue]:
    """The publish handler's input (``runtime/actions/publish.py``)."""
    after: dict[str, JsonValue] = {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": env,
        "version": version,
        "commit": builder.desired.revision,
        "attempt": attempts,
        "hosts": [h.hostname for h in site.hostnames],
        "scripts": list(site.scripts),
        # The limits the publisher checks the real build against (runbook 4).
        "budget": _budget_after(site),
    }
    if build is not None:
        after["content_hash"] = build.content_hash
    if wanted is not None:
        after["build_identity"] = wanted.identity
    return after


def _budget_after(site: DesiredSite) -> dict[str, JsonValue]:
    budget = site.budget
    return {
        "max_js_kb": budget.max_js_kb,
        "max_css_kb": budget.max_css_kb,
        "max_third_party_scripts": budget.max_third_party_scripts,
        "max_image_kb": budget.max_image_kb,
        "max_page_weight_kb": budget.max_page_weight_kb,
    }


def _without_prefix(error_message: str) -> str:
    return error_message.removeprefix(BUILD_FAILURE_PREFIX)


_BUDGET_UNITS: Mapping[BudgetMetric, tuple[str, str]] = {
    BudgetMetric.JS_KB: ("JS", " KB"),
    BudgetMetric.CSS_KB: ("CSS", " KB"),
    BudgetMetric.THIRD_PARTY_SCRIPTS: ("third-party scripts", ""),
    BudgetMetric.IMAGE_KB: ("largest image", " KB"),
    BudgetMetric.PAGE_WEIGHT_KB: ("heaviest page", " KB"),
}


def _budget_use(
    metric: BudgetMetric, actual: int, limit: int, build: BuildPreview | None = None
) -> str:
    """``"JS 312 KB of 100 KB"``, ``"largest image 612 KB of 500 KB (img/hero.jpg)"``."""
    label, unit = _BUDGET_UNITS[metric]
    culprit = ""
    if build is not None and metric is BudgetMetric.IMAGE_KB and build.media.largest_image:
        culprit = f" ({build.media.largest_image})"
    if build is not None and metric is BudgetMetric.PAGE_WEIGHT_KB and build.media.heaviest_page:
        culprit = f" (page {build.media.heaviest_page})"
    return f"{label} {actual}{unit} of {limit}{unit}{culprit}"


def _budget_figures(build: BuildPreview, site: DesiredSite) -> list[tuple[BudgetMetric, int, int]]:
    budget = site.budget
    return [
        (BudgetMetric.JS_KB, build.js_kb, budget.max_js_kb),
        (BudgetMetric.CSS_KB, build.css_kb, budget.max_css_kb),
        (
            BudgetMetric.THIRD_PARTY_SCRIPTS,
            build.third_party_scripts,
            budget.max_third_party_scripts,
        ),
    ] + [
        # Shown once measured: a build without images has no image figure to show.
        (metric, actual, limit)
        for metric, actual, limit in (
            (BudgetMetric.IMAGE_KB, build.media.image_kb, budget.max_image_kb),
            (BudgetMetric.PAGE_WEIGHT_KB, build.media.page_weight_kb, budget.max_page_weight_kb),
        )
        if actual > 0
    ]
