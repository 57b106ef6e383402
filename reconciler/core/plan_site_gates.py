"""plan_site_gates: the gates a publish passes before its build is uploaded, and what they record.

Pure; part of ``core/plan_sites.py`` (whose docstring holds the rules), kept apart by job:
whether a publish is a first attempt or a retry (rule 8), the lock, snapshot, build and budget
gates in front of the upload, the ``record_publish_failure`` a blocked build leaves (rule 7),
and the budget figures a reason shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.budget import BudgetMetric, check_build, describe_violations
from reconciler.core.desired import DesiredSite
from reconciler.core.observe_scope import snapshot_missing
from reconciler.core.observed import BuildPreview, PublishRecord
from reconciler.core.plan import (
    BUDGET_FAILURE_PREFIX,
    BUILD_FAILURE_PREFIX,
    ActionKind,
    Cause,
    JsonValue,
    is_permanent_build_failure,
)
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.plan_site_env import (
    SiteEnv,
    failure_outdated,
    version_of_site,
)
from reconciler.core.plan_site_levers import past_the_cap, stuck_reason

__all__ = ["Attempt", "blocked_before_upload", "budget_figures", "budget_use", "next_attempt"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """The publish to make: first or retried, its attempt number and the failure it retries."""

    kind: ActionKind
    attempts: int
    failed: PublishRecord | None
    retried: str  # why a publish past the retry cap is tried again; "" otherwise


def next_attempt(builder: PlanBuilder, state: SiteEnv) -> Attempt | None:
    """Rule 8: a first publish, or a retry of the failure recorded; None when blocked."""
    failed = _failure_to_retry(state)
    if failed is None:
        return Attempt(ActionKind.PUBLISH, 1, None, "")
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
        return Attempt(ActionKind.PUBLISH, 1, failed, "")  # the budget gate decides
    retried = ""
    if failed.attempts >= builder.settings.max_publish_attempts:
        retried = past_the_cap(builder, failed, state.lever)
        if not retried:
            state.block(
                ActionKind.RETRY_PUBLISH, gate="stuck", reason=stuck_reason(builder, failed)
            )
            return None
    return Attempt(ActionKind.RETRY_PUBLISH, failed.attempts + 1, failed, retried)


def _failure_to_retry(state: SiteEnv) -> PublishRecord | None:
    """The latest row when it is a failure of this version that still tells about its build."""
    failed = state.latest
    if failed is None or failed.version != state.version or failed.status != "failed":
        return None
    if failure_outdated(failed, state.wanted, state.build):
        return None  # failed for other inputs (or the store now serves what was missing)
    return failed


def blocked_before_upload(builder: PlanBuilder, state: SiteEnv, kind: ActionKind) -> bool:
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
    if snapshot_missing(state.ledger, version):
        state.block(
            kind,
            gate="missing_version",
            reason=f"version {version} has no content snapshot in D1 site_versions",
        )
        return True
    if build is not None and build.error is not None:
        state.block(kind, gate="build", reason=f"version {version} does not build: {build.error}")
        _record_publish_failure(builder, state, build, BUILD_FAILURE_PREFIX + build.error)
        return True
    return build is not None and _over_budget(builder, state, kind, build)


def _over_budget(
    builder: PlanBuilder, state: SiteEnv, kind: ActionKind, build: BuildPreview
) -> bool:
    """The in-memory build against the site's performance budget; True when blocked."""
    site = state.site
    violations = check_build(build, site.budget)
    if not violations:
        return False
    policy = builder.desired.tenants[site.tenant].policy
    state.block(
        kind,
        gate="budget",
        reason=(
            f"the in-memory build of version {state.version} is over the performance budget "
            f"of policy {policy}: "
            + ", ".join(budget_use(v.metric, v.actual, v.limit, build) for v in violations)
            + "; nothing is uploaded. Make the site lighter or raise the budget"
        ),
    )
    _record_publish_failure(builder, state, build, describe_violations(violations))
    return True


def _record_publish_failure(
    builder: PlanBuilder, state: SiteEnv, build: BuildPreview, error: str
) -> None:
    """Rule 7: one ``failed`` publish_versions row for a publish its build blocks."""
    latest, version, wanted = state.latest, state.version, state.wanted
    if (
        latest is not None
        and latest.version == version
        and latest.status == "failed"
        and latest.error_message == error
        and not failure_outdated(latest, wanted, None)
    ):
        return  # already recorded
    after: dict[str, JsonValue] = {
        **version_of_site(state.site, state.env, version),
        "commit": builder.desired.revision,
        "content_hash": build.content_hash,
        "error_message": error,
    }
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
    state.block.add(
        ActionKind.RECORD_PUBLISH_FAILURE,
        before={
            "version": latest.version if latest is not None else None,
            "status": latest.status if latest is not None else None,
        },
        after=after,
        reason=(
            f"the publish of version {version} is blocked by its build; record it as "
            "failed in publish_versions with the error, where runbook 1 looks"
        ),
        cause=Cause.CHANGE,
    )


def _without_prefix(error_message: str) -> str:
    return error_message.removeprefix(BUILD_FAILURE_PREFIX)


_BUDGET_UNITS: Mapping[BudgetMetric, tuple[str, str]] = {
    BudgetMetric.JS_KB: ("JS", " KB"),
    BudgetMetric.CSS_KB: ("CSS", " KB"),
    BudgetMetric.THIRD_PARTY_SCRIPTS: ("third-party scripts", ""),
    BudgetMetric.IMAGE_KB: ("largest image", " KB"),
    BudgetMetric.PAGE_WEIGHT_KB: ("heaviest page", " KB"),
}


def budget_use(
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


def budget_figures(build: BuildPreview, site: DesiredSite) -> list[tuple[BudgetMetric, int, int]]:
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
