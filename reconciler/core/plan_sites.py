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

This module walks one environment through its decisions; the readings they share are
``plan_site_env.py``'s, the gates before an upload ``plan_site_gates.py``'s and the levers
``plan_site_levers.py``'s.
"""

from __future__ import annotations

from reconciler.core.desired import DesiredSite
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observe_scope import built_deployment, find_deployment
from reconciler.core.observed import ObservedDeployment, ObservedProject, Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.plan_site_env import (
    SiteEnv,
    canonical_is_latest,
    publish_after,
    read_environment,
    rollback_after,
)
from reconciler.core.plan_site_gates import (
    Attempt,
    blocked_before_upload,
    budget_figures,
    budget_use,
    next_attempt,
)
from reconciler.core.plan_site_levers import plan_purge, plan_redeploy


def note_unclaimed_projects(builder: PlanBuilder) -> None:
    """A Pages project that D1 records for a site no spec declares, and that no Site of the
    specs claims, is noted ``unmanaged`` (plan rule 3): left alone, never deleted."""
    if not builder.observed.unclaimed_projects:
        return  # nothing to note (the common case): no need to gather every site's project
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
    if builder.has_levers:
        plan_purge(builder, site)


def _plan_env_lever(builder: PlanBuilder, site: DesiredSite, env: str, version: int) -> None:
    if not builder.has_levers:  # the common plan: no lever to look for
        _plan_environment(builder, site, env, version, None)
        return
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
    reason = (
        f"{env} serves version {version} as the spec asks and nothing is stuck: nothing to {verb}"
    )
    builder.note(target, tenant=site.tenant, site=site.name, category="unchanged", reason=reason)
    builder.attribute(mark)


def _plan_environment(
    builder: PlanBuilder, site: DesiredSite, env: str, version: int, lever: Lever | None
) -> None:
    """One environment, in order: keep it, point it back, roll back, or publish through gates."""
    d1_gap = builder.incomplete(Source.D1)
    if d1_gap is not None:
        target = f"Site/{site.name}:{env}"
        builder.note(target, tenant=site.tenant, site=site.name, category="waiting", reason=d1_gap)
        return
    state = read_environment(builder, site, env, version, lever)
    project = _project_to_publish_into(builder, state)
    if project is None or _keep_or_point_back(builder, state, project):
        return
    if env == "production" and _roll_back_to_built(builder, state, project):
        return
    attempt = next_attempt(builder, state)
    if attempt is None or blocked_before_upload(builder, state, attempt.kind):
        return
    _add_publish(builder, state, attempt)


def _project_to_publish_into(builder: PlanBuilder, state: SiteEnv) -> ObservedProject | None:
    """The Pages project as read; None when the environment is decided without it."""
    site = state.site
    pages_gap = builder.incomplete(Source.PAGES)
    if pages_gap is not None:
        if not state.at_version:
            state.block(
                ActionKind.PUBLISH,
                gate="incomplete",
                reason=f"version {state.version} is wanted but {pages_gap}",
            )
        return None
    project = builder.observed.projects.get(site.pages_project)
    if project is None and state.serves_wanted:
        # The ledger agrees, so Pages was not read this pass (DESIGN.md section 7).
        if state.lever_publishes:
            _redeploy(builder, state)
        return None
    if project is None:
        reason = (
            f"Pages project {site.pages_project!r} does not exist; create it in "
            "Cloudflare (the reconciler publishes into projects, it does not create them)"
        )
        block = builder.site_blocker(site, state.block.target, "spec.pages_project")
        block(ActionKind.PUBLISH, gate="missing_project", reason=reason)
    return project


def _keep_or_point_back(builder: PlanBuilder, state: SiteEnv, project: ObservedProject) -> bool:
    """A converged environment is kept; production drifted off it is pointed back.

    True when decided; False to rebuild (not at the version, stale, or its deployment gone).
    """
    live = state.live
    if live is None or not state.serves_wanted:
        return False
    serving = project.production_deployment_id
    if state.env != "production" or serving is None or serving == live.deployment_id:
        if state.lever_publishes:
            _redeploy(builder, state)
        return True  # converged
    if project.deployments is None:
        return True  # deployments not listed this pass: no evidence the recorded one is gone
    if canonical_is_latest(project, live):
        return True  # production is on the recorded rollback target (the "latest" reading)
    deployment = find_deployment(project, deployment_id=live.deployment_id)
    if deployment is None:
        return False  # the recorded deployment is gone: rebuild
    reason = (
        f"production serves deployment {serving}, not {live.deployment_id} "
        f"(version {state.version}, recorded live in D1); point it back, no rebuild"
    )
    before: dict[str, JsonValue] = {"deployment_id": serving, "version": state.version}
    _add_rollback(builder, state, deployment, before, reason, Cause.DRIFT)
    return True


def _roll_back_to_built(builder: PlanBuilder, state: SiteEnv, project: ObservedProject) -> bool:
    """Rule 5: a successful deployment of the wanted build exists; True when rolled back to it."""
    candidate = built_deployment(
        project,
        site=state.site.name,
        env=state.env,
        version=state.version,
        wanted=state.wanted,
        untagged=state.stale is None,
    )
    if candidate is not None:
        reason = (
            f"{state.env} is {state.was()}; the spec asks for version {state.version}, which "
            f"has a successful deployment {candidate.id}: roll back to it, no rebuild"
        )
        _add_rollback(builder, state, candidate, state.before(), reason, Cause.CHANGE)
    return candidate is not None


def _add_rollback(
    builder: PlanBuilder,
    state: SiteEnv,
    deployment: ObservedDeployment,
    before: dict[str, JsonValue],
    reason: str,
    cause: Cause,
) -> None:
    """Point the environment at ``deployment`` (rule 5): no rebuild."""
    after = rollback_after(state, deployment, builder.desired.revision)
    state.block.add(ActionKind.ROLLBACK, before=before, after=after, reason=reason, cause=cause)


def _add_publish(builder: PlanBuilder, state: SiteEnv, attempt: Attempt) -> None:
    """The publish (or retry) action, with why and the in-memory build's figures."""
    version, build = state.version, state.build
    retry = ""
    if attempt.kind is ActionKind.RETRY_PUBLISH:
        last = f", last error: {attempt.failed.error_message}" if attempt.failed else ""
        retry = f" (attempt {attempt.attempts}{last}){attempt.retried}"
    reason = (
        f"{state.env} is {state.was()}; the spec asks for version {version}, which has no "
        f"deployment yet: build and publish it{retry}"
    )
    if state.stale is not None:
        reason = f"{state.env} is at version {version}, but its build inputs changed: "
        reason += f"{state.stale}; rebuild and publish it"
    if build is not None:
        reason += ". The in-memory build is within the performance budget: " + ", ".join(
            budget_use(metric, actual, limit, build)
            for metric, actual, limit in budget_figures(build, state.site)
        )
    state.block.add(
        attempt.kind,
        before=state.before(),
        after=publish_after(builder, state, attempt.attempts),
        reason=reason,
        cause=Cause.CHANGE,
    )


def _redeploy(builder: PlanBuilder, state: SiteEnv) -> None:
    """The ``publish`` lever on a converged environment (``plan_site_levers.plan_redeploy``)."""
    live = state.live.deployment_id if state.live is not None else None
    after = publish_after(builder, state, 1)
    plan_redeploy(builder, state.site, state.env, state.version, live or "?", state.block, after)
