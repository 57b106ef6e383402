"""Seed a sandbox for a fleet the way the site editor and billing would have, before any apply.

Used by the demo (``reconciler/demo.py``), ``reconciler sandbox up --seed``, the runbook
scenario tests, the crash tests and ``bench/bench_publish.py``. Unlike
``bench/converged.py`` (which fakes the world *after* an apply), this leaves the world
*before* one: nothing is published, no custom hostname exists, D1 has no ledger rows. What it
writes, for every ``Site`` (and ``Tenant``) of a :class:`~reconciler.spec.load.Specs`:

- D1 (the SQLite file behind the simulated database, with :mod:`sqlite3`; migrated first when
  ``d1_migrations`` is missing): a ``tenants`` row (active) per tenant, a ``sites`` row per site
  (no version live yet), and ``site_versions`` content snapshots for versions
  ``1 .. max(production, preview) + 2``, so a version bump of one or two has content to build.
  The snapshots are small and deterministic (a hero, a text, a WhatsApp contact form to the
  tenant's number, a footer; the version number in the text, so each version has its own
  content hash), valid per ``build/content.py`` (checked here). When the sandbox runs R2
  (moto), they show real photos too (:func:`site_photos`: a JPEG hero, a PNG, a WebP and a
  JPEG whose EXIF says "rotate", of several sizes, drawn by ``sandbox/photos.py``), uploaded
  to the bucket here; without R2 they reference no media and builds need no asset store.
- The Cloudflare simulator: every Pages project the sites name (``ensure_projects``), and the
  sandbox DNS of every declared hostname pointed at the zone's CNAME target, so hostnames the
  reconciler creates validate; hostnames in ``unpointed`` are left without a record (runbook 2,
  "domain stuck pending").
- localstripe, when the sandbox runs it: per tenant a customer (metadata ``tenant``) with a
  paying card and an active monthly subscription.

localstripe chooses its own ids (``cus_…``, ``sub_…``; a create call accepts no ``id``), so the
tenant specs' ids cannot be matched. :func:`seed_world` returns the ids it got
(:attr:`Seeded.stripe`); callers then point the specs at them: :func:`write_stripe_ids`
rewrites the ids in a *working copy* of the spec files (what the demo does, before committing
the copy to Git), :func:`with_stripe_ids` returns an in-memory :class:`Specs` with them.
Without localstripe the specs' ids stay as they are and Stripe is simply not configured.

Nothing here calls the sandbox's HTTP APIs, so seeding leaves no trace in the call logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.build.content import parse_snapshot
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.migrate import migrate
from reconciler.sandbox.photos import FORMATS, make_photo
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs
from reconciler.spec.models import Site, Tenant, normalize_hostname

__all__ = [
    "EXTRA_VERSIONS",
    "MIGRATIONS",
    "SeedPhoto",
    "Seeded",
    "StripeIds",
    "photo_bytes",
    "seed_world",
    "site_photos",
    "snapshot_for",
    "with_stripe_ids",
    "write_stripe_ids",
]

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
"""The repository's D1 migrations (wrangler convention)."""

EXTRA_VERSIONS = 2
"""Snapshots seeded beyond the highest version a site's spec names."""


@dataclass(frozen=True, slots=True)
class StripeIds:
    """What localstripe created for one tenant."""

    customer: str
    subscription: str
    invoice: str | None


@dataclass(frozen=True, slots=True)
class SeedPhoto:
    """One photo the seed draws and uploads to the sandbox R2."""

    key: str
    width: int  # as stored (before EXIF orientation)
    height: int
    fmt: str  # jpeg | png | webp
    seed: int
    orientation: int | None = None

    @property
    def content_type(self) -> str:
        """The MIME type the snapshot declares."""
        return FORMATS[self.fmt]


def site_photos(site: str) -> tuple[SeedPhoto, ...]:
    """The photos of ``site``'s content: two of its own, two shared stock photos."""
    own = int(hashlib.sha256(site.encode()).hexdigest()[:6], 16)
    return (
        SeedPhoto(f"{site}/hero.jpg", 1600, 1000, "jpeg", own),
        SeedPhoto(f"{site}/shop.png", 800, 600, "png", own + 1),
        SeedPhoto("stock/bread.webp", 640, 480, "webp", 7),
        SeedPhoto("stock/baker.jpg", 800, 600, "jpeg", 8, orientation=6),  # shown 600x800
    )


def photo_bytes(photo: SeedPhoto) -> bytes:
    """The file of ``photo`` (deterministic)."""
    return make_photo(
        photo.width, photo.height, fmt=photo.fmt, seed=photo.seed, orientation=photo.orientation
    )


@dataclass(frozen=True, slots=True)
class Seeded:
    """What :func:`seed_world` wrote.

    Attributes:
        versions: per site, the highest content version seeded (1 .. that number exist).
        projects: the Pages projects that exist now.
        pointed: hostnames whose sandbox DNS points at the zone (normalized, sorted).
        unpointed: declared hostnames left without DNS (normalized, sorted).
        stripe: per tenant, the localstripe ids; empty when the sandbox runs no localstripe.
        media: the photo keys uploaded to the sandbox R2 and their sizes; empty without R2.
    """

    versions: Mapping[str, int]
    projects: tuple[str, ...]
    pointed: tuple[str, ...]
    unpointed: tuple[str, ...]
    stripe: Mapping[str, StripeIds]
    media: Mapping[str, int] = dataclasses.field(default_factory=dict)


def _media_blocks(photos: Mapping[str, tuple[SeedPhoto, bytes]]) -> list[dict[str, Any]]:
    keys = list(photos)
    blocks: list[dict[str, Any]] = []
    if len(keys) > 1:
        blocks.append({"type": "image", "asset": keys[1], "alt": "Inside the shop"})
    if len(keys) > 2:
        blocks.append(
            {"type": "gallery", "images": [{"asset": k, "alt": "A photo"} for k in keys[2:]]}
        )
    return blocks


def _asset_entries(photos: Mapping[str, tuple[SeedPhoto, bytes]]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "content_type": photo.content_type,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for key, (photo, data) in photos.items()
    ]


def snapshot_for(
    site: str,
    version: int,
    *,
    title: str,
    phone: str,
    photos: Mapping[str, tuple[SeedPhoto, bytes]] | None = None,
) -> dict[str, Any]:
    """The deterministic content snapshot of ``site`` at ``version`` (valid).

    Args:
        site: the site's name.
        version: the content version (appears in the text, so each version hashes apart).
        title: the page title (the tenant's display name).
        phone: the E.164 number the contact form sends to over WhatsApp.
        photos: key -> (photo, bytes) to show (hero, an image, a gallery); None: no media.
    """
    snapshot = _plain_snapshot(site, version, title=title, phone=phone)
    if photos:
        blocks = snapshot["pages"][0]["blocks"]
        hero = next(iter(photos))
        blocks[0].update({"image": hero, "image_alt": f"{title}, from the street"})
        blocks[2:2] = _media_blocks(photos)
        snapshot["assets"] = _asset_entries(photos)
    return snapshot


def _plain_snapshot(site: str, version: int, *, title: str, phone: str) -> dict[str, Any]:
    return {
        "format": 1,
        "lang": "en",
        "pages": [
            {
                "path": "/",
                "title": title,
                "blocks": [
                    {"type": "hero", "heading": title, "subheading": f"Welcome to {site}"},
                    {"type": "text", "text": f"This is version {version} of {site}."},
                    {
                        "type": "contact_form",
                        "fields": [
                            {"name": "name", "label": "Your name", "required": True},
                            {"name": "message", "label": "Message", "kind": "textarea"},
                        ],
                        "submit_label": "Send",
                        "target": "whatsapp",
                        "recipient": phone,
                    },
                    {"type": "footer", "text": f"{title} (v{version})"},
                ],
            }
        ],
        "assets": [],
    }


def seed_world(
    sandbox: Sandbox,
    specs: Specs,
    *,
    unpointed: Collection[str] = (),
    photos: Callable[[str], tuple[SeedPhoto, ...]] | None = None,
) -> Seeded:
    """Seed ``sandbox`` for ``specs`` as the editor and billing would have (see module doc).

    Safe to call on a started sandbox whose D1 is empty or only migrated; synchronous, and
    usable from inside a running event loop (the migration runs on a worker thread).

    Args:
        sandbox: a started :class:`~reconciler.sandbox.world.Sandbox`.
        specs: the fleet to seed for.
        unpointed: hostnames (any case, IDNA or Unicode) whose DNS is left unpointed.
        photos: the photos of a site (:func:`site_photos` when None; a benchmark passes
            smaller ones). Used only when the sandbox runs R2.

    Returns:
        What was written, including the localstripe ids to put into the specs.

    Raises:
        ValueError: a name in ``unpointed`` is not declared by any site.
        BuildError: a snapshot this module makes does not validate (a bug).
    """
    sim = sandbox.cloudflare
    path = sim.d1_path
    _migrate_if_needed(path)
    leave = {normalize_hostname(name) for name in unpointed}
    declared = {d.canonical for s in specs.sites.values() for d in s.spec.domains}
    unknown = sorted(leave - declared)
    if unknown:
        raise ValueError(f"unpointed names hostnames no site declares: {', '.join(unknown)}")

    drawn = _seed_r2(sandbox, specs, photos or site_photos) if sandbox.r2 is not None else {}
    versions = _seed_d1(path, specs, stamp=_iso(sandbox.clock.now()), photos=drawn)
    projects = sorted({site.spec.pages_project for site in specs.sites.values()})
    sim.ensure_projects(projects)
    for hostname in sorted(declared - leave):
        sim.point_dns(hostname)
    stripe = _seed_stripe(sandbox, specs) if sandbox.stripe is not None else {}
    return Seeded(
        versions=versions,
        projects=tuple(projects),
        pointed=tuple(sorted(declared - leave)),
        unpointed=tuple(sorted(leave)),
        stripe=stripe,
        media={key: len(data) for by_key in drawn.values() for key, (_, data) in by_key.items()},
    )


def with_stripe_ids(specs: Specs, ids: Mapping[str, StripeIds]) -> Specs:
    """``specs`` with each tenant in ``ids`` pointing at its localstripe customer and
    subscription (source locations kept)."""
    tenants: dict[str, Tenant] = dict(specs.tenants)
    for name, found in ids.items():
        tenant = tenants[name]
        stripe = tenant.spec.stripe.model_copy(
            update={"customer": found.customer, "subscription": found.subscription}
        )
        spec = tenant.spec.model_copy(update={"stripe": stripe})
        tenants[name] = tenant.model_copy(update={"spec": spec})
    return dataclasses.replace(specs, tenants=tenants)


def write_stripe_ids(directory: Path, specs: Specs, ids: Mapping[str, StripeIds]) -> list[Path]:
    """Rewrite the tenants' Stripe ids in the spec files of a working copy.

    Every exact occurrence of a tenant's old customer and subscription id (as a whole word) in
    the YAML files under ``directory`` is replaced by the localstripe id. Use it on a copy,
    never on the repository's ``specs/``.

    Args:
        directory: the working copy's specs directory.
        specs: the specs loaded from it (for the old ids).
        ids: per tenant, the new ids (:attr:`Seeded.stripe`).

    Returns:
        The files changed, sorted.

    Raises:
        ValueError: two tenants share an old id, so a textual rewrite would be ambiguous.
    """
    replacements: dict[str, str] = {}
    for name, found in sorted(ids.items()):
        ref = specs.tenants[name].spec.stripe
        pairs = [(ref.customer, found.customer)]
        if ref.subscription is not None:
            pairs.append((ref.subscription, found.subscription))
        for old, new in pairs:
            if old in replacements and replacements[old] != new:
                raise ValueError(f"two tenants use the Stripe id {old}: cannot rewrite it")
            replacements[old] = new
    if not replacements:
        return []
    pattern = re.compile(
        r"(?<![A-Za-z0-9_])("
        + "|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True))
        + r")(?![A-Za-z0-9_])"
    )
    changed: list[Path] = []
    for path in sorted(directory.rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        new_text = pattern.sub(lambda m: replacements[m.group(1)], text)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
            changed.append(path)
    return changed


# ---- internals ----------------------------------------------------------------------------------


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _migrate_if_needed(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'd1_migrations'"
        ).fetchone()
    finally:
        connection.close()
    if found is not None:
        return

    async def run() -> None:
        async with SqliteDatabase(path) as db:
            await migrate(db, MIGRATIONS)

    # A worker thread has no running loop, so this works from sync and async callers alike.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-migrate") as pool:
        pool.submit(asyncio.run, run()).result()


def _highest(site: Site) -> int:
    preview = site.spec.preview.version if site.spec.preview is not None else 0
    return max(site.spec.production.version, preview) + EXTRA_VERSIONS


def _seed_r2(
    sandbox: Sandbox, specs: Specs, choose: Callable[[str], tuple[SeedPhoto, ...]]
) -> dict[str, dict[str, tuple[SeedPhoto, bytes]]]:
    """Draw every site's photos and upload them to the sandbox R2 (each key once)."""
    from reconciler.providers.r2 import R2Store

    store = R2Store(sandbox.r2.settings())
    drawn: dict[str, bytes] = {}
    photos: dict[str, dict[str, tuple[SeedPhoto, bytes]]] = {}
    for name in sorted(specs.sites):
        photos[name] = {}
        for photo in choose(name):
            if photo.key not in drawn:
                drawn[photo.key] = photo_bytes(photo)
                store.put(photo.key, drawn[photo.key], content_type=photo.content_type)
            photos[name][photo.key] = (photo, drawn[photo.key])
    return photos


def _seed_d1(
    path: Path,
    specs: Specs,
    *,
    stamp: str,
    photos: Mapping[str, Mapping[str, tuple[SeedPhoto, bytes]]],
) -> dict[str, int]:
    tenants = [
        (name, t.spec.display_name, t.spec.policy, t.spec.whatsapp, stamp, stamp, stamp)
        for name, t in sorted(specs.tenants.items())
    ]
    sites = []
    snapshots = []
    versions: dict[str, int] = {}
    for name, site in sorted(specs.sites.items()):
        spec = site.spec
        tenant = specs.tenants[spec.tenant].spec
        sites.append((name, spec.tenant, name, spec.pages_project, stamp, stamp))
        versions[name] = _highest(site)
        for version in range(1, versions[name] + 1):
            content = snapshot_for(
                name,
                version,
                title=tenant.display_name,
                phone=tenant.whatsapp,
                photos=photos.get(name),
            )
            text = json.dumps(content, sort_keys=True, separators=(",", ":"))
            parse_snapshot(text)  # BuildError if this module makes an invalid snapshot
            digest = hashlib.sha256(text.encode()).hexdigest()
            snapshots.append((name, version, text, digest, "site-editor", stamp))
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO tenants (id, name, status, billing_policy, whatsapp_phone, "
                "status_changed_at, created_at, updated_at) VALUES (?, ?, 'active', ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO NOTHING",
                tenants,
            )
            connection.executemany(
                "INSERT INTO sites (id, tenant_id, name, pages_project, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                sites,
            )
            connection.executemany(
                "INSERT INTO site_versions (site_id, version_number, content_json, content_hash, "
                "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(site_id, version_number) DO NOTHING",
                snapshots,
            )
    finally:
        connection.close()
    return versions


def _seed_stripe(sandbox: Sandbox, specs: Specs) -> dict[str, StripeIds]:
    stripe = sandbox.stripe
    ids: dict[str, StripeIds] = {}
    for name, tenant in sorted(specs.tenants.items()):
        customer = stripe.create_customer(name=tenant.spec.display_name, metadata={"tenant": name})
        seeded = stripe.subscribe(customer, metadata={"tenant": name})
        ids[name] = StripeIds(customer=customer, subscription=seeded.id, invoice=seeded.invoice)
    return ids
