"""observe_builds: in-memory builds of the versions about to be published, for the budget gate.

Called by ``runtime/observe.py`` last (``observe`` rule 1): the versions the planner would
build (no successful deployment of them to roll back to), read from D1's snapshots and built
with :func:`reconciler.build.site.build_site` into ``BuildPreview`` figures. Variants are read
through the cache, never written: a plan writes nothing anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from reconciler.build.content import parse_snapshot
from reconciler.build.errors import BuildError
from reconciler.build.media import ReadOnlyCache, VariantCache
from reconciler.build.site import AssetStore, build_site
from reconciler.core.observe_scope import needs_build
from reconciler.core.observed import BuildPreview, ObservedProject, SiteLedger
from reconciler.runtime.observe_clients import ObserveClients
from reconciler.runtime.observe_pages import wanted_versions
from reconciler.runtime.records import Records
from reconciler.spec.load import Specs

__all__ = ["about_to_publish", "build_previews"]


def about_to_publish(
    specs: Specs,
    sites: Sequence[str],
    ledgers: Mapping[str, SiteLedger],
    projects: Mapping[str, ObservedProject],
    builder: str = "",
) -> list[tuple[str, int]]:
    """(site, version) pairs the planner would build (``core/observe_scope.needs_build``)."""
    pending: set[tuple[str, int]] = set()
    for name in sites:
        spec = specs.sites[name].spec
        ledger = ledgers.get(name)
        project = projects.get(spec.pages_project)
        for env, version in wanted_versions(spec):
            if needs_build(name, spec.scripts, env, version, ledger, project, builder):
                pending.add((name, version))
    return sorted(pending)


async def build_previews(
    clients: ObserveClients,
    specs: Specs,
    pending: Sequence[tuple[str, int]],
    builds: dict[tuple[str, int], BuildPreview],
    say: Callable[[str], None],
) -> None:
    """Build each pending version whose snapshot D1 holds; its figures go into ``builds``."""
    contents = await Records(clients.database).content(pending)
    for site, version in pending:
        raw = contents.get((site, version))
        if raw is None:
            continue  # no snapshot in D1: nothing to build (the planner decides)
        scripts = tuple(specs.sites[site].spec.scripts)
        variants = ReadOnlyCache(clients.variants) if clients.variants is not None else None
        preview = await asyncio.to_thread(
            _preview, site, version, raw, scripts, clients.assets, variants
        )
        if preview is not None:
            builds[(site, version)] = preview
    say(f"build: {len(builds)} versions built in memory for the budget check")


def _preview(
    site: str,
    version: int,
    raw: str,
    scripts: tuple[str, ...],
    assets: AssetStore | None,
    variants: VariantCache | None,
) -> BuildPreview | None:
    """Build one version in memory; None when its assets cannot be checked here.

    Variants come from the cache where they are; the others are encoded in memory and
    dropped (the publisher encodes and caches them), so a plan writes nothing anywhere.
    """
    try:
        snapshot = parse_snapshot(raw)
        if snapshot.assets and assets is None:
            return None  # no asset store configured: the publisher checks at publish time
        output = build_site(
            snapshot,
            site=site,
            version=version,
            assets=assets or {},
            scripts=scripts,
            variants=variants,
        )
    except BuildError as exc:
        return BuildPreview(
            site=site,
            version=version,
            content_hash=None,
            js_kb=0,
            css_kb=0,
            third_party_scripts=0,
            error=exc.message,
        )
    return BuildPreview(
        site=site,
        version=version,
        content_hash=output.content_hash,
        js_kb=output.js_kb,
        css_kb=output.css_kb,
        third_party_scripts=output.third_party_scripts,
        media=output.media,
    )
