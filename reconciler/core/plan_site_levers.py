"""plan_site_levers: a site's manual levers (redeploy, purge) and when a stuck publish retries.

Called by ``core/plan_sites.py`` (the site area of :func:`reconciler.core.plan.build_plan`):
:func:`plan_purge` and :func:`plan_redeploy` turn the ``purge`` and ``publish`` levers of
``core.levers`` into ``purge_cache`` and ``publish`` actions (or refuse them), and
:func:`past_the_cap` / :func:`stuck_reason` decide whether a publish at its retry cap is
tried again (a lever, or the cool-down after a failure on the provider's side) and what its
Stuck block says. ``runtime/loop.py`` calls :func:`next_publish_retry` to wake the daemon when
a cool-down ends. Pure.
"""

from __future__ import annotations

from reconciler.core.desired import DesiredSite
from reconciler.core.levers import Lever, LeverKind
from reconciler.core.observed import PublishRecord, SiteLedger
from reconciler.core.plan import (
    BUDGET_FAILURE_PREFIX,
    BUILD_FAILURE_PREFIX,
    ActionKind,
    Cause,
    JsonValue,
    PlanSettings,
)
from reconciler.core.plan_builder import Blocker, PlanBuilder
from reconciler.spec.vocabulary import Kind


def plan_purge(builder: PlanBuilder, site: DesiredSite) -> None:
    """The ``purge`` lever: purge every host of the site now (runbook 1)."""
    target = f"Site/{site.name}"
    if builder.lever(target, LeverKind.PURGE) is None:
        return
    mark = builder.mark()
    _purge(builder, site, target)
    builder.attribute(mark)


def _purge(builder: PlanBuilder, site: DesiredSite, target: str) -> None:
    hosts = [h.hostname for h in site.hostnames]
    if not hosts:
        builder.block(
            ActionKind.PURGE_CACHE,
            target,
            tenant=site.tenant,
            site=site.name,
            gate="refused",
            reason=(
                f"site {site.name} declares no custom hostnames, so there is nothing to "
                "purge (its pages.dev address is served fresh by each deployment)"
            ),
            source=builder.source(Kind.SITE, site.name, "spec.domains"),
        )
        return
    builder.add(
        ActionKind.PURGE_CACHE,
        target,
        tenant=site.tenant,
        site=site.name,
        before={},
        after={
            "site": site.name,
            "tenant": site.tenant,
            "hosts": list[JsonValue](hosts),
            "requested_at": builder.desired.now,
        },
        reason=(
            f"asked by hand (reconciler purge): purge {len(hosts)} host"
            f"{'s' if len(hosts) != 1 else ''} of site {site.name} from Cloudflare's cache, "
            "so they serve what is deployed now"
        ),
        source=builder.source(Kind.SITE, site.name, "spec.domains"),
        cause=Cause.CHANGE,
    )


def _provider_fault(failed: PublishRecord) -> bool:
    """A failure on the provider's side (a deployment), not ours (content, budget, snapshot)."""
    text = failed.error_message or ""
    return not text.startswith((BUILD_FAILURE_PREFIX, BUDGET_FAILURE_PREFIX))


def past_the_cap(builder: PlanBuilder, failed: PublishRecord, lever: Lever | None) -> str:
    """Why a publish at the retry cap is tried once more (a lever, or the cool-down), or ""."""
    if lever is not None:
        return f"; past the cap of {builder.settings.max_publish_attempts}, asked by hand"
    waited = builder.desired.now - failed.created_at
    cooldown = builder.settings.stuck_cooldown
    if _provider_fault(failed) and waited >= cooldown:
        return (
            f"; the failures were on Cloudflare's side and the cool-down of "
            f"{cooldown / 3600:g} h since the last attempt is over, so it is tried again"
        )
    return ""


def stuck_reason(builder: PlanBuilder, failed: PublishRecord) -> str:
    """What a stuck publish waits for: the cool-down (the provider's fault) or a change."""
    head = (
        f"publishing version {failed.version} failed {failed.attempts} times, last error: "
        f"{failed.error_message or 'unknown'}"
    )
    address = f"Site/{failed.site}:{failed.environment}"
    if _provider_fault(failed):
        cooldown = builder.settings.stuck_cooldown
        left = max(0.0, failed.created_at + cooldown - builder.desired.now)
        return (
            f"{head}; the failure is on Cloudflare's side: it is tried again by itself in "
            f"{left / 3600:.1f} h (a cool-down of {cooldown / 3600:g} h after the last "
            f"attempt), or now with `reconciler clear-stuck {address}`"
        )
    return (
        f"{head}; fix the content and bump the version, or set it back (or retry the same "
        f"version with `reconciler clear-stuck {address}`)"
    )


def plan_redeploy(
    builder: PlanBuilder,
    site: DesiredSite,
    env: str,
    version: int,
    deployment: str,
    block: Blocker,
    after: dict[str, JsonValue],
) -> None:
    """The ``publish`` lever on a converged environment: deploy the live version again.

    ``block`` is the environment's (``SiteEnv.block``); ``after`` is the publish handler's
    input as ``plan_sites`` builds it for any publish.
    """
    if not site.publish_allowed:
        block(
            ActionKind.PUBLISH,
            gate="hard_locked",
            reason=(
                f"a redeploy of version {version} was asked, but tenant {site.tenant} is "
                "hard-locked: nothing is published until it is unlocked"
            ),
        )
        return
    build = builder.observed.builds.get((site.name, version))
    if build is not None and build.error is not None:
        block(
            ActionKind.PUBLISH,
            gate="build",
            reason=f"version {version} does not build: {build.error}",
        )
        return
    after["redeploy_of"] = deployment
    after["requested_at"] = builder.desired.now
    block.add(
        ActionKind.PUBLISH,
        before={"version": version, "deployment_id": deployment},
        after=after,
        reason=(
            f"asked by hand (reconciler publish): {env} serves version {version} as "
            f"deployment {deployment}; build and deploy it again as a new deployment, then "
            "purge the site's hosts"
        ),
        cause=Cause.CHANGE,
    )


def next_publish_retry(
    ledger: SiteLedger | None, *, settings: PlanSettings, now: float
) -> float | None:
    """When a publish stuck on the provider's side is next tried by itself (daemon timers)."""
    if ledger is None:
        return None
    moments = [
        record.created_at + settings.stuck_cooldown
        for record in ledger.latest.values()
        if record.status == "failed"
        and record.attempts >= settings.max_publish_attempts
        and _provider_fault(record)
    ]
    future = [moment for moment in moments if moment > now]
    return min(future) if future else None
