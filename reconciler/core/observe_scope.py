"""observe_scope: what an observation must read for the planner, decided by the planner's rules.

The observer (``runtime/observe*.py``) builds versions in memory and looks up DNS only where the
planner will use them. Rather than mirror the planner's branches, it asks these functions, which
``core/plan_sites.py`` (publish, rollback) and ``core/desired.py`` (hostname timing) use too:
the build wanted now, whether an environment serves it, whether D1 holds the version's snapshot,
the deployment a rollback would point production at, and when a hostname is stuck or late.
Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from reconciler.core.desired import DesiredHostname, desired_hostnames
from reconciler.core.identity import BuildInputs, is_stale, wanted_inputs
from reconciler.core.observed import (
    ObservedDeployment,
    ObservedHostname,
    ObservedProject,
    SiteLedger,
    domain_status,
)
from reconciler.core.spec_view import SpecsView

__all__ = [
    "built_deployment",
    "dns_check_due",
    "find_deployment",
    "hostnames_to_check",
    "needs_build",
    "serves_wanted",
    "snapshot_missing",
    "wanted_build",
]


def wanted_build(
    ledger: SiteLedger | None, site: str, version: int, scripts: Sequence[str], builder: str
) -> BuildInputs | None:
    """The inputs a build of ``version`` would have now; None when not all are known."""
    content = ledger.content_digests.get(version) if ledger is not None else None
    return wanted_inputs(site, version, content, tuple(scripts), builder)


def serves_wanted(
    ledger: SiteLedger | None, env: str, version: int, wanted: BuildInputs | None
) -> bool:
    """D1 records ``version`` live in ``env``, built from the inputs wanted now."""
    live = ledger.live.get(env) if ledger is not None else None
    return (
        live is not None
        and live.version == version
        and not is_stale(live.build_identity, wanted, live.build_inputs)
    )


def snapshot_missing(ledger: SiteLedger | None, version: int) -> bool:
    """D1 lists the site's versions and ``version`` is not one (the ``missing_version`` gate)."""
    return ledger is not None and bool(ledger.versions) and version not in ledger.versions


def find_deployment(
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


def built_deployment(
    project: ObservedProject,
    *,
    site: str,
    env: str,
    version: int,
    wanted: BuildInputs | None,
    untagged: bool,
) -> ObservedDeployment | None:
    """The successful deployment of the wanted build a rollback points ``env`` at (rule 5)."""
    build = wanted.identity[:12] if wanted is not None else None
    return find_deployment(
        project, site=site, version=version, env=env, build=build, untagged=untagged
    )


def needs_build(
    site: str,
    scripts: Sequence[str],
    env: str,
    version: int,
    ledger: SiteLedger | None,
    project: ObservedProject | None,
    builder: str,
) -> bool:
    """Whether the planner would build ``version`` for ``env`` (so its budget is checked).

    Not when D1 records it live as wanted, when D1 has no snapshot of it, or (production)
    when a successful deployment of the wanted build exists to roll back to.
    """
    wanted = wanted_build(ledger, site, version, scripts, builder)
    if serves_wanted(ledger, env, version, wanted) or snapshot_missing(ledger, version):
        return False
    if env != "production" or project is None:
        return True
    live = ledger.live.get(env) if ledger is not None else None
    at_version = live is not None and live.version == version  # live, but other inputs
    found = built_deployment(
        project, site=site, env=env, version=version, wanted=wanted, untagged=not at_version
    )
    return found is None


def dns_check_due(want: DesiredHostname, have: ObservedHostname, now: float) -> bool:
    """Stuck (failed ``max_recreates`` times) or not active past ``validation_timeout``."""
    status = domain_status(have.status, have.ssl_status)
    if status == "failed":
        return have.recreate_count >= want.max_recreates
    return status != "active" and now - have.status_since >= want.validation_timeout


def hostnames_to_check(
    specs: SpecsView,
    sites: Collection[str],
    hostnames: Mapping[str, ObservedHostname],
    now: float,
    limit: int,
) -> list[str]:
    """Declared, owned hostnames whose DNS is worth a look (stuck or late), ``limit`` at most."""
    found: set[str] = set()
    for name in sites:
        for want in desired_hostnames(specs, name, suspended=False) or ():
            have = hostnames.get(want.hostname)
            if have is not None and have.owned and dns_check_due(want, have, now):
                found.add(want.hostname)
    return sorted(found)[: max(limit, 0)]
