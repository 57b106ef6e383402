"""``reconciler optimize-site SITE``: pre-build a site's image variants and report bytes saved.

Runbook 4's "re-process images to generate WebP/AVIF variants" job (``POST
/internal/images/optimize-site``), as a verb. Registered by ``cli.py``; reads the Site spec
(for the versions to optimise: production and preview, or ``--version``), the content
snapshots from D1 and the originals from R2 (settings through ``wiring``), and runs
``build/images.py`` ``prepare_media`` with R2 as the variant cache, so the next publish of
those versions encodes nothing. Nothing is published and no D1 row is written.

Prints one line per image (original, largest AVIF and WebP, encoded now or already cached)
and a total. Exit 0 when every image is optimised, 1 on any error (R2 or D1 not configured,
an unknown site or version, a missing or hostile original: the build error, located).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.build.content import parse_snapshot
from reconciler.build.errors import BuildError
from reconciler.build.images import PreparedMedia, prepare_media, shown_images
from reconciler.build.media import EncoderSettings
from reconciler.commands.common import EXIT_ERROR, EXIT_OK
from reconciler.errors import LoadError, ReconcilerError, SpecError
from reconciler.providers.r2 import R2Store
from reconciler.runtime.records import Records
from reconciler.spec.load import load_directory
from reconciler.wiring import ReadOnlyWorld, load_media, load_settings


def register(subparsers: Any) -> None:
    """Add the ``optimize-site`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "optimize-site",
        help="pre-build a site's WebP/AVIF image variants in R2 and report the bytes saved",
        description="Read the site's content versions from D1 and their originals from R2, "
        "encode every image's WebP and AVIF variants that R2 does not hold yet, and store "
        "them beside the originals, so the next publish encodes nothing (runbook 4).",
    )
    parser.add_argument("site", metavar="SITE", help="the Site's name")
    parser.add_argument(
        "--specs", default="specs", metavar="DIR", help="specs directory (default: specs)"
    )
    parser.add_argument(
        "--version",
        type=int,
        action="append",
        metavar="N",
        help="a content version to optimise (repeatable; default: production and preview)",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class VersionReport:
    """What optimising one content version did."""

    version: int
    media: PreparedMedia


def run(args: argparse.Namespace) -> int:
    """Optimise the site's versions; print per image and in total."""
    try:
        versions = _versions(Path(args.specs), args.site, args.version)
        settings = load_settings()
        store = load_media(settings)
        if store is None:
            raise ReconcilerError(
                "R2 is not configured: set R2_ENDPOINT, R2_BUCKET, R2_ACCESS_KEY_ID and "
                "R2_SECRET_ACCESS_KEY"
            )
        reports = asyncio.run(_optimise(settings, store, args.site, versions))
    except (SpecError, LoadError, BuildError, ReconcilerError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_ERROR
    for line in describe(args.site, reports):
        print(line)
    return EXIT_OK


def _versions(specs: Path, site: str, asked: list[int] | None) -> list[int]:
    if asked:
        return sorted(set(asked))
    fleet = load_directory(specs)
    found = fleet.sites.get(site)
    if found is None:
        raise ReconcilerError(f"no Site named {site!r} in {specs}")
    wanted = {found.spec.production.version}
    if found.spec.preview is not None:
        wanted.add(found.spec.preview.version)
    return sorted(wanted)


async def _optimise(
    settings: Any, store: R2Store, site: str, versions: list[int]
) -> list[VersionReport]:
    async with ReadOnlyWorld(settings) as world:
        contents = await Records(world.database).content([(site, v) for v in versions])
    reports = []
    for version in versions:
        raw = contents.get((site, version))
        if raw is None:
            raise ReconcilerError(f"{site} has no content snapshot of version {version} in D1")
        snapshot = parse_snapshot(raw)
        media = await asyncio.to_thread(
            prepare_media,
            snapshot,
            store,
            shown=shown_images(snapshot),
            cache=store,
            settings=EncoderSettings(),
            check=lambda: None,
        )
        reports.append(VersionReport(version, media))
    return reports


def _kb(size: int) -> str:
    return f"{size / 1024:,.1f} KB"


def describe(site: str, reports: list[VersionReport]) -> list[str]:
    """The report's lines: one per image (first version that shows it), then the totals."""
    lines: list[str] = []
    seen: set[str] = set()
    before = after = encoded = cached = 0
    for report in reports:
        media = report.media
        encoded += media.encoded
        cached += media.cached
        for key, image in media.images.items():
            if key in seen or not image.avif_weight:
                continue
            seen.add(key)
            before += image.original_bytes
            after += image.avif_weight
            lines.append(
                f"  v{report.version} {key}: {_kb(image.original_bytes)} -> AVIF "
                f"{_kb(image.avif_weight)}, WebP {_kb(image.weight)} at {image.width}px"
            )
    saved = before - after
    share = f" ({100 * saved / before:.0f}%)" if before else ""
    lines.insert(
        0,
        f"optimize-site {site}: versions {', '.join(str(r.version) for r in reports)}; "
        f"{encoded} images encoded, {cached} already cached in R2",
    )
    lines.append(
        f"bytes: {_kb(before)} of originals -> {_kb(after)} served at full width as AVIF; "
        f"saved {_kb(saved)}{share}"
    )
    return lines
