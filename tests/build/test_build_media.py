"""Image optimisation and hostile media: variants, orientation, metadata, cache, refusals.

Pure (no R2): originals are tiny real files from ``sandbox/photos.py``; the variant cache is
the dict-backed ``MemoryCache``. The R2 side is ``tests/providers/test_r2.py``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from reconciler.build.content import snapshot_from_data
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.media import (
    EncoderSettings,
    MemoryCache,
    check_svg,
    forget_optimised,
    optimise,
)
from reconciler.build.site import build_site
from reconciler.sandbox.photos import make_photo

SMALL = EncoderSettings(widths=(32, 64))


def asset_entry(key: str, data: bytes, content_type: str) -> dict[str, Any]:
    return {
        "key": key,
        "content_type": content_type,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@pytest.fixture(autouse=True)
def _fresh_memo() -> None:
    forget_optimised()  # each test sees the cache it builds, not an earlier test's memo


def test_variants_come_in_avif_and_webp_at_each_smaller_width_never_upscaled() -> None:
    image = optimise("a.jpg", make_photo(100, 50, seed=1), "image/jpeg", settings=SMALL)
    got = [(v.format, v.width, v.height) for v in image.variants]
    assert got == [("avif", 32, 16), ("avif", 64, 32), ("webp", 32, 16), ("webp", 64, 32)]
    middle = optimise("m.jpg", make_photo(50, 40, seed=1), "image/jpeg", settings=SMALL)
    assert [v.width for v in middle.of("webp")] == [32, 50]  # the original width, not 64
    assert all(Image.open(io.BytesIO(v.data)).format == v.format.upper() for v in image.variants)
    small = optimise("b.png", make_photo(20, 10, fmt="png"), "image/png", settings=SMALL)
    assert {v.width for v in small.variants} == {20}


def test_exif_orientation_is_applied_and_metadata_stripped() -> None:
    rotated = make_photo(60, 30, seed=2, orientation=6)  # stored 60x30, viewed 30x60
    assert Image.open(io.BytesIO(rotated)).getexif()
    image = optimise("r.jpg", rotated, "image/jpeg", settings=SMALL)
    assert (image.width, image.height) == (30, 60)
    for variant in image.variants:
        opened = Image.open(io.BytesIO(variant.data))
        assert opened.size == (variant.width, variant.height)
        assert not opened.getexif()
        assert "icc_profile" not in opened.info and "exif" not in opened.info


def test_the_same_original_gives_the_same_variants() -> None:
    data = make_photo(80, 40, seed=3)
    first = optimise("x.jpg", data, "image/jpeg", settings=SMALL)
    forget_optimised()
    second = optimise("x.jpg", data, "image/jpeg", settings=SMALL)
    assert [v.data for v in first.variants] == [v.data for v in second.variants]


def test_a_cached_original_is_not_encoded_again_and_writes_nothing() -> None:
    cache = MemoryCache()
    data = make_photo(80, 40, seed=4)
    first = optimise("x.jpg", data, "image/jpeg", cache=cache, settings=SMALL)
    assert first.encoded
    stored = dict(cache.objects)
    assert any(name.endswith("/index.json") for name in stored)
    assert all(name.startswith(first.sha256 + "/" + SMALL.digest() + "/") for name in stored)
    forget_optimised()  # a new process: only the cache remembers
    again = optimise("y.jpg", data, "image/jpeg", cache=cache, settings=SMALL)
    assert not again.encoded
    assert cache.objects == stored
    assert [v.data for v in again.variants] == [v.data for v in first.variants]


def test_other_encoder_settings_are_other_cache_entries() -> None:
    cache = MemoryCache()
    data = make_photo(80, 40, seed=5)
    optimise("x.jpg", data, "image/jpeg", cache=cache, settings=SMALL)
    other = EncoderSettings(widths=(32, 64), webp_quality=50)
    forget_optimised()
    assert optimise("x.jpg", data, "image/jpeg", cache=cache, settings=other).encoded


def test_a_damaged_cache_entry_is_encoded_again() -> None:
    cache = MemoryCache()
    data = make_photo(80, 40, seed=6)
    optimise("x.jpg", data, "image/jpeg", cache=cache, settings=SMALL)
    victim = next(n for n in cache.objects if n.endswith(".webp"))
    cache.objects[victim] = b"not the variant"
    forget_optimised()
    assert optimise("x.jpg", data, "image/jpeg", cache=cache, settings=SMALL).encoded


# --- hostile media ---------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\0" * 64)
    body += (
        struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize(
    ("data", "content_type", "reason", "expected"),
    [
        (b"\xff\xd8\xff\xe0 truncated jpeg", "image/jpeg", BuildFailure.CORRUPT_ASSET,
         "corrupt asset 'k': not a decodable image/jpeg"),
        (b"plain text, not an image", "image/png", BuildFailure.CORRUPT_ASSET,
         "corrupt asset 'k': not a decodable image/png: unknown format"),
        (make_photo(20, 10, fmt="png"), "image/jpeg", BuildFailure.WRONG_TYPE,
         "wrong content type for asset 'k': declared image/jpeg but the bytes are PNG"),
        (_png_header_only(10000, 5000), "image/png", BuildFailure.OVERSIZED_ASSET,
         "oversized asset 'k': 10000x5000 is 50000000 pixels, over the limit of 40000000"),
        (_png_header_only(30000, 30000), "image/png", BuildFailure.OVERSIZED_ASSET,
         "oversized asset 'k': decompression bomb: Image size (900000000 pixels) exceeds"),
        (b"x" * (20 * 1024 * 1024 + 1), "image/jpeg", BuildFailure.OVERSIZED_ASSET,
         "oversized asset 'k': 20971521 bytes, over the limit of 20971520 bytes"),
    ],
    ids=["truncated", "not-an-image", "png-declared-jpeg", "over-pixels", "bomb", "huge"],
)  # fmt: skip
def test_hostile_originals_are_located_build_failures(
    data: bytes, content_type: str, reason: BuildFailure, expected: str
) -> None:
    with pytest.raises(BuildError) as caught:
        optimise("k", data, content_type)
    assert caught.value.reason is reason
    assert caught.value.message.startswith(expected)


@pytest.mark.parametrize(
    ("svg", "expected"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
         "SVG contains <script>"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "SVG has an onload"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">'
         b'<image x:href="https://evil.example/p.png"/></svg>', "SVG references"),
        (b'<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg"/>',
         "SVG with a DTD"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>',
         "SVG contains <foreignobject>"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"/></svg>',
         "SVG references"),
    ],
    ids=["script", "onload", "external-href", "dtd", "foreign-object", "javascript-link"],
)  # fmt: skip
def test_svgs_that_could_run_script_or_load_urls_are_refused(svg: bytes, expected: str) -> None:
    with pytest.raises(BuildError) as caught:
        check_svg("logo.svg", svg)
    assert caught.value.reason is BuildFailure.UNSAFE_ASSET
    assert caught.value.message.startswith("unsafe asset 'logo.svg': " + expected)


def test_a_clean_svg_passes_with_its_size_and_broken_xml_is_corrupt() -> None:
    clean = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><use href="#a"/></svg>'
    assert check_svg("logo.svg", clean) == (40, 20)
    with pytest.raises(BuildError) as caught:
        check_svg("logo.svg", b"<svg><unclosed></svg>")
    assert caught.value.reason is BuildFailure.CORRUPT_ASSET


# --- in a build ------------------------------------------------------------------------------


def _snapshot(sample: dict[str, Any]) -> Any:
    return snapshot_from_data(copy.deepcopy(sample))


def test_pages_show_pictures_with_avif_and_webp_sources_and_explicit_sizes(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = build_site(_snapshot(sample), site="s", version=1, assets=assets)
    home = output.files["index.html"].decode()
    pictures = re.findall(r"<picture>.*?</picture>", home)
    assert len(pictures) == 4  # hero, image block, two gallery images
    for picture in pictures:
        assert '<source type="image/avif" srcset="' in picture
        assert '<source type="image/webp" srcset="' in picture
        assert re.search(r'<img [^>]*width="\d+" height="\d+"', picture)
        for url in re.findall(r"(/assets/img/[0-9a-f]{16}/\d+\.(?:avif|webp))", picture):
            assert url.lstrip("/") in output.files
    assert 'fetchpriority="high"' in pictures[0]  # the hero is above the fold
    assert all('loading="lazy"' in p for p in pictures[1:])


def test_the_built_css_reserves_every_embeds_height_and_the_mobile_footer(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = build_site(_snapshot(sample), site="s", version=1, assets=assets)
    css = output.files["assets/site.css"].decode()
    contact = output.files["contact/index.html"].decode()
    for height in re.findall(r'class="embed embed-h(\d+)"', contact):
        assert f".embed-h{height}{{min-height:{height}px}}" in css
    assert 'style="' not in contact  # heights live in the stylesheet, not inline
    assert re.search(r"\.site-footer\{min-height:\d+rem", css)
    assert re.search(r"@media \(max-width:40rem\)\{\.site-footer\{min-height:\d+rem\}\}", css)


def test_media_figures_and_budget_weights_are_reported(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    output = build_site(_snapshot(sample), site="s", version=1, assets=assets)
    assert output.media_original_bytes == sum(len(b) for b in assets.values())
    assert output.media_variant_bytes > 0
    assert output.image_kb >= 1 and output.largest_image in assets
    assert output.page_weight_kb >= output.image_kb and output.heaviest_page == "/"


def test_a_text_asset_shown_as_an_image_is_the_wrong_type(
    sample: dict[str, Any], assets: dict[str, bytes]
) -> None:
    sample["assets"][1] = asset_entry("img/shop.jpg", assets["img/shop.jpg"], "text/html")
    with pytest.raises(BuildError) as caught:
        build_site(_snapshot(sample), site="s", version=1, assets=assets)
    assert caught.value.reason is BuildFailure.WRONG_TYPE
    assert caught.value.message == (
        "wrong content type for asset 'img/shop.jpg': text/html is shown as an image by "
        "pages[0].blocks[2] (image)"
    )


def test_an_unsafe_svg_fails_the_whole_build(sample: dict[str, Any]) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onclick="x()"/>'
    sample["assets"] = [asset_entry("img/logo.png", svg, "image/svg+xml")]
    sample["pages"][0]["blocks"] = [sample["pages"][0]["blocks"][0]]
    with pytest.raises(BuildError) as caught:
        build_site(_snapshot(sample), site="s", version=1, assets={"img/logo.png": svg})
    assert caught.value.reason is BuildFailure.UNSAFE_ASSET
