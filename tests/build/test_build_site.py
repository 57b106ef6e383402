"""The static-site builder: deterministic files and hashes, safe HTML, checked assets, deadlines."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.build.assethash import pages_asset_hash
from reconciler.build.content import ContentSnapshot, parse_snapshot
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.site import BuildOutput, build_site, content_hash, kilobytes

SCRIPTS = ("https://www.googletagmanager.com/gtag/js?id=G-1",)


def _snapshot(data: dict[str, Any]) -> ContentSnapshot:
    return parse_snapshot(json.dumps(data))


def _build(
    data: dict[str, Any],
    assets: dict[str, bytes],
    *,
    version: int = 12,
    scripts: tuple[str, ...] = SCRIPTS,
    deadline: float | None = None,
    clock: Callable[[], float] = lambda: 0.0,
) -> BuildOutput:
    return build_site(
        _snapshot(data),
        site="acme-home",
        version=version,
        assets=assets,
        scripts=scripts,
        deadline=deadline,
        clock=clock,
    )


def _html(output: BuildOutput) -> str:
    return "".join(
        data.decode("utf-8") for path, data in output.files.items() if path.endswith(".html")
    )


def test_the_same_input_builds_the_same_bytes_hash_and_manifest(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    first = _build(sample, assets)
    second = _build(json.loads(json.dumps(sample)), dict(reversed(list(assets.items()))))
    assert dict(first.files) == dict(second.files)
    assert first.content_hash == second.content_hash
    assert dict(first.manifest) == dict(second.manifest)
    assert first.manifest_json() == second.manifest_json()


def test_a_different_version_or_content_changes_the_hash(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    base = _build(sample, assets).content_hash
    assert _build(sample, assets, version=13).content_hash != base
    sample["pages"][0]["title"] = "Acme Bakery!"
    assert _build(sample, assets).content_hash != base


def test_the_build_lays_out_pages_styles_scripts_and_assets(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = _build(sample, assets)
    logo = hashlib.sha256(assets["img/logo.png"]).hexdigest()[:16]
    shop = hashlib.sha256(assets["img/shop.jpg"]).hexdigest()[:16]
    # Raster originals are never published: their WebP and AVIF variants are, by content hash.
    assert sorted(output.files) == sorted(
        [
            "404.html",
            "assets/blocks.js",
            f"assets/img/{logo}/48.avif",
            f"assets/img/{logo}/48.webp",
            f"assets/img/{shop}/96.avif",
            f"assets/img/{shop}/96.webp",
            "assets/site.css",
            "contact/index.html",
            "index.html",
        ]
    )
    assert output.files[f"assets/img/{logo}/48.webp"].startswith(b"RIFF")
    assert output.content_types["index.html"] == "text/html; charset=utf-8"
    assert output.content_types[f"assets/img/{shop}/96.avif"] == "image/avif"
    assert output.content_types["assets/blocks.js"].startswith("application/javascript")
    home = output.files["index.html"].decode("utf-8")
    assert home.startswith('<!doctype html>\n<html lang="en">')
    assert '<meta name="generator" content="sitebuilder acme-home v12">' in home
    assert home.count('<link rel="stylesheet"') == 1
    assert '<a href="/contact">Contact</a>' in home
    assert '<footer class="site-footer">' in home.split("</main>")[1]
    assert "--primary:#aa3300" in output.files["assets/site.css"].decode("utf-8")


def test_the_content_hash_frames_every_path_and_its_bytes() -> None:
    files = {"b.html": b"2", "a.html": b"1"}
    digest = hashlib.sha256()
    for path, data in (("a.html", b"1"), ("b.html", b"2")):
        digest.update(path.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    assert content_hash(files) == digest.hexdigest()
    # Moving a byte from a name into the content must not collide.
    assert content_hash({"ab": b"c"}) != content_hash({"a": b"bc"})


def test_the_manifest_uses_the_pages_hash_of_every_file(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = _build(sample, assets)
    assert set(output.manifest) == {"/" + path for path in output.files}
    for path, data in output.files.items():
        value = output.manifest["/" + path]
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        assert value == pages_asset_hash(data, path)
        assert value != hashlib.sha256(data).hexdigest()[:32]
    parsed = json.loads(output.manifest_json())
    assert list(parsed) == sorted(parsed)
    assert " " not in output.manifest_json()


def test_a_block_naming_an_unlisted_asset_fails_with_missing_asset(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    sample["pages"][0]["blocks"][2]["asset"] = "img/nope.png"
    with pytest.raises(BuildError) as caught:
        _build(sample, assets)
    assert caught.value.reason is BuildFailure.MISSING_ASSET
    assert caught.value.message == (
        "missing asset: 'img/nope.png' named by pages[0].blocks[2] (image); "
        "the snapshot's assets do not list it"
    )


def test_an_asset_absent_from_the_store_fails_with_missing_asset(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    del assets["img/shop.jpg"]
    with pytest.raises(BuildError) as caught:
        _build(sample, assets)
    assert caught.value.reason is BuildFailure.MISSING_ASSET
    assert caught.value.message == "missing asset: 'img/shop.jpg' not found in the asset store"


def test_any_store_with_get_serves_assets(sample: dict[str, Any], assets: dict[str, bytes]) -> None:
    class Store:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def get(self, key: str, /) -> bytes | None:
            self.asked.append(key)
            return assets.get(key)

    store = Store()
    output = build_site(
        _snapshot(sample),
        site="s",
        version=1,
        assets=store,
        scripts=(),
        deadline=None,
        clock=lambda: 0.0,
    )
    assert store.asked == ["img/logo.png", "img/shop.jpg"]
    shop = hashlib.sha256(assets["img/shop.jpg"]).hexdigest()[:16]
    assert f"assets/img/{shop}/96.webp" in output.files


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        (None, "corrupt asset 'img/shop.jpg': its bytes do not match"),
        (b"short", "corrupt asset 'img/shop.jpg': the store holds 5 bytes, the snapshot says"),
    ],
)
def test_asset_bytes_that_differ_from_the_snapshot_fail_as_corrupt(
    sample: dict[str, Any], assets: dict[str, bytes], replacement: bytes | None, expected: str
) -> None:
    original = assets["img/shop.jpg"]
    # None: the same length with one byte flipped (a hash mismatch, not a size mismatch).
    assets["img/shop.jpg"] = (
        replacement if replacement is not None else original[:-1] + bytes([original[-1] ^ 1])
    )
    with pytest.raises(BuildError) as caught:
        _build(sample, assets)
    assert caught.value.reason is BuildFailure.CORRUPT_ASSET
    assert caught.value.message.startswith(expected)


def _jumping_clock(start: float, jump_after: int, jump_to: float) -> Callable[[], float]:
    """A clock that reads ``start`` for ``jump_after`` calls, then ``jump_to`` forever."""
    calls: Iterator[int] = iter(range(10**9))

    def clock() -> float:
        return start if next(calls) < jump_after else jump_to

    return clock


@pytest.mark.parametrize("jump_after", [1, 2, 3, 5, 8])
def test_a_build_past_its_deadline_fails_with_its_time_limit(
    sample: dict[str, Any], assets: dict[str, bytes], jump_after: int
) -> None:
    clock = _jumping_clock(1000.0, jump_after, 1031.0)
    with pytest.raises(BuildError) as caught:
        _build(sample, assets, deadline=1030.0, clock=clock)
    assert caught.value.reason is BuildFailure.TIMEOUT
    assert caught.value.message == "build exceeded its time limit of 30s"


def test_a_build_within_its_deadline_succeeds(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    clock = _jumping_clock(1000.0, 3, 1029.5)
    output = _build(sample, assets, deadline=1030.0, clock=clock)
    assert "index.html" in output.files


def test_user_strings_are_html_escaped_everywhere(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    evil = '<script>alert("x")</script>"\'><img src=x onerror=alert(1)>'
    home, contact = sample["pages"]
    home["title"] = evil
    home["description"] = evil
    hero, text, image, gallery, footer = home["blocks"]
    hero.update(heading=evil, subheading=evil, image_alt=evil)
    hero["cta"]["label"] = evil
    text["text"] = f"## {evil}\n{evil}\n\n- {evil}"
    image.update(alt=evil, caption=evil)
    gallery["images"][0]["alt"] = evil
    footer["text"] = evil
    footer["links"][0]["label"] = evil
    form = contact["blocks"][0]
    form["fields"][0]["label"] = evil
    form["submit_label"] = evil
    contact["title"] = evil
    output = _build(sample, assets)
    html = _html(output)
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "onerror=alert(1)>" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot;&#x27;&gt;" in html
    # Only the builder's own scripts and the https third-party ones appear as script tags.
    sources = set(re.findall(r'<script src="([^"]*)"', html))
    assert sources == {
        output_js_href(html),
        SCRIPTS[0],
        "https://maps.example.com/embed.js",
    }


def output_js_href(html: str) -> str:
    """The versioned URL of the first-party block script, as the pages reference it."""
    match = re.search(r'<script src="(/assets/blocks\.js\?v=[0-9a-f]{8})" defer>', html)
    assert match is not None
    return match.group(1)


def test_an_http_embed_is_rejected_before_building(sample: dict[str, Any]) -> None:
    sample["pages"][1]["blocks"][1]["script_url"] = "http://maps.example.com/embed.js"
    with pytest.raises(BuildError) as caught:
        _snapshot(sample)
    assert "script_url: only https:// URLs are allowed" in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["http://cdn.example.com/a.js", "javascript:alert(1)", "//cdn.example.com/a.js", "https://"],
)
def test_a_site_script_that_is_not_https_fails_the_build(
    sample: dict[str, Any], assets: dict[str, bytes], url: str
) -> None:
    with pytest.raises(BuildError) as caught:
        _build(sample, assets, scripts=(url,))
    assert caught.value.reason is BuildFailure.UNSAFE_SCRIPT
    assert caught.value.message.startswith(f"site script {url!r} is not an https:// URL")


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 0), (1, 1), (1023, 1), (1024, 1), (1025, 2), (250 * 1024, 250)]
)
def test_kilobytes_round_up_in_units_of_1024_bytes(size: int, expected: int) -> None:
    assert kilobytes(size) == expected


def test_sizes_count_first_party_files_and_inline_css_exactly(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = _build(sample, assets)
    css = len(output.files["assets/site.css"]) + len("min-height:300px")
    js = len(output.files["assets/blocks.js"])
    assert output.css_kb == -(-css // 1024)
    assert output.js_kb == -(-js // 1024)
    assert output.js_kb >= 1


def test_a_site_without_forms_or_galleries_ships_no_javascript(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    del sample["pages"][0]["blocks"][3]  # gallery
    del sample["pages"][1]["blocks"][0]  # contact form
    output = _build(sample, assets)
    assert "assets/blocks.js" not in output.files
    assert output.js_kb == 0
    assert "blocks.js" not in _html(output)


def test_a_minimal_site_has_exactly_known_sizes() -> None:
    data = {"format": 1, "pages": [{"path": "/", "title": "Home", "blocks": []}]}
    output = _build(data, {}, scripts=())
    assert output.js_kb == 0
    assert output.css_kb == kilobytes(len(output.files["assets/site.css"]))
    assert output.third_party_scripts == 0
    assert list(output.files) == ["404.html", "assets/site.css", "index.html"]


def test_third_party_scripts_count_distinct_site_and_embed_urls(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    a, b, c = (f"https://cdn{i}.example.com/x.js" for i in range(3))
    sample["pages"][0]["blocks"].append({"type": "embed", "script_url": b, "height": 100})
    sample["pages"][1]["blocks"][1]["script_url"] = c
    sample["pages"][1]["blocks"].append({"type": "embed", "script_url": c, "height": 120})
    output = _build(sample, assets, scripts=(a, a, b))
    assert output.third_party_scripts == 3
    assert output.third_party_script_urls == (a, b, c)
    assert output.files["index.html"].decode().count(f'<script src="{a}" async>') == 1


def test_text_blocks_render_headings_lists_and_paragraphs(assets: dict[str, bytes]) -> None:
    text = "# Title\nline one\nline two\n\n- a\n- b\nafter\n\n### Small"
    data = {
        "format": 1,
        "pages": [{"path": "/", "title": "Home", "blocks": [{"type": "text", "text": text}]}],
    }
    home = _build(data, {}).files["index.html"].decode()
    assert (
        '<section class="text"><h2>Title</h2><p>line one<br>line two</p>'
        "<ul><li>a</li><li>b</li></ul><p>after</p><h3>Small</h3></section>"
    ) in home


def test_nested_pages_are_written_as_directory_indexes(assets: dict[str, bytes]) -> None:
    data = {
        "format": 1,
        "pages": [
            {"path": "/", "title": "Home"},
            {"path": "/about/team", "title": "Team"},
        ],
    }
    output = _build(data, {})
    assert "about/team/index.html" in output.files
    assert '<a href="/about/team" aria-current="page">Team</a>' in (
        output.files["about/team/index.html"].decode()
    )
