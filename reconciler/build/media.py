"""Image optimisation at build: one original -> WebP and AVIF variants, checked and cached.

``build/site.py`` calls :func:`optimise` for every raster image a snapshot lists and
:func:`check_svg` for every SVG; ``commands/optimize.py`` (``reconciler optimize-site``) calls
:func:`optimise` ahead of a publish. The original's bytes come from the asset store (R2); the
variants are cached through a :class:`VariantCache` (R2 again, ``providers/r2.py``), so a
republish, a roll forward or another site using the same photo encodes nothing.

Rules this module keeps:

1. Decode once. The original is opened with Pillow, its real format must match the snapshot's
   declared ``content_type`` (a PNG declared as ``image/jpeg`` fails), its pixel count must be
   under ``EncoderSettings.max_pixels`` *before* any pixel is decoded (decompression bombs),
   and its bytes under ``max_original_bytes``. A file Pillow cannot decode fails as corrupt.
2. EXIF orientation is applied (``ImageOps.exif_transpose``); every other piece of metadata
   (EXIF, GPS, ICC, XMP, comments) is dropped: variants carry pixels only.
3. Widths: each of ``EncoderSettings.widths`` smaller than the original, plus the largest of
   them capped at the original's width; never upscaled. Each width in AVIF and WebP.
   Animated images keep their first frame.
4. A process keeps the images it optimised lately in memory (``_Memo``, bounded by bytes), so
   a plan's in-memory builds and the publish that follows encode each original once; the
   memo is never trusted for the cache: a hit still makes sure R2 holds the variants.
5. Content-addressed cache: a variant's name is ``<original sha256>/<settings digest>/<width>
   .<format>``, and an ``index.json`` beside them lists the set; the index is written last,
   so a half-written set is never read as complete. A cached variant whose bytes do not match
   the index's SHA-256 is ignored and encoded again.
6. SVG is never rasterised and never sanitised: an SVG with a script, an event handler
   attribute, ``javascript:`` or external references, ``<foreignObject>`` or a DTD is refused
   (rewriting hostile XML safely is harder than refusing it; an editor can export a clean SVG).

Every failure is a :class:`~reconciler.build.errors.BuildError` naming the asset key.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL import __version__ as PILLOW_VERSION

from reconciler.build.errors import BuildError, BuildFailure

__all__ = [
    "RASTER_TYPES",
    "SVG_TYPE",
    "EncoderSettings",
    "OptimisedImage",
    "Variant",
    "VariantCache",
    "check_svg",
    "forget_optimised",
    "optimise",
]

# Declared content type -> the Pillow format names that may carry it.
RASTER_TYPES: dict[str, frozenset[str]] = {
    "image/jpeg": frozenset({"JPEG", "MPO"}),
    "image/png": frozenset({"PNG"}),
    "image/webp": frozenset({"WEBP"}),
    "image/gif": frozenset({"GIF"}),
    "image/avif": frozenset({"AVIF"}),
}
SVG_TYPE = "image/svg+xml"
FORMATS = ("avif", "webp")
MIME = {"avif": "image/avif", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """How variants are made; part of every variant's name and of the build identity."""

    widths: tuple[int, ...] = (480, 960, 1600)
    webp_quality: int = 78
    webp_method: int = 2  # 0 fastest .. 6 smallest; 2 is within a few % of 4 at half the time
    avif_quality: int = 55
    avif_speed: int = 8  # 0 slowest/smallest .. 10 fastest
    max_pixels: int = 40_000_000  # decompression-bomb guard, checked before decoding
    max_original_bytes: int = 20 * 1024 * 1024
    library: str = field(default=f"pillow-{PILLOW_VERSION}")  # a new encoder, new variants

    def digest(self) -> str:
        """16 hex digits of SHA-256 over these settings (canonical JSON)."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Variant:
    """One encoded variant."""

    format: str  # avif | webp
    width: int
    height: int
    data: bytes

    @property
    def mime(self) -> str:
        """``image/avif`` or ``image/webp``."""
        return MIME[self.format]


@dataclass(frozen=True, slots=True)
class OptimisedImage:
    """An original and its variants (largest last within each format)."""

    key: str
    sha256: str
    width: int  # after EXIF orientation
    height: int
    original_bytes: int
    variants: tuple[Variant, ...]
    encoded: bool  # False when every variant came from the cache

    def of(self, fmt: str) -> tuple[Variant, ...]:
        """The variants of one format, smallest first."""
        return tuple(v for v in self.variants if v.format == fmt)

    @property
    def variant_bytes(self) -> int:
        """Bytes of every variant together."""
        return sum(len(v.data) for v in self.variants)


class VariantCache(Protocol):
    """Where variants are cached (R2 next to the originals; a dict-backed one in tests)."""

    def get_variant(self, name: str) -> bytes | None:
        """The cached bytes under ``name``, or ``None``."""
        ...

    def put_variant(self, name: str, data: bytes, content_type: str) -> None:
        """Cache ``data`` under ``name``."""
        ...


class MemoryCache:
    """A dict-backed :class:`VariantCache` (tests, previews without R2)."""

    def __init__(self) -> None:
        """Start empty."""
        self.objects: dict[str, bytes] = {}

    def get_variant(self, name: str) -> bytes | None:
        """The cached bytes, or None."""
        return self.objects.get(name)

    def put_variant(self, name: str, data: bytes, content_type: str) -> None:
        """Keep ``data``."""
        self.objects[name] = data


class ReadOnlyCache:
    """A cache that reads through to another and never writes (plans are read-only)."""

    def __init__(self, inner: VariantCache) -> None:
        """Wrap ``inner``."""
        self._inner = inner

    def get_variant(self, name: str) -> bytes | None:
        """Read through."""
        return self._inner.get_variant(name)

    def put_variant(self, name: str, data: bytes, content_type: str) -> None:
        """Drop the write: an observation changes nothing."""


def _fail(reason: BuildFailure, key: str, problem: str) -> BuildError:
    return BuildError(f"{_LABEL[reason]} {key!r}: {problem}", reason=reason)


_LABEL = {
    BuildFailure.CORRUPT_ASSET: "corrupt asset",
    BuildFailure.UNSAFE_ASSET: "unsafe asset",
    BuildFailure.WRONG_TYPE: "wrong content type for asset",
    BuildFailure.OVERSIZED_ASSET: "oversized asset",
}


def _widths(original: int, wanted: Sequence[int]) -> tuple[int, ...]:
    """Each wanted width below the original, then the largest wanted one capped at it."""
    if not wanted:
        return (original,)
    smaller = {w for w in wanted if w < original}
    smaller.add(min(original, max(wanted)))
    return tuple(sorted(smaller))


def _decode(key: str, data: bytes, content_type: str, settings: EncoderSettings) -> Image.Image:
    """Open, check format and size (before decoding pixels), decode, orient, strip."""
    if len(data) > settings.max_original_bytes:
        raise _fail(
            BuildFailure.OVERSIZED_ASSET,
            key,
            f"{len(data)} bytes, over the limit of {settings.max_original_bytes} bytes",
        )
    allowed = RASTER_TYPES.get(content_type)
    if allowed is None:
        raise _fail(BuildFailure.WRONG_TYPE, key, f"{content_type} is not an image type")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            if image.format not in allowed:
                raise _fail(
                    BuildFailure.WRONG_TYPE,
                    key,
                    f"declared {content_type} but the bytes are {image.format or 'unknown'}",
                )
            pixels = image.width * image.height
            if pixels > settings.max_pixels:
                raise _fail(
                    BuildFailure.OVERSIZED_ASSET,
                    key,
                    f"{image.width}x{image.height} is {pixels} pixels, over the limit of "
                    f"{settings.max_pixels} (decompression bomb guard)",
                )
            image.seek(0)
            image.load()
            oriented = ImageOps.exif_transpose(image)
        except BuildError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _fail(BuildFailure.OVERSIZED_ASSET, key, f"decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise _fail(
                BuildFailure.CORRUPT_ASSET, key, f"not a decodable {content_type}: unknown format"
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _fail(
                BuildFailure.CORRUPT_ASSET, key, f"not a decodable {content_type}: {exc}"
            ) from exc
    mode = (
        "RGBA"
        if oriented.mode in ("RGBA", "LA", "PA") or "transparency" in oriented.info
        else "RGB"
    )
    clean = oriented.convert(mode)
    clean.info = {}  # no EXIF, ICC, XMP or comments reach a variant
    return clean


def _encode(image: Image.Image, fmt: str, settings: EncoderSettings) -> bytes:
    out = io.BytesIO()
    if fmt == "webp":
        image.save(out, format="WEBP", quality=settings.webp_quality, method=settings.webp_method)
    else:
        image.save(out, format="AVIF", quality=settings.avif_quality, speed=settings.avif_speed)
    return out.getvalue()


def _prefix(sha: str, settings: EncoderSettings) -> str:
    return f"{sha}/{settings.digest()}/"


def _from_cache(
    key: str, sha: str, cache: VariantCache, settings: EncoderSettings, original_bytes: int
) -> OptimisedImage | None:
    prefix = _prefix(sha, settings)
    raw = cache.get_variant(prefix + "index.json")
    if raw is None:
        return None
    try:
        index = json.loads(raw)
        variants = []
        for item in index["variants"]:
            fmt, width, height = str(item["format"]), int(item["width"]), int(item["height"])
            data = cache.get_variant(f"{prefix}{width}.{fmt}")
            if data is None or hashlib.sha256(data).hexdigest() != item["sha256"]:
                return None  # incomplete or damaged: encode again
            variants.append(Variant(fmt, width, height, data))
        return OptimisedImage(
            key=key,
            sha256=sha,
            width=int(index["width"]),
            height=int(index["height"]),
            original_bytes=original_bytes,
            variants=tuple(variants),
            encoded=False,
        )
    except (ValueError, KeyError, TypeError):
        return None


def _store(image: OptimisedImage, cache: VariantCache, settings: EncoderSettings) -> None:
    prefix = _prefix(image.sha256, settings)
    for v in image.variants:
        cache.put_variant(f"{prefix}{v.width}.{v.format}", v.data, v.mime)
    index = {
        "width": image.width,
        "height": image.height,
        "variants": [
            {
                "format": v.format,
                "width": v.width,
                "height": v.height,
                "sha256": hashlib.sha256(v.data).hexdigest(),
            }
            for v in image.variants
        ],
    }
    text = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    cache.put_variant(prefix + "index.json", text, "application/json")


def optimise(
    key: str,
    data: bytes,
    content_type: str,
    *,
    cache: VariantCache | None = None,
    settings: EncoderSettings | None = None,
) -> OptimisedImage:
    """The WebP and AVIF variants of one raster original, from the cache or encoded now.

    Args:
        key: the asset key (named in every error).
        data: the original's bytes (already checked against the snapshot's SHA-256).
        content_type: the snapshot's declared type; must match the bytes.
        cache: where variants are looked up first and stored after encoding.
        settings: encoder settings (defaults when None).

    Raises:
        BuildError: corrupt, wrong type, over the byte or pixel limits.
    """
    settings = settings or EncoderSettings()
    sha = hashlib.sha256(data).hexdigest()
    remembered = _MEMO.recall(sha, settings)
    if remembered is not None:
        if cache is not None and cache.get_variant(_prefix(sha, settings) + "index.json") is None:
            _store(remembered, cache, settings)
        return replace(remembered, key=key, encoded=False)
    if cache is not None:
        cached = _from_cache(key, sha, cache, settings, len(data))
        if cached is not None:
            _MEMO.remember(cached, settings)
            return cached
    if content_type not in RASTER_TYPES:
        raise _fail(BuildFailure.WRONG_TYPE, key, f"{content_type} is not an image type")
    image = _decode(key, data, content_type, settings)
    width, height = image.size
    variants: list[Variant] = []
    for fmt in FORMATS:
        for w in _widths(width, settings.widths):
            h = max(1, round(height * w / width))
            scaled = image if w == width else image.resize((w, h), Image.Resampling.LANCZOS)
            variants.append(Variant(fmt, w, h, _encode(scaled, fmt, settings)))
    result = OptimisedImage(
        key=key,
        sha256=sha,
        width=width,
        height=height,
        original_bytes=len(data),
        variants=tuple(variants),
        encoded=True,
    )
    if cache is not None:
        _store(result, cache, settings)
    _MEMO.remember(result, settings)
    return result


class _Memo:
    """Recently optimised images of this process, by (original sha256, settings digest)."""

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._size = 0
        self._items: OrderedDict[tuple[str, str], OptimisedImage] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, sha: str, settings: EncoderSettings) -> OptimisedImage | None:
        with self._lock:
            found = self._items.get((sha, settings.digest()))
            if found is not None:
                self._items.move_to_end((sha, settings.digest()))
            return found

    def remember(self, image: OptimisedImage, settings: EncoderSettings) -> None:
        key = (image.sha256, settings.digest())
        with self._lock:
            if key in self._items or image.variant_bytes > self._limit:
                return
            self._items[key] = image
            self._size += image.variant_bytes
            while self._size > self._limit:
                _, dropped = self._items.popitem(last=False)
                self._size -= dropped.variant_bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_MEMO = _Memo(64 * 1024 * 1024)


def forget_optimised() -> None:
    """Empty this process's memo (tests and benchmarks that measure the R2 cache itself)."""
    _MEMO.clear()


_SVG_EVENT = re.compile(r"^on[a-z]+$", re.IGNORECASE)
_SVG_BANNED = frozenset({"script", "foreignobject", "iframe", "embed", "object"})
_SVG_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:px)?\s*$")


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def check_svg(key: str, data: bytes) -> tuple[int, int] | None:
    """Refuse an SVG that could run code or load anything; its (width, height) if stated.

    Raises:
        BuildError: ``UNSAFE_ASSET`` naming what was found, or ``CORRUPT_ASSET`` when the
            bytes are not well-formed XML with an ``<svg>`` root.
    """
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise _fail(BuildFailure.UNSAFE_ASSET, key, "SVG with a DTD or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _fail(BuildFailure.CORRUPT_ASSET, key, f"not well-formed SVG: {exc}") from exc
    if _local(root.tag) != "svg":
        raise _fail(
            BuildFailure.WRONG_TYPE, key, f"declared {SVG_TYPE} but the root is <{root.tag}>"
        )
    for element in root.iter():
        tag = _local(element.tag)
        if tag in _SVG_BANNED:
            raise _fail(BuildFailure.UNSAFE_ASSET, key, f"SVG contains <{tag}>; refused")
        for name, value in element.attrib.items():
            attr = _local(name)
            if _SVG_EVENT.match(attr):
                raise _fail(BuildFailure.UNSAFE_ASSET, key, f"SVG has an {attr} handler; refused")
            if attr == "href" and not value.strip().startswith("#"):
                raise _fail(
                    BuildFailure.UNSAFE_ASSET, key, f"SVG references {value[:80]!r}; refused"
                )
            if "javascript:" in value.lower() or "url(http" in value.lower():
                raise _fail(BuildFailure.UNSAFE_ASSET, key, "SVG loads script or a URL; refused")
    sizes = [_SVG_SIZE.match(root.attrib.get(a, "")) for a in ("width", "height")]
    if sizes[0] and sizes[1]:
        return round(float(sizes[0].group(1))), round(float(sizes[1].group(1)))
    return None
