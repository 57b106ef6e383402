"""The static-site builder: a validated content snapshot -> the files of a Pages deployment.

The publisher calls :func:`build_site` with a snapshot from ``build/content.py``, the site's
asset bytes and its third-party scripts; it uploads ``BuildOutput.files`` with
``BuildOutput.manifest`` and hands the sizes to ``core/budget.py``. It calls ``build/images.py``
for the media (originals from the asset store, variants from the cache or encoded),
``build/blocks.py`` and ``build/styles.py`` for the HTML of plain blocks and the stylesheet,
and ``build/assethash.py`` for the manifest hashes; no clock but the injected one.

Rules this module keeps:

- Deterministic: the same snapshot, site, version, asset bytes and scripts give the same bytes,
  the same ``content_hash`` and the same manifest. Nothing depends on time or dict order.
- Every user string is HTML-escaped (``html.escape`` with quotes) where it is written; no user
  string ever lands in a ``<script>`` body or a ``style`` value. Only https:// script URLs are
  loaded; links are limited to https/http/mailto/tel, site paths and anchors by the model.
- Every asset the snapshot lists must be present in the asset store with the declared size and
  SHA-256; a block naming an unlisted asset fails. Raster images are published as WebP and AVIF
  variants only (``build/images.py``, ``build/media.py``) and shown as ``<picture>`` with
  ``srcset``/``sizes`` and explicit ``width``/``height``; SVGs and other files byte for byte.
- No layout shift: every image has its intrinsic size, every embed and the footer reserve their
  height in the generated stylesheet (one class per embed height, a mobile footer minimum).
- The build is checked against its deadline between pages, assets and hashes; past it the build
  fails with ``BuildFailure.TIMEOUT`` (the publisher records the message and gives up).

Output layout: ``index.html`` and ``<path>/index.html`` per page, ``404.html``,
``assets/site.css``, ``assets/blocks.js`` (only when a page has a contact form or a gallery) and
``assets/img/<sha>/<width>.<avif|webp>`` per image variant, ``assets/media/<key>`` per other
asset.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from types import MappingProxyType

from reconciler.build.assethash import pages_asset_hash
from reconciler.build.blocks import contact_form_html, footer_html, nav_html, text_html
from reconciler.build.content import (
    HTTPS_URL_PATTERN,
    Block,
    ContactFormBlock,
    ContentSnapshot,
    EmbedBlock,
    FooterBlock,
    GalleryBlock,
    HeroBlock,
    ImageBlock,
    TextBlock,
)
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.images import (
    AssetStore,
    PreparedImage,
    PreparedMedia,
    asset_references,
    picture,
    prepare_media,
    shown_images,
)
from reconciler.build.media import EncoderSettings, VariantCache
from reconciler.build.styles import BLOCKS_JS, stylesheet
from reconciler.core.budget import MediaWeight

KB = 1024
CSS_PATH = "assets/site.css"
JS_PATH = "assets/blocks.js"
NOT_FOUND_PATH = "404.html"

_HTTPS_URL_RE = re.compile(HTTPS_URL_PATTERN)

_CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "application/javascript; charset=utf-8",
}

__all__ = ["AssetStore", "BuildOutput", "build_site", "content_hash", "kilobytes"]

HERO_SIZES = "100vw"
IMAGE_SIZES = "(min-width: 60rem) 58rem, 100vw"
GALLERY_SIZES = "(min-width: 60rem) 15rem, 50vw"


@dataclass(frozen=True, slots=True)
class BuildOutput:
    """The files of one build and the facts the publisher and the budget check need.

    ``files`` maps a relative POSIX path (``about/index.html``) to its bytes, in path order.
    ``manifest`` maps ``"/" + path`` to the Cloudflare Pages asset hash (not a SHA-256; see
    ``build/assethash.py``), the exact shape of the Direct Upload ``manifest`` form field.
    """

    files: Mapping[str, bytes]
    content_hash: str  # sha256 hex over every (path, bytes), framed; see content_hash()
    js_kb: int  # first-party JS (file + inline), KiB rounded up
    css_kb: int  # first-party CSS (file + inline style attributes), KiB rounded up
    third_party_scripts: int  # distinct external script URLs: site scripts + embed blocks
    third_party_script_urls: tuple[str, ...]  # those URLs, sorted
    manifest: Mapping[str, str]
    content_types: Mapping[str, str]  # path -> MIME type, for the asset upload metadata
    image_kb: int = 0  # the largest image file served (any variant), KiB rounded up
    largest_image: str = ""  # the asset key of that file
    page_weight_kb: int = 0  # the heaviest page: HTML + CSS + JS + its images' largest WebP
    heaviest_page: str = ""  # that page's path
    media_original_bytes: int = 0  # raster originals as stored in R2
    media_variant_bytes: int = 0  # every variant published
    images_encoded: int = 0  # images encoded by this build (0 when all came from the cache)
    images_cached: int = 0

    @property
    def media(self) -> MediaWeight:
        """The image and page weights the budget's media limits judge (``core/budget``)."""
        return MediaWeight(
            image_kb=self.image_kb,
            largest_image=self.largest_image,
            page_weight_kb=self.page_weight_kb,
            heaviest_page=self.heaviest_page,
        )

    def manifest_json(self) -> str:
        """The manifest as the compact, key-sorted JSON string the upload form sends."""
        return json.dumps(dict(self.manifest), sort_keys=True, separators=(",", ":"))


def content_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 hex over the files in path order, each framed so no two sets collide.

    Each file contributes ``utf8(path) + b"\\0" + len(bytes) as 8-byte big-endian + bytes``.
    """
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        digest.update(path.encode("utf-8"))
        digest.update(b"\0")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def kilobytes(size: int) -> int:
    """Bytes to KiB, rounded up (1 KB = 1024 bytes; 0 bytes is 0 KB, 1 byte is 1 KB)."""
    return math.ceil(size / KB)


def _seconds(value: float) -> str:
    rounded = round(max(value, 0.0), 1)
    return f"{rounded:g}"


class _Deadline:
    """Checks the injected clock against the build's deadline."""

    __slots__ = ("_clock", "_deadline", "_limit")

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._deadline = deadline
        self._limit = 0.0 if deadline is None else deadline - clock()

    def check(self) -> None:
        if self._deadline is not None and self._clock() > self._deadline:
            raise BuildError(
                f"build exceeded its time limit of {_seconds(self._limit)}s",
                reason=BuildFailure.TIMEOUT,
            )


def _page_file(path: str) -> str:
    return "index.html" if path == "/" else f"{path.strip('/')}/index.html"


def _check_references(snapshot: ContentSnapshot) -> None:
    declared = {asset.key for asset in snapshot.assets}
    missing: dict[str, str] = {}
    for key, where in asset_references(snapshot):
        if key not in declared and key not in missing:
            missing[key] = where
    if missing:
        named = ", ".join(f"{key!r} named by {where}" for key, where in missing.items())
        raise BuildError(
            f"missing asset{'s' if len(missing) > 1 else ''}: {named}; "
            "the snapshot's assets do not list "
            f"{'them' if len(missing) > 1 else 'it'}",
            reason=BuildFailure.MISSING_ASSET,
        )


def _check_scripts(scripts: Sequence[str]) -> None:
    for url in scripts:
        if not _HTTPS_URL_RE.fullmatch(url):
            raise BuildError(
                f"site script {url!r} is not an https:// URL; only https scripts are loaded",
                reason=BuildFailure.UNSAFE_SCRIPT,
            )


class _PageWriter:
    """Renders one page; remembers whether it needs the block script and which images it shows."""

    __slots__ = ("images", "needs_js", "shown")

    def __init__(self, images: Mapping[str, PreparedImage]) -> None:
        self.images = images
        self.needs_js = False
        self.shown: dict[str, PreparedImage] = {}

    def image(self, key: str, *, alt: str, sizes: str, eager: bool, cls: str = "") -> str:
        prepared = self.images[key]
        self.shown[key] = prepared
        return picture(prepared, alt=alt, sizes=sizes, eager=eager, cls=cls)

    def block(self, block: Block, index: int) -> str:
        above_fold = index == 0
        if isinstance(block, HeroBlock):
            return _hero(block, self)
        if isinstance(block, TextBlock):
            return text_html(block)
        if isinstance(block, ImageBlock):
            img = self.image(block.asset, alt=block.alt, sizes=IMAGE_SIZES, eager=above_fold)
            caption = f"<figcaption>{escape(block.caption)}</figcaption>" if block.caption else ""
            return f'<figure class="image">{img}{caption}</figure>'
        if isinstance(block, GalleryBlock):
            self.needs_js = True
            items = "".join(
                f'<li><a href="{escape(self.images[image.asset].src)}">'
                + self.image(image.asset, alt=image.alt, sizes=GALLERY_SIZES, eager=False)
                + "</a></li>"
                for image in block.images
            )
            return f'<ul class="gallery" data-gallery>{items}</ul>'
        if isinstance(block, ContactFormBlock):
            self.needs_js = True
            return contact_form_html(block, index)
        if isinstance(block, EmbedBlock):
            return (
                f'<div class="embed embed-h{block.height}">'
                f'<script src="{escape(block.script_url)}" async></script></div>'
            )
        return footer_html(block)


def _hero(block: HeroBlock, writer: _PageWriter) -> str:
    parts = ['<section class="hero">']
    if block.image is not None:
        parts.append(
            writer.image(
                block.image, alt=block.image_alt, sizes=HERO_SIZES, eager=True, cls="hero-image"
            )
        )
    parts.append(f'<div class="hero-body"><h1>{escape(block.heading)}</h1>')
    if block.subheading:
        parts.append(f'<p class="lead">{escape(block.subheading)}</p>')
    if block.cta is not None:
        parts.append(
            f'<a class="button" href="{escape(block.cta.url)}">{escape(block.cta.label)}</a>'
        )
    parts.append("</div></section>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Head:
    lang: str
    generator: str
    css_href: str
    js_href: str
    scripts: tuple[str, ...]


def _document(
    head: _Head, *, title: str, description: str | None, body: str, needs_js: bool
) -> bytes:
    lines = [
        "<!doctype html>",
        f'<html lang="{escape(head.lang)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title>",
    ]
    if description:
        lines.append(f'<meta name="description" content="{escape(description)}">')
    lines.append(f'<meta name="generator" content="{escape(head.generator)}">')
    lines.append(f'<link rel="stylesheet" href="{escape(head.css_href)}">')
    if needs_js:
        lines.append(f'<script src="{escape(head.js_href)}" defer></script>')
    lines.extend(f'<script src="{escape(url)}" async></script>' for url in head.scripts)
    lines.append("</head>")
    lines.append(f"<body>{body}</body>")
    lines.append("</html>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _versioned(path: str, data: bytes) -> str:
    """``/path?v=<8 hex>``: a new URL whenever the bytes change, so caches never mix them."""
    return f"/{path}?v={hashlib.sha256(data).hexdigest()[:8]}"


@dataclass(slots=True)
class _Rendered:
    """The pages of a build and what the budget needs from them."""

    files: dict[str, bytes]
    any_js: bool = False
    heaviest_page: str = ""
    heaviest_bytes: int = 0


def _render_pages(
    snapshot: ContentSnapshot, head: _Head, media: PreparedMedia, css: bytes, timer: _Deadline
) -> _Rendered:
    rendered = _Rendered(files={})
    js_size = len(BLOCKS_JS.encode("utf-8"))
    for page in snapshot.pages:
        timer.check()
        writer = _PageWriter(media.images)
        main: list[str] = []
        footers: list[str] = []
        if not any(isinstance(block, HeroBlock) for block in page.blocks):
            main.append(f'<h1 class="page-title">{escape(page.title)}</h1>')
        for index, block in enumerate(page.blocks):
            html = writer.block(block, index)
            (footers if isinstance(block, FooterBlock) else main).append(html)
        body = nav_html(snapshot.pages, page.path) + "<main>" + "".join(main) + "</main>"
        body += "".join(footers)
        document = _document(
            head,
            title=page.title,
            description=page.description,
            body=body,
            needs_js=writer.needs_js,
        )
        rendered.files[_page_file(page.path)] = document
        rendered.any_js = rendered.any_js or writer.needs_js
        weight = len(document) + len(css) + (js_size if writer.needs_js else 0)
        weight += sum(image.weight for image in writer.shown.values())
        if weight > rendered.heaviest_bytes:
            rendered.heaviest_bytes, rendered.heaviest_page = weight, page.path
    home = next(page for page in snapshot.pages if page.path == "/")
    rendered.files[NOT_FOUND_PATH] = _document(
        head,
        title=home.title,
        description=None,
        body=nav_html(snapshot.pages, None)
        + '<main><h1 class="page-title">404</h1><p><a href="/">'
        + escape(home.title)
        + "</a></p></main>",
        needs_js=False,
    )
    return rendered


def _largest_image(media: PreparedMedia) -> tuple[str, int]:
    if not media.images:
        return "", 0
    image = max(media.images.values(), key=lambda i: (i.largest_file, i.key))
    return image.key, image.largest_file


def build_site(
    snapshot: ContentSnapshot,
    *,
    site: str,
    version: int,
    assets: Mapping[str, bytes] | AssetStore,
    scripts: Sequence[str] = (),
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    variants: VariantCache | None = None,
    encoder: EncoderSettings | None = None,
) -> BuildOutput:
    """Render a content snapshot into the files of a Pages deployment.

    Args:
        snapshot: the validated content (see ``parse_snapshot``).
        site: the Site's name; written into each page's generator meta tag.
        version: the content version; written beside the site name.
        assets: asset bytes by key (a dict, or any store with ``get(key) -> bytes | None``).
        scripts: the Site's third-party script URLs (``spec.scripts``), loaded on every page.
        deadline: the time, on ``clock``'s scale, by which the build must be done; ``None``
            for no limit.
        clock: the clock ``deadline`` is measured on (seconds).
        variants: the image variant cache (R2); None encodes every image and stores nothing.
        encoder: the image encoder settings (``build/media.py`` defaults when None).

    Returns:
        The files, their content hash, budget sizes, media figures and the Pages manifest.

    Raises:
        BuildError: a block names an asset the snapshot does not list, an asset is missing
            from the store, differs from its declared size or SHA-256, or is hostile (corrupt,
            wrong type, over the byte or pixel limit, an unsafe SVG), a site script is not
            https://, or the build passed its deadline.
    """
    timer = _Deadline(deadline, clock)
    timer.check()
    _check_scripts(scripts)
    _check_references(snapshot)
    media = prepare_media(
        snapshot,
        assets,
        shown=shown_images(snapshot),
        cache=variants,
        settings=encoder or EncoderSettings(),
        check=timer.check,
    )
    embeds = [
        block for page in snapshot.pages for block in page.blocks if isinstance(block, EmbedBlock)
    ]
    css = stylesheet(snapshot.theme, [block.height for block in embeds])
    head = _Head(
        lang=snapshot.lang,
        generator=f"sitebuilder {site} v{version}",
        css_href=_versioned(CSS_PATH, css),
        js_href=_versioned(JS_PATH, BLOCKS_JS.encode("utf-8")),
        scripts=tuple(dict.fromkeys(scripts)),
    )
    rendered = _render_pages(snapshot, head, media, css, timer)
    files = {**media.files, **rendered.files, CSS_PATH: css}
    if rendered.any_js:
        files[JS_PATH] = BLOCKS_JS.encode("utf-8")
    ordered = {path: files[path] for path in sorted(files)}
    external = sorted(set(scripts) | {block.script_url for block in embeds})
    return _output(ordered, media, rendered, external, timer)


def _output(
    ordered: dict[str, bytes],
    media: PreparedMedia,
    rendered: _Rendered,
    external: list[str],
    timer: _Deadline,
) -> BuildOutput:
    """The build's output from its files in path order: manifest, content types, figures."""
    content_types: dict[str, str] = {}
    manifest: dict[str, str] = {}
    for path, data in ordered.items():
        timer.check()
        manifest["/" + path] = pages_asset_hash(data, path)
        extension = path.rsplit(".", 1)[-1]
        content_types[path] = media.content_types.get(path) or _CONTENT_TYPES[extension]
    timer.check()
    largest_key, largest_bytes = _largest_image(media)
    return BuildOutput(
        files=MappingProxyType(ordered),
        content_hash=content_hash(ordered),
        js_kb=kilobytes(len(ordered.get(JS_PATH, b""))),
        css_kb=kilobytes(len(ordered[CSS_PATH])),
        third_party_scripts=len(external),
        third_party_script_urls=tuple(external),
        manifest=MappingProxyType(manifest),
        content_types=MappingProxyType(content_types),
        image_kb=kilobytes(largest_bytes),
        largest_image=largest_key,
        page_weight_kb=kilobytes(rendered.heaviest_bytes),
        heaviest_page=rendered.heaviest_page,
        media_original_bytes=media.original_bytes,
        media_variant_bytes=media.variant_bytes,
        images_encoded=media.encoded,
        images_cached=media.cached,
    )
