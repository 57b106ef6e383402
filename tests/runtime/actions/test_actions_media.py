"""Publishing real media: originals from R2 (moto), variants cached beside them, <picture> served.

The publish handler against the Cloudflare simulator, a migrated D1 and moto as R2. The page
the deployment serves is read back from the simulator's stored files (``PagesStore.serve``), so
"the <picture> sources exist in the deployment" is checked on what Pages would serve, not on
the builder's output. Hostile or missing media fails the publish, located, with nothing
uploaded; an unreachable R2 is a transient failure, retried, never recorded as a build failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from reconciler.build.media import forget_optimised
from reconciler.core.identity import inputs_from_json
from reconciler.core.outcome import Status
from reconciler.core.plan import ActionKind, JsonValue
from reconciler.providers.r2 import R2Store
from reconciler.runtime.actions import handlers_for
from reconciler.sandbox.photos import make_photo
from reconciler.sandbox.r2 import LocalR2

from support.actions import CONTENT, PROJECT, Rig, make_action

HERO = make_photo(200, 120, seed=21)
SHOP = make_photo(90, 90, fmt="png", seed=22)
BUDGET = {
    "max_js_kb": 50,
    "max_css_kb": 50,
    "max_third_party_scripts": 2,
    "max_image_kb": 500,
    "max_page_weight_kb": 2000,
}


def _entry(key: str, data: bytes, content_type: str) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    return {"key": key, "content_type": content_type, "bytes": len(data), "sha256": sha}


def content(**assets: tuple[bytes, str]) -> dict[str, Any]:
    """CONTENT with a hero image and an image block (hero.jpg, shop.png by default)."""
    files = assets or {"acme/hero.jpg": (HERO, "image/jpeg"), "acme/shop.png": (SHOP, "image/png")}
    keys = list(files)
    snapshot = copy.deepcopy(CONTENT)
    blocks = snapshot["pages"][0]["blocks"]
    blocks[0]["image"] = keys[0]
    blocks.extend({"type": "image", "asset": k, "alt": "A photo"} for k in keys[1:])
    snapshot["assets"] = [_entry(k, data, kind) for k, (data, kind) in files.items()]
    return snapshot


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalR2]:
    with LocalR2(bucket="media-actions") as server:
        yield server


@pytest.fixture(scope="module")
def store(moto: LocalR2) -> R2Store:
    return R2Store(moto.settings())


@pytest.fixture
def media(rig: Rig, moto: LocalR2, store: R2Store) -> Rig:
    """The rig with R2 as its asset store and variant cache, R2 emptied and re-seeded."""
    moto.reset()
    forget_optimised()
    store.put("acme/hero.jpg", HERO, content_type="image/jpeg")
    store.put("acme/shop.png", SHOP, content_type="image/png")
    store.writes = 0
    world = replace(rig.world, assets=store, variants=store)
    return replace(rig, world=world, handlers=handlers_for(world))


async def seed(rig: Rig, versions: dict[int, Any], *, wrong_hash: bool = False) -> None:
    await rig.db.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    await rig.db.execute(
        "INSERT INTO sites (id, tenant_id, name, pages_project) VALUES (?, 'acme', ?, ?)",
        (PROJECT, PROJECT, PROJECT),
    )
    for version, snapshot in versions.items():
        raw = json.dumps(snapshot)
        digest = "0" * 64 if wrong_hash else hashlib.sha256(raw.encode()).hexdigest()
        await rig.db.execute(
            "INSERT INTO site_versions (site_id, version_number, content_json, content_hash) "
            "VALUES (?, ?, ?, ?)",
            (PROJECT, version, raw, digest),
        )


def publish(version: int, *, scripts: tuple[str, ...] = (), budget: Any = None) -> Any:
    after: dict[str, JsonValue] = {
        "site": PROJECT,
        "tenant": "acme",
        "project": PROJECT,
        "environment": "production",
        "version": version,
        "commit": "c0ffee",
        "attempt": 1,
        "hosts": [],
        "scripts": list(scripts),
        "budget": dict(budget or BUDGET),
    }
    return make_action(ActionKind.PUBLISH, f"Site/{PROJECT}:production", after)


def served(rig: Rig, path: str) -> bytes | None:
    """What the live deployment serves at ``path`` (None for a 404)."""
    pages = rig.cf.sim.pages
    status, body, _ = pages.serve(pages.projects[PROJECT], path, rig.cf.clock.now())
    return body if status == 200 else None


def uploaded_files(rig: Rig) -> int:
    """Files whose bytes reached the simulated Pages (the upload calls' items)."""
    return len(rig.cf.sim.pages.projects[PROJECT].asset_bodies)


async def test_the_served_page_has_pictures_whose_avif_and_webp_files_are_deployed(
    media: Rig,
) -> None:
    await seed(media, {1: content()})
    outcome = await media.run(publish(1))
    assert outcome.status is Status.APPLIED, outcome.message
    page = served(media, "/index.html")
    assert page is not None
    html = page.decode()
    pictures = re.findall(r"<picture>.*?</picture>", html)
    assert len(pictures) == 2
    for picture in pictures:
        urls = re.findall(r"(/assets/img/[0-9a-f]{16}/\d+\.(avif|webp))", picture)
        assert {fmt for _, fmt in urls} == {"avif", "webp"}
        for url, fmt in urls:
            body = served(media, url)
            assert body is not None, url
            assert body[4:12] == b"ftypavif" if fmt == "avif" else body.startswith(b"RIFF")
    assert served(media, "/assets/media/acme/hero.jpg") is None  # the original is not shipped
    assert outcome.data["images_encoded"] == 2
    assert outcome.data["media_variant_bytes"] < outcome.data["media_original_bytes"]


async def test_the_publish_records_its_build_identity_and_tags_the_deployment(
    media: Rig,
) -> None:
    await seed(media, {1: content()})
    outcome = await media.run(publish(1, scripts=("https://cdn.example.com/a.js",)))
    assert outcome.status is Status.APPLIED, outcome.message
    [row] = await media.rows(
        "SELECT build_identity, build_inputs, image_kb, page_weight_kb FROM publish_versions"
    )
    inputs = inputs_from_json(row["build_inputs"])
    assert inputs is not None and inputs.identity == row["build_identity"]
    assert inputs.scripts == ("https://cdn.example.com/a.js",)
    assert row["image_kb"] >= 1 and row["page_weight_kb"] >= row["image_kb"]
    deployment = media.cf.sim.pages.projects[PROJECT].deployments[outcome.data["deployment_id"]]
    assert f"build={row['build_identity'][:12]}" in deployment.commit_message
    [budget] = await media.rows("SELECT * FROM performance_budgets")
    assert budget["current_image_kb"] == row["image_kb"] and budget["max_image_kb"] == 500


async def test_a_republish_encodes_nothing_and_uploads_only_what_pages_lacks(
    media: Rig, store: R2Store
) -> None:
    await seed(media, {1: content()})
    assert (await media.run(publish(1))).status is Status.APPLIED
    cached = store.writes
    assert uploaded_files(media) >= 8  # 4 variants of each image, the pages, CSS, JS
    media.cf.sim.pages.projects[PROJECT].asset_bodies.clear()  # count what the next upload sends
    forget_optimised()  # as after a restart: only R2 remembers the variants
    again = await media.run(publish(1, scripts=("https://cdn.example.com/a.js",)))
    assert again.status is Status.APPLIED, again.message
    assert again.data["images_encoded"] == 0 and again.data["images_cached"] == 2
    assert store.writes == cached  # nothing new cached
    # Only the pages changed (the script tag); every variant, the CSS and the JS were there.
    assert served(media, "/index.html") is not None
    assert uploaded_files(media) == 3  # index.html, contact/index.html, 404.html


async def test_a_missing_object_fails_located_and_nothing_is_uploaded(
    media: Rig, store: R2Store
) -> None:
    store.delete("acme/shop.png")
    await seed(media, {1: content()})
    outcome = await media.run(publish(1))
    assert outcome.status is Status.FAILED_PERMANENT
    assert outcome.message == (
        "build failed: missing asset: 'acme/shop.png' not found in the asset store"
    )
    assert uploaded_files(media) == 0 and not media.cf.sim.pages.projects[PROJECT].deployments


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"acme/bad.jpg": (b"\xff\xd8\xff\xe0broken", "image/jpeg")},
         "build failed: corrupt asset 'acme/bad.jpg': not a decodable image/jpeg"),
        ({"acme/png.jpg": (SHOP, "image/jpeg")},
         "build failed: wrong content type for asset 'acme/png.jpg': declared image/jpeg"),
        ({"acme/x.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
                         "image/svg+xml")},
         "build failed: unsafe asset 'acme/x.svg': SVG contains <script>"),
    ],
    ids=["corrupt", "wrong-type", "svg-script"],
)  # fmt: skip
async def test_hostile_media_fails_located_and_nothing_is_uploaded(
    media: Rig, store: R2Store, files: dict[str, tuple[bytes, str]], expected: str
) -> None:
    for key, (data, kind) in files.items():
        store.put(key, data, content_type=kind)
    await seed(media, {1: content(**files)})
    outcome = await media.run(publish(1))
    assert outcome.status is Status.FAILED_PERMANENT
    assert outcome.message.startswith(expected)
    [row] = await media.rows("SELECT status, error_message, build_identity FROM publish_versions")
    assert row["status"] == "failed" and row["error_message"].startswith(expected)
    assert row["build_identity"] is not None  # so a fix in place is retried, not blocked
    assert uploaded_files(media) == 0 and not media.cf.sim.pages.projects[PROJECT].deployments


async def test_an_image_over_budget_names_the_culprit(media: Rig) -> None:
    await seed(media, {1: content()})
    outcome = await media.run(publish(1, budget={**BUDGET, "max_image_kb": 1}))
    assert outcome.status is Status.FAILED_PERMANENT
    assert re.match(
        r"performance budget exceeded: image 'acme/(hero\.jpg|shop\.png)' is \d+ KB, over the "
        r"budget of 1 KB per image",
        outcome.message,
    )
    assert uploaded_files(media) == 0


async def test_an_editor_hash_that_disagrees_with_the_content_is_a_build_failure(
    media: Rig,
) -> None:
    await seed(media, {1: content()}, wrong_hash=True)
    outcome = await media.run(publish(1))
    assert outcome.status is Status.FAILED_PERMANENT
    assert "site_versions.content_hash of version 1 (000000000000) is not the sha256" in (
        outcome.message
    )


async def test_an_unreachable_r2_is_transient_and_not_recorded_as_a_build_failure(
    rig: Rig, moto: LocalR2
) -> None:
    gone = R2Store(replace(moto.settings(), endpoint="http://127.0.0.1:9"), attempts=1)
    world = replace(rig.world, assets=gone, variants=gone)
    rig = replace(rig, world=world, handlers=handlers_for(world))
    await seed(rig, {1: content()})
    outcome = await rig.run(publish(1))
    assert outcome.status is Status.FAILED_TRANSIENT
    assert outcome.message.startswith("r2: GET acme/hero.jpg: R2 unreachable")
    [row] = await rig.rows("SELECT status, error_message FROM publish_versions")
    assert row["error_message"] is None and row["status"] == "building"  # resumed next time
