"""A snapshot's media for the builder: originals checked, variants made, ``<picture>`` written.

``build/site.py`` calls :func:`prepare_media` once per build (after the snapshot's references
are checked) and :func:`picture` for every image a block shows. Originals come from the asset
store (R2, ``providers/r2.py``) and are checked against the snapshot's size and SHA-256;
raster images go through ``build/media.py`` (variants from the cache or encoded now), SVGs
through its safety check, any other asset is published byte for byte.

Layout in the deployment: ``assets/img/<sha256[:16]>/<width>.<avif|webp>`` for variants
(content-addressed: a URL never changes meaning, so it can be cached forever), and
``assets/media/<key>`` for SVGs and other files. A raster original itself is never uploaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from typing import Protocol

from reconciler.build.content import Asset, ContentSnapshot, GalleryBlock, HeroBlock, ImageBlock
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.media import (
    RASTER_TYPES,
    SVG_TYPE,
    EncoderSettings,
    OptimisedImage,
    VariantCache,
    check_svg,
    optimise,
)

MEDIA_PREFIX = "assets/media/"
VARIANT_DIR = "assets/img/"


class AssetStore(Protocol):
    """Where asset bytes come from (R2 in production, a dict in tests)."""

    def get(self, key: str, /) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` when there is no such object."""
        ...


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """What a block needs to show one image, and its weight for the budget."""

    key: str
    width: int
    height: int
    src: str  # the fallback <img src>: the largest WebP, or the SVG itself
    avif: tuple[tuple[str, int], ...] = ()  # (url, width), smallest first
    webp: tuple[tuple[str, int], ...] = ()
    weight: int = 0  # bytes a visitor fetches at most for it (its largest WebP, or the SVG)
    largest_file: int = 0  # its largest single file, any format
    avif_weight: int = 0  # its largest AVIF (what a current browser fetches at full width)
    original_bytes: int = 0  # the original in R2


@dataclass(slots=True)
class PreparedMedia:
    """The files media adds to a build, and the figures of the optimisation."""

    files: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    images: dict[str, PreparedImage] = field(default_factory=dict)
    original_bytes: int = 0  # raster originals, as stored
    variant_bytes: int = 0  # every variant together
    encoded: int = 0  # images encoded in this build
    cached: int = 0  # images whose variants came from the cache


def asset_references(snapshot: ContentSnapshot) -> list[tuple[str, str]]:
    """Every (asset key, the block that shows it) in page and block order."""
    refs: list[tuple[str, str]] = []
    for p, page in enumerate(snapshot.pages):
        for b, block in enumerate(page.blocks):
            where = f"pages[{p}].blocks[{b}] ({block.type})"
            if isinstance(block, HeroBlock) and block.image is not None:
                refs.append((block.image, where))
            elif isinstance(block, ImageBlock):
                refs.append((block.asset, where))
            elif isinstance(block, GalleryBlock):
                refs.extend((image.asset, where) for image in block.images)
    return refs


def shown_images(snapshot: ContentSnapshot) -> dict[str, str]:
    """Asset key -> the first block that shows it as an image."""
    shown: dict[str, str] = {}
    for key, where in asset_references(snapshot):
        shown.setdefault(key, where)
    return shown


def _variant_path(image: OptimisedImage, fmt: str, width: int) -> str:
    return f"{VARIANT_DIR}{image.sha256[:16]}/{width}.{fmt}"


def _read(asset: Asset, store: Mapping[str, bytes] | AssetStore) -> bytes | None:
    data = store.get(asset.key)
    if data is None:
        return None
    if len(data) != asset.bytes:
        raise BuildError(
            f"corrupt asset {asset.key!r}: the store holds {len(data)} bytes, "
            f"the snapshot says {asset.bytes}",
            reason=BuildFailure.CORRUPT_ASSET,
        )
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise BuildError(
            f"corrupt asset {asset.key!r}: its bytes do not match the snapshot's sha256",
            reason=BuildFailure.CORRUPT_ASSET,
        )
    return bytes(data)


def _add_raster(media: PreparedMedia, image: OptimisedImage) -> None:
    for variant in image.variants:
        path = _variant_path(image, variant.format, variant.width)
        media.files[path] = variant.data
        media.content_types[path] = variant.mime
    webp = image.of("webp")
    media.images[image.key] = PreparedImage(
        key=image.key,
        width=webp[-1].width,
        height=webp[-1].height,
        src="/" + _variant_path(image, "webp", webp[-1].width),
        avif=tuple(
            ("/" + _variant_path(image, "avif", v.width), v.width) for v in image.of("avif")
        ),
        webp=tuple(("/" + _variant_path(image, "webp", v.width), v.width) for v in webp),
        weight=len(webp[-1].data),
        largest_file=max(len(v.data) for v in image.variants),
        avif_weight=max((len(v.data) for v in image.of("avif")), default=0),
        original_bytes=image.original_bytes,
    )
    media.original_bytes += image.original_bytes
    media.variant_bytes += image.variant_bytes
    if image.encoded:
        media.encoded += 1
    else:
        media.cached += 1


def _add_file(media: PreparedMedia, asset: Asset, data: bytes) -> None:
    path = MEDIA_PREFIX + asset.key
    media.files[path] = data
    media.content_types[path] = asset.content_type
    if asset.content_type == SVG_TYPE:
        size = check_svg(asset.key, data)
        width, height = size if size is not None else (0, 0)
        media.images[asset.key] = PreparedImage(
            key=asset.key,
            width=width,
            height=height,
            src="/" + path,
            weight=len(data),
            largest_file=len(data),
        )


def prepare_media(
    snapshot: ContentSnapshot,
    store: Mapping[str, bytes] | AssetStore,
    *,
    shown: Mapping[str, str],
    cache: VariantCache | None,
    settings: EncoderSettings,
    check: Callable[[], None],
) -> PreparedMedia:
    """Read, check and optimise every asset the snapshot lists.

    Args:
        snapshot: the validated content.
        store: original bytes by key.
        shown: asset key -> where a block shows it as an image (must be an image type).
        cache: the variant cache (None: encode every time, store nothing).
        settings: encoder settings.
        check: the build's deadline check, called between assets.

    Raises:
        BuildError: missing, corrupt, wrong type, oversized or unsafe media, located.
    """
    originals: list[tuple[Asset, bytes]] = []
    absent: list[str] = []
    for asset in snapshot.assets:  # every original read and checked before any encoding
        check()
        if asset.key in shown and not _is_image(asset.content_type):
            raise BuildError(
                f"wrong content type for asset {asset.key!r}: {asset.content_type} is shown "
                f"as an image by {shown[asset.key]}",
                reason=BuildFailure.WRONG_TYPE,
            )
        data = _read(asset, store)
        if data is None:
            absent.append(asset.key)
        else:
            originals.append((asset, data))
    if absent:
        names = ", ".join(repr(key) for key in absent)
        raise BuildError(
            f"missing asset{'s' if len(absent) > 1 else ''}: {names} not found in the asset store",
            reason=BuildFailure.MISSING_ASSET,
        )
    optimised = _optimise_all(originals, cache, settings, check)
    media = PreparedMedia()
    for asset, data in originals:
        image = optimised.get(asset.key)
        if image is not None:
            _add_raster(media, image)
        else:
            _add_file(media, asset, data)
    return media


def _optimise_all(
    originals: list[tuple[Asset, bytes]],
    cache: VariantCache | None,
    settings: EncoderSettings,
    check: Callable[[], None],
) -> dict[str, OptimisedImage]:
    """Every raster original optimised, several at once (Pillow encodes outside the GIL).

    The first failure in asset order is raised, so the message does not depend on timing.
    """
    rasters = [(a, d) for a, d in originals if a.content_type in RASTER_TYPES]
    if not rasters:
        return {}
    workers = max(1, min(len(rasters), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode") as pool:
        futures = [
            pool.submit(optimise, a.key, d, a.content_type, cache=cache, settings=settings)
            for a, d in rasters
        ]
        results: dict[str, OptimisedImage] = {}
        for (asset, _), future in zip(rasters, futures, strict=True):
            results[asset.key] = future.result()
            check()
    return results


def _is_image(content_type: str) -> bool:
    return content_type in RASTER_TYPES or content_type == SVG_TYPE


def _srcset(entries: Collection[tuple[str, int]]) -> str:
    return ", ".join(f"{url} {width}w" for url, width in entries)


def picture(image: PreparedImage, *, alt: str, sizes: str, eager: bool, cls: str = "") -> str:
    """``<picture>`` with AVIF and WebP sources, explicit width/height, lazy unless eager."""
    loading = 'fetchpriority="high"' if eager else 'loading="lazy"'
    klass = f' class="{escape(cls)}"' if cls else ""
    dims = f' width="{image.width}" height="{image.height}"' if image.width and image.height else ""
    img = (
        f'<img{klass} src="{escape(image.src)}" alt="{escape(alt)}"{dims} {loading} '
        'decoding="async">'
    )
    if not image.avif and not image.webp:
        return img  # an SVG: one file, any size
    sources = "".join(
        f'<source type="{mime}" srcset="{escape(_srcset(entries))}" sizes="{escape(sizes)}">'
        for mime, entries in (("image/avif", image.avif), ("image/webp", image.webp))
        if entries
    )
    return f"<picture>{sources}{img}</picture>"
