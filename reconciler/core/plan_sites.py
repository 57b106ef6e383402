"""plan_sites: the planner's site area: publish, rollback, retry and record a failed publish.

Called by :func:`reconciler.core.plan.build_plan` once per site in scope (rules 4, 5, 7, 8 and
9 of ``core.plan``). Fills a :class:`~reconciler.core.plan_builder.PlanBuilder` with
``rollback``, ``publish``, ``retry_publish``, ``record_publish_failure`` and (the ``purge``
lever only) ``purge_cache`` actions, or blocks them behind a gate; calls ``core.budget`` to
check an in-memory build. Pure.

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
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import (
    BuildPreview,
    ObservedDeployment,
    ObservedProject,
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
    publish_after,
    stuck_reason,
)
from reconciler.spec.models import Kind


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

    if pages_gap is not None:
        if live is None or live.version != version:
            block(
                ActionKind.PUBLISH,
                gate="incomplete",
                reason=f"version {version} is wanted but {pages_gap}",
            )
        return
    if project is None and live is not None and live.version == version:
        # The ledger agrees, so Pages was not read this pass (DESIGN.md section 7).
        if lever is not None and lever.kind is LeverKind.PUBLISH:
            plan_redeploy(builder, site, env, version, live.deployment_id or "?", source)
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

    if live is not None and live.version == version:
        serving = project.production_deployment_id
        if env != "production" or serving is None or serving == live.deployment_id:
            if lever is not None and lever.kind is LeverKind.PUBLISH:
                plan_redeploy(builder, site, env, version, live.deployment_id or "?", source)
            return  # converged
        if project.deployments is None:
            return  # deployments not listed this pass: no evidence the recorded one is gone
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
        candidate = _find(project, site=site.name, version=version, env=env)
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
        )
        if violations:
            block(
                kind,
                gate="budget",
                reason=(
                    f"the in-memory build of version {version} is over the performance budget "
                    f"of policy {policy}: "
                    + ", ".join(_budget_use(v.metric, v.actual, v.limit) for v in violations)
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
    if build is not None:
        reason += ". The in-memory build is within the performance budget: " + ", ".join(
            _budget_use(metric, actual, limit)
            for metric, actual, limit in _budget_figures(build, site)
        )
    after = publish_after(builder, site, env, version, attempts=attempts)
    if build is not None:
        after["content_hash"] = build.content_hash
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
    if build.error is None:
        after["sizes"] = {
            "js_kb": build.js_kb,
            "css_kb": build.css_kb,
            "third_party_scripts": build.third_party_scripts,
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


def _find(
    project: ObservedProject,
    *,
    deployment_id: str | None = None,
    site: str | None = None,
    version: int | None = None,
    env: str | None = None,
) -> ObservedDeployment | None:
    """The newest successful deployment matching the filters, if the deployments were read."""
    matches = [
        d
        for d in project.deployments or ()
        if d.status == "success"
        and (deployment_id is None or d.id == deployment_id)
        and (site is None or d.site == site)
        and (version is None or d.version == version)
        and (env is None or d.environment == env)
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


def _without_prefix(error_message: str) -> str:
    return error_message.removeprefix(BUILD_FAILURE_PREFIX)


_BUDGET_UNITS: Mapping[BudgetMetric, tuple[str, str]] = {
    BudgetMetric.JS_KB: ("JS", " KB"),
    BudgetMetric.CSS_KB: ("CSS", " KB"),
    BudgetMetric.THIRD_PARTY_SCRIPTS: ("third-party scripts", ""),
}


def _budget_use(metric: BudgetMetric, actual: int, limit: int) -> str:
    """``"JS 312 KB of 100 KB"``, ``"third-party scripts 3 of 2"``."""
    label, unit = _BUDGET_UNITS[metric]
    return f"{label} {actual}{unit} of {limit}{unit}"


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
    ]
