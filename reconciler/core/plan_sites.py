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
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.core.budget import BudgetMetric, check_budget, describe_violations
from reconciler.core.desired import DesiredSite
from reconciler.core.identity import BuildInputs, describe_changes, is_stale, wanted_inputs
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import (
    BuildPreview,
    ObservedDeployment,
    ObservedProject,
    PublishRecord,
    SiteLedger,
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
from reconciler.core.plan_builder import Blocker, PlanBuilder
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


class _Env(NamedTuple):
    """One environment of a site being planned: the readings its steps share.

    A named tuple (immutable), made in a third of a frozen dataclass's time: one per
    environment of the fleet.
    """

    site: DesiredSite
    env: str
    version: int
    lever: Lever | None
    target: str
    builder: PlanBuilder
    ledger: SiteLedger | None
    live: PublishRecord | None
    latest: PublishRecord | None
    wanted: BuildInputs | None
    stale: str | None  # why the live build of this version is not the one wanted now
    build: BuildPreview | None

    @property
    def block(self) -> Blocker:
        """Blocks actions on this environment (made when one is blocked, not per environment)."""
        return self.builder.blocker(
            self.target, tenant=self.site.tenant, site=self.site.name, source=self.source
        )

    @property
    def source(self) -> str | None:
        """Where the version is set in the specs, located when an action or a block cites it."""
        return self.builder.source(Kind.SITE, self.site.name, f"spec.{self.env}.version")

    @property
    def at_version(self) -> bool:
        """D1 records this version live (its build may be stale)."""
        return self.live is not None and self.live.version == self.version

    @property
    def serves_wanted(self) -> bool:
        """D1 records this version live, built from the inputs wanted now."""
        return self.at_version and self.stale is None

    @property
    def lever_publishes(self) -> bool:
        """The ``publish`` lever was asked for this environment."""
        return self.lever is not None and self.lever.kind is LeverKind.PUBLISH

    def before(self) -> dict[str, JsonValue]:
        """The live version and deployment D1 records, as an action's ``before``."""
        return {
            "version": self.live.version if self.live is not None else None,
            "deployment_id": self.live.deployment_id if self.live is not None else None,
        }

    def was(self) -> str:
        """Where the environment stands, in words."""
        return f"at version {self.live.version}" if self.live is not None else "not published yet"


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The publish to make: first or retried, its attempt number and the failure it retries."""

    kind: ActionKind
    attempts: int
    failed: PublishRecord | None
    retried: str  # why a publish past the retry cap is tried again; "" otherwise


def _plan_environment(
    builder: PlanBuilder, site: DesiredSite, env: str, version: int, lever: Lever | None
) -> None:
    """One environment, in order: keep it, point it back, roll back, or publish through gates."""
    d1_gap = builder.incomplete(Source.D1)
    if d1_gap is not None:
        target = f"Site/{site.name}:{env}"
        builder.note(target, tenant=site.tenant, site=site.name, category="waiting", reason=d1_gap)
        return
    state = _read_environment(builder, site, env, version, lever)
    project = _project_to_publish_into(builder, state)
    if project is None or _keep_or_point_back(builder, state, project):
        return
    if env == "production" and _roll_back_to_built(builder, state, project):
        return
    attempt = _attempt(builder, state)
    if attempt is None or _blocked_before_upload(builder, state, attempt.kind):
        return
    _add_publish(builder, state, attempt)


def _read_environment(
    builder: PlanBuilder, site: DesiredSite, env: str, version: int, lever: Lever | None
) -> _Env:
    """What D1 and the in-memory build say about ``site``'s ``env`` at ``version``."""
    target = f"Site/{site.name}:{env}"
    ledger = builder.observed.ledger.get(site.name)
    live = ledger.live.get(env) if ledger is not None else None
    wanted = _wanted_inputs(builder, site, version)
    return _Env(
        site=site,
        env=env,
        version=version,
        lever=lever,
        target=target,
        builder=builder,
        ledger=ledger,
        live=live,
        latest=ledger.latest.get(env) if ledger is not None else None,
        wanted=wanted,
        stale=_stale(live, wanted) if live is not None and live.version == version else None,
        build=builder.observed.builds.get((site.name, version)),
    )


def _project_to_publish_into(builder: PlanBuilder, state: _Env) -> ObservedProject | None:
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
        builder.block(
            ActionKind.PUBLISH,
            state.target,
            tenant=site.tenant,
            site=site.name,
            gate="missing_project",
            reason=(
                f"Pages project {site.pages_project!r} does not exist; create it in "
                "Cloudflare (the reconciler publishes into projects, it does not create them)"
            ),
            source=builder.source(Kind.SITE, site.name, "spec.pages_project"),
        )
    return project


def _keep_or_point_back(builder: PlanBuilder, state: _Env, project: ObservedProject) -> bool:
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
    deployment = _find(project, deployment_id=live.deployment_id)
    if deployment is None:
        return False  # the recorded deployment is gone: rebuild
    builder.add(
        ActionKind.ROLLBACK,
        state.target,
        tenant=state.site.tenant,
        site=state.site.name,
        before={"deployment_id": serving, "version": state.version},
        after=_rollback_after(state, deployment, builder.desired.revision),
        reason=(
            f"production serves deployment {serving}, not {live.deployment_id} "
            f"(version {state.version}, recorded live in D1); point it back, no rebuild"
        ),
        source=state.source,
        cause=Cause.DRIFT,
    )
    return True


def _roll_back_to_built(builder: PlanBuilder, state: _Env, project: ObservedProject) -> bool:
    """Rule 5: a successful deployment of the wanted build exists; True when rolled back to it."""
    candidate = _find(
        project,
        site=state.site.name,
        version=state.version,
        env=state.env,
        build=_build_tag(state.wanted),
        untagged=state.stale is None,
    )
    if candidate is None:
        return False
    builder.add(
        ActionKind.ROLLBACK,
        state.target,
        tenant=state.site.tenant,
        site=state.site.name,
        before=state.before(),
        after=_rollback_after(state, candidate, builder.desired.revision),
        reason=(
            f"{state.env} is {state.was()}; the spec asks for version {state.version}, which "
            f"has a successful deployment {candidate.id}: roll back to it, no rebuild"
        ),
        source=state.source,
        cause=Cause.CHANGE,
    )
    return True


def _attempt(builder: PlanBuilder, state: _Env) -> _Attempt | None:
    """Rule 8: a first publish, or a retry of the failure recorded; None when blocked."""
    failed = _failure_to_retry(state)
    if failed is None:
        return _Attempt(ActionKind.PUBLISH, 1, None, "")
    if is_permanent_build_failure(failed.error_message) and state.lever is None:
        # The same snapshot fails the same way; wait for a new version.
        state.block(
            ActionKind.PUBLISH,
            gate="build",
            reason=(
                f"version {state.version} does not build: "
                f"{_without_prefix(failed.error_message or '')}; it is not retried (the "
                "same content fails the same way): fix the content and publish a new "
                "version"
            ),
        )
        return None
    build = state.build
    budget_failed = (failed.error_message or "").startswith(BUDGET_FAILURE_PREFIX)
    if budget_failed and build is not None and build.error is None:
        return _Attempt(ActionKind.PUBLISH, 1, failed, "")  # the budget gate decides
    retried = ""
    if failed.attempts >= builder.settings.max_publish_attempts:
        retried = past_the_cap(builder, failed, state.lever)
        if not retried:
            state.block(
                ActionKind.RETRY_PUBLISH, gate="stuck", reason=stuck_reason(builder, failed)
            )
            return None
    return _Attempt(ActionKind.RETRY_PUBLISH, failed.attempts + 1, failed, retried)


def _failure_to_retry(state: _Env) -> PublishRecord | None:
    """The latest row when it is a failure of this version that still tells about its build."""
    failed = state.latest
    if failed is None or failed.version != state.version or failed.status != "failed":
        return None
    if _failure_outdated(failed, state.wanted, state.build):
        return None  # failed for other inputs (or the store now serves what was missing)
    return failed


def _blocked_before_upload(builder: PlanBuilder, state: _Env, kind: ActionKind) -> bool:
    """The gates before a build is uploaded: lock, snapshot, build, budget. True when blocked."""
    site, version, build = state.site, state.version, state.build
    if not site.publish_allowed:
        state.block(
            kind,
            gate="hard_locked",
            reason=(
                f"version {version} is wanted, but tenant {site.tenant} is hard-locked: "
                "nothing is published until it is unlocked"
            ),
        )
        return True
    if state.ledger is not None and state.ledger.versions and version not in state.ledger.versions:
        state.block(
            kind,
            gate="missing_version",
            reason=f"version {version} has no content snapshot in D1 site_versions",
        )
        return True
    if build is not None and build.error is not None:
        state.block(kind, gate="build", reason=f"version {version} does not build: {build.error}")
        _record_publish_failure(
            builder,
            site,
            state.env,
            version,
            build,
            BUILD_FAILURE_PREFIX + build.error,
            state.source,
        )
        return True
    return build is not None and _over_budget(builder, state, kind, build)


def _over_budget(builder: PlanBuilder, state: _Env, kind: ActionKind, build: BuildPreview) -> bool:
    """The in-memory build against the site's performance budget; True when blocked."""
    site = state.site
    violations = check_budget(
        js_kb=build.js_kb,
        css_kb=build.css_kb,
        third_party_scripts=build.third_party_scripts,
        budget=site.budget,
        media=build.media,
    )
    if not violations:
        return False
    policy = builder.desired.tenants[site.tenant].policy
    state.block(
        kind,
        gate="budget",
        reason=(
            f"the in-memory build of version {state.version} is over the performance budget "
            f"of policy {policy}: "
            + ", ".join(_budget_use(v.metric, v.actual, v.limit, build) for v in violations)
            + "; nothing is uploaded. Make the site lighter or raise the budget"
        ),
    )
    _record_publish_failure(
        builder,
        site,
        state.env,
        state.version,
        build,
        describe_violations(violations),
        state.source,
    )
    return True


def _add_publish(builder: PlanBuilder, state: _Env, attempt: _Attempt) -> None:
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
            _budget_use(metric, actual, limit, build)
            for metric, actual, limit in _budget_figures(build, state.site)
        )
    builder.add(
        attempt.kind,
        state.target,
        tenant=state.site.tenant,
        site=state.site.name,
        before=state.before(),
        after=_publish_after(builder, state, attempt.attempts),
        reason=reason,
        source=state.source,
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
    state: _Env, deployment: ObservedDeployment, revision: str | None
) -> dict[str, JsonValue]:
    site = state.site
    return {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": state.env,
        "version": state.version,
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


def _redeploy(builder: PlanBuilder, state: _Env) -> None:
    """The ``publish`` lever on a converged environment (``plan_site_levers.plan_redeploy``)."""
    live = state.live.deployment_id if state.live is not None else None
    after = _publish_after(builder, state, 1)
    plan_redeploy(builder, state.site, state.env, state.version, live or "?", state.source, after)


def _publish_after(builder: PlanBuilder, state: _Env, attempts: int) -> dict[str, JsonValue]:
    """The publish handler's input (``runtime/actions/publish.py``)."""
    site, build, wanted = state.site, state.build, state.wanted
    after: dict[str, JsonValue] = {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": state.env,
        "version": state.version,
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
