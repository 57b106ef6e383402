"""Deterministic sample photos for the local world: real JPEG, PNG and WebP files, made by Pillow.

Used by ``sandbox/seed.py`` (the example fleet's media in the sandbox R2), the build and R2
tests and ``bench/bench_media.py``. :func:`make_photo` draws a picture from a seed: a sky
gradient, a ground band, a sun and a few blocks with some noise, so encoders see something
photo-like (flat colour would compress to nothing and flatter the figures). The same arguments
give the same bytes for a given Pillow version.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

__all__ = ["FORMATS", "make_photo"]

FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXIF_ORIENTATION = 0x0112


def _draw(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    top = (rng.randrange(60, 140), rng.randrange(120, 200), rng.randrange(200, 256))
    bottom = (rng.randrange(150, 255), rng.randrange(150, 230), rng.randrange(100, 200))
    image = Image.linear_gradient("L").resize((width, height))
    sky = Image.composite(
        Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), image
    )
    draw = ImageDraw.Draw(sky)
    horizon = int(height * rng.uniform(0.55, 0.75))
    ground = (rng.randrange(40, 120), rng.randrange(80, 160), rng.randrange(30, 90))
    draw.rectangle((0, horizon, width, height), fill=ground)
    radius = max(2, min(width, height) // 10)
    cx = rng.randrange(radius, width - radius + 1)
    cy = rng.randrange(radius, max(radius + 1, horizon))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 220, 120))
    for _ in range(8):
        x0, w = rng.randrange(0, width), rng.randrange(max(2, width // 20), max(3, width // 6))
        h = rng.randrange(max(2, height // 12), max(3, height // 3))
        shade = tuple(rng.randrange(0, 256) for _ in range(3))
        draw.rectangle((x0, horizon - h, x0 + w, horizon), fill=shade)
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    return Image.blend(sky, grain, 0.05)


def make_photo(
    width: int, height: int, *, fmt: str = "jpeg", seed: int = 0, orientation: int | None = None
) -> bytes:
    """A ``width`` x ``height`` photo-like image as ``fmt`` bytes (``jpeg``, ``png``, ``webp``).

    Args:
        width: pixels across, as stored.
        height: pixels down, as stored.
        fmt: the file format.
        seed: picks the colours and shapes.
        orientation: an EXIF orientation tag to write (JPEG only; 6 = rotate 90° to view).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    image = _draw(width, height, seed)
    out = io.BytesIO()
    if fmt == "jpeg":
        exif = Image.Exif()
        if orientation is not None:
            exif[EXIF_ORIENTATION] = orientation
        image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    elif fmt == "png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="WEBP", quality=92)
    return out.getvalue()
