"""plan_site_env: what the site planner reads about one environment, and its actions' JSON.

Pure; part of ``core/plan_sites.py`` (whose docstring holds the rules), kept apart by job: the
readings one environment's steps share (:class:`SiteEnv`: the ledger, the live and latest
publish rows, the build wanted now and why the live one is stale), the deployments a rollback
may point at, and the ``after`` of a publish and of a rollback.
"""

from __future__ import annotations

from typing import NamedTuple

from reconciler.core.desired import DesiredSite
from reconciler.core.identity import BuildInputs, describe_changes, is_stale
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observe_scope import find_deployment, wanted_build
from reconciler.core.observed import (
    BuildPreview,
    ObservedDeployment,
    ObservedProject,
    PublishRecord,
    SiteLedger,
)
from reconciler.core.plan import JsonValue, is_permanent_build_failure
from reconciler.core.plan_builder import Blocker, PlanBuilder

__all__ = [
    "SiteEnv",
    "canonical_is_latest",
    "failure_outdated",
    "publish_after",
    "read_environment",
    "rollback_after",
    "version_of_site",
]


class SiteEnv(NamedTuple):
    """One environment of a site being planned: the readings its steps share.

    A named tuple over the builder: its blocker is made when an action or a block needs it,
    not for each of the (mostly converged) environments of the fleet.
    """

    site: DesiredSite
    env: str
    version: int
    lever: Lever | None
    builder: PlanBuilder
    ledger: SiteLedger | None
    live: PublishRecord | None
    latest: PublishRecord | None
    wanted: BuildInputs | None
    stale: str | None  # why the live build of this version is not the one wanted now
    build: BuildPreview | None

    @property
    def block(self) -> Blocker:
        """The environment's target, with its spec version line as the source."""
        site, env = self.site, self.env
        return self.builder.site_blocker(site, f"Site/{site.name}:{env}", f"spec.{env}.version")

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


def read_environment(
    builder: PlanBuilder, site: DesiredSite, env: str, version: int, lever: Lever | None
) -> SiteEnv:
    """What D1 and the in-memory build say about ``site``'s ``env`` at ``version``."""
    observed = builder.observed
    ledger = observed.ledger.get(site.name)
    live = ledger.live.get(env) if ledger is not None else None
    wanted = wanted_build(ledger, site.name, version, site.scripts, observed.builder)
    return SiteEnv(
        site=site,
        env=env,
        version=version,
        lever=lever,
        builder=builder,
        ledger=ledger,
        live=live,
        latest=ledger.latest.get(env) if ledger is not None else None,
        wanted=wanted,
        stale=stale_build(live, wanted) if live is not None and live.version == version else None,
        build=observed.builds.get((site.name, version)),
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
    newest = find_deployment(project, env="production")
    recorded = find_deployment(project, deployment_id=live.deployment_id)
    return (
        newest is not None
        and recorded is not None
        and newest.id == serving
        and newest.created_on < live.created_at
    )


def rollback_after(
    state: SiteEnv, deployment: ObservedDeployment, revision: str | None
) -> dict[str, JsonValue]:
    return {
        **version_of_site(state.site, state.env, state.version),
        "deployment_id": deployment.id,
        "commit": revision,
        "hosts": [h.hostname for h in state.site.hostnames],
    }


def version_of_site(site: DesiredSite, env: str, version: int) -> dict[str, JsonValue]:
    """The fields every publish-like ``after`` starts with: which version of which site, where."""
    return {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": env,
        "version": version,
    }


def stale_build(live: PublishRecord, wanted: BuildInputs | None) -> str | None:
    """Why the live build is not the one wanted now; None when it is (or cannot be told)."""
    if wanted is None or not is_stale(live.build_identity, wanted, live.build_inputs):
        return None
    if live.build_inputs is None:
        return "its recorded build identity differs"
    changes = describe_changes(live.build_inputs, wanted)
    return "; ".join(changes) if changes else "its recorded build identity differs"


def failure_outdated(
    failed: PublishRecord, wanted: BuildInputs | None, build: BuildPreview | None
) -> bool:
    """A recorded failure that no longer says anything about the build wanted now."""
    if is_stale(failed.build_identity, wanted, failed.build_inputs):
        return True  # fixed in place, or scripts/builder changed since
    return (
        build is not None
        and build.error is None
        and is_permanent_build_failure(failed.error_message)
    )


def publish_after(builder: PlanBuilder, state: SiteEnv, attempts: int) -> dict[str, JsonValue]:
    """The publish handler's input (``runtime/actions/publish.py``)."""
    site, build, wanted = state.site, state.build, state.wanted
    after: dict[str, JsonValue] = {
        **version_of_site(site, state.env, state.version),
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
