"""observe_pages: the Pages projects a pass must read, and reading them (and deployments).

Called by ``runtime/observe.py`` once the ledger and the hostnames are in (``observe`` rule
1): a site's project is read when the ledger disagrees with a desired version (or has no live
row), or a desired hostname must be created or re-pointed (the origin is the project's
subdomain); a GET per project, or one listing of the account's projects when that is cheaper.
Production deployments are listed where a version may already be deployed or production
serves a deployment the ledger does not record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.observe_scope import serves_wanted, wanted_build
from reconciler.core.observed import (
    ObservedDeployment,
    ObservedHostname,
    ObservedProject,
    SiteLedger,
)
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare import PROJECTS_PER_PAGE
from reconciler.providers.cloudflare_models import Deployment, PagesProject
from reconciler.runtime.observe_clients import CloudflareReader, ObserveLimits, gather_all
from reconciler.runtime.observe_hostnames import provider_time
from reconciler.runtime.records import DomainRow
from reconciler.spec.load import Specs
from reconciler.spec.models import SiteSpec

__all__ = ["PagesNeed", "pages_needed", "read_pages", "wanted_versions"]


@dataclass(frozen=True, slots=True)
class PagesNeed:
    """Why a site's Pages project is read, and whether its deployments must be listed."""

    site: str
    project: str
    deployments: bool


def wanted_versions(spec: SiteSpec) -> list[tuple[str, int]]:
    """(environment, version) pairs the spec asks for: production, then preview if any."""
    wanted = [("production", spec.production.version)]
    if spec.preview is not None:
        wanted.append(("preview", spec.preview.version))
    return wanted


def _differs(
    site: str,
    scripts: Sequence[str],
    ledger: SiteLedger | None,
    env: str,
    version: int,
    builder: str,
) -> bool:
    """The live publish is not this version, or its build identity is stale (core/identity)."""
    return not serves_wanted(
        ledger, env, version, wanted_build(ledger, site, version, scripts, builder)
    )


def pages_needed(
    specs: Specs,
    sites: Sequence[str],
    ledgers: Mapping[str, SiteLedger],
    hostnames: Mapping[str, ObservedHostname],
    domains: Mapping[str, DomainRow],
    *,
    hostnames_complete: bool,
    builder: str = "",
) -> list[PagesNeed]:
    """The sites whose Pages project must be read this pass (module rule 1)."""
    suspension = {p.spec.suspension_origin for p in specs.policies.values()}
    needs: list[PagesNeed] = []
    for name in sites:
        spec = specs.sites[name].spec
        ledger = ledgers.get(name)
        differing = [
            (env, version)
            for env, version in wanted_versions(spec)
            if _differs(name, spec.scripts, ledger, env, version, builder)
        ]
        versions_differ = bool(differing)
        origin_needed = False
        for domain in spec.domains:
            have = hostnames.get(domain.canonical)
            if have is None:
                origin_needed = origin_needed or hostnames_complete
                continue
            row = domains.get(domain.canonical)
            if (
                have.origin in suspension
                or have.site != name
                or (row is not None and row.origin is not None and row.origin != have.origin)
            ):
                origin_needed = True
        if versions_differ or origin_needed:
            listed = any(_may_be_deployed(ledger, env, version) for env, version in differing)
            needs.append(PagesNeed(name, spec.pages_project, deployments=listed))
    return needs


def _may_be_deployed(ledger: SiteLedger | None, env: str, version: int) -> bool:
    """Whether a deployment of ``version`` may exist in ``env``, so deployments are listed.

    Only a version D1 has seen there (tried, live or superseded: a row at or above it) can
    have one: a publish writes its row before it uploads. A version newer than every row (a
    bump) has none, and its site needs the project alone. Without rows, nothing is known.
    """
    if ledger is None:
        return True
    rows = [row for row in (ledger.live.get(env), ledger.latest.get(env)) if row is not None]
    return not rows or any(row.version >= version for row in rows)


async def read_pages(
    cf: CloudflareReader,
    specs: Specs,
    needs: Sequence[PagesNeed],
    ledgers: Mapping[str, SiteLedger],
    projects: dict[str, ObservedProject],
    limits: ObserveLimits,
    say: Callable[[str], None],
) -> None:
    """Read each needed project (and its production deployments where needed) into ``projects``."""
    gate = asyncio.Semaphore(limits.pages_concurrency)
    # The account's project list costs a request per hundred projects (about one per hundred
    # sites); when more projects are needed than that, one listing replaces their GETs.
    listing: dict[str, PagesProject] | None = None
    if -(-len(specs.sites) // PROJECTS_PER_PAGE) < len(needs):
        listing = {project.name: project for project in await cf.list_projects()}
        say(f"cloudflare: {len(listing)} Pages projects listed")

    async def one(need: PagesNeed) -> None:
        async with gate:
            if listing is not None:
                project = listing.get(need.project)
                if project is None:
                    return  # the planner reports the missing project
            else:
                try:
                    project = await cf.get_project(need.project)
                except NotFoundError:
                    return  # the planner reports the missing project
            serving = (
                project.canonical_deployment.id
                if project.canonical_deployment is not None
                else None
            )
            ledger = ledgers.get(need.site)
            recorded = ledger.live.get("production") if ledger is not None else None
            moved = serving is not None and (recorded is None or recorded.deployment_id != serving)
            deployments: tuple[ObservedDeployment, ...] | None = None
            if need.deployments or moved:
                listed = await cf.list_deployments(need.project, env="production")
                deployments = tuple(
                    sorted((_deployment(d) for d in listed), key=lambda d: (d.created_on, d.id))
                )
            projects[need.project] = ObservedProject(
                name=need.project,
                subdomain=project.subdomain or f"{need.project}.pages.dev",
                production_deployment_id=serving,
                deployments=deployments,
            )

    await gather_all(one(need) for need in needs)
    listed = sum(1 for p in projects.values() if p.deployments is not None)
    say(f"cloudflare: {len(projects)} Pages projects read ({listed} with deployments)")


_STATUS = {"live": "success", "failed": "failure", "canceled": "canceled", "skipped": "skipped"}


def _deployment(item: Deployment) -> ObservedDeployment:
    """A listed deployment as an observed fact, with the tag it was published under."""
    tag = item.tag
    stage = item.latest_stage
    return ObservedDeployment(
        id=item.id,
        environment=item.environment,
        status=_STATUS.get(item.state, "active"),
        stage=stage.name if stage is not None else "",
        created_on=provider_time(item.created_on),
        site=tag.site if tag is not None else None,
        version=tag.version if tag is not None else None,
        commit=(tag.commit or None) if tag is not None else None,
        build=(tag.build or None) if tag is not None else None,
    )
