"""Benchmark: image optimisation, bytes saved, and a 100-site publish with photos, twice.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_media [--sites N]``.

1. Encoding, in a child process (so its peak RSS is the encoder's alone, read from VmHWM):
   every photo of the example fleet (``specs/``, the photos ``sandbox/seed.py`` draws for
   it) decoded once and encoded to AVIF and WebP at every width, one image at a time on one
   thread: images per second per core, CPU seconds per image, peak memory.
2. Bytes saved on that example media: originals as stored in R2 against what a browser
   fetches at full width (the largest AVIF; the largest WebP for browsers without AVIF).
3. A fleet of ``--sites`` generated sites (``bench/fleetgen.py``), each with two photos of
   its own and two shared stock photos (smaller than the example's, so the run stays short),
   in the sandbox with moto as R2: ``reconciler apply`` from scratch (every image encoded
   once, variants cached in R2), then one site's content fixed in place in D1 and ``apply``
   again in a fresh memo (as after a restart). The second run's work must be that one site:
   its publishes only, no image encoded, no variant written.

Returns 1 when the fleet does not converge or the second run does more than the one site.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fleetgen
from bench.harness import environment, run_cli
from reconciler.build.media import forget_optimised, optimise
from reconciler.providers.r2 import VARIANT_PREFIX
from reconciler.sandbox.seed import MIGRATIONS, SeedPhoto, photo_bytes, seed_world, site_photos
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import load_directory
from reconciler.wiring import SANDBOX_CONTROL_ENV

REPO = Path(__file__).resolve().parents[1]
LIFTED = "1000000/300"


def _vm(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (0 where there is no procfs)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def example_photos() -> list[SeedPhoto]:
    """The distinct photos the seed draws for the example fleet."""
    specs = load_directory(REPO / "specs")
    seen: dict[str, SeedPhoto] = {}
    for name in sorted(specs.sites):
        for photo in site_photos(name):
            seen.setdefault(photo.key, photo)
    return list(seen.values())


def encode_only() -> int:
    """The child: encode every example photo serially; print the figures as JSON."""
    photos = [(p, photo_bytes(p)) for p in example_photos()]
    before = _vm("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    results = [optimise(p.key, data, p.content_type) for p, data in photos]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = {
        "images": len(results),
        "variants": sum(len(r.variants) for r in results),
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": before,
        "peak_kib": _vm("VmHWM"),
        "original": sum(r.original_bytes for r in results),
        "avif": sum(len(r.of("avif")[-1].data) for r in results),
        "webp": sum(len(r.of("webp")[-1].data) for r in results),
        "all_variants": sum(r.variant_bytes for r in results),
        "pixels": sum(r.width * r.height for r in results),
    }
    print(json.dumps(figures))
    return 0


def _encoding() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_media", "--encode-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _kb(size: float) -> str:
    return f"{size / 1024:,.0f} KB"


def _print_encoding(f: dict[str, Any]) -> None:
    print(
        f"encoding: {f['images']} example photos ({f['pixels'] / 1e6:.1f} Mpx), "
        f"{f['variants']} variants (AVIF + WebP at up to 3 widths), one thread"
    )
    print(
        f"  {f['images'] / f['wall']:.2f} images/s per core (wall {f['wall']:.2f} s; "
        f"{f['cpu'] / f['images']:.2f} CPU s per image)"
    )
    print(
        f"  peak memory while encoding: {f['peak_kib'] / 1024:.0f} MiB RSS "
        f"({(f['peak_kib'] - f['rss_before_kib']) / 1024:.0f} MiB above the process at start)"
    )
    saved = f["original"] - f["avif"]
    print(
        f"bytes on the example media: originals {_kb(f['original'])} -> largest AVIF "
        f"{_kb(f['avif'])} (saved {_kb(saved)}, {100 * saved / f['original']:.0f}%), largest "
        f"WebP {_kb(f['webp'])}; every variant stored: {_kb(f['all_variants'])}"
    )


def bench_photos(site: str) -> tuple[SeedPhoto, ...]:
    """Smaller photos than the example's: two per site, two shared."""
    own = int(hashlib.sha256(site.encode()).hexdigest()[:6], 16)
    return (
        SeedPhoto(f"{site}/hero.jpg", 640, 400, "jpeg", own),
        SeedPhoto(f"{site}/shop.png", 320, 240, "png", own + 1),
        SeedPhoto("stock/bread.webp", 480, 320, "webp", 7),
        SeedPhoto("stock/baker.jpg", 400, 300, "jpeg", 8, orientation=6),
    )


def _indexes(world: Sandbox) -> int:
    """Images whose variants R2 holds (one index.json per original and settings)."""
    s3 = world.r2._admin._s3()  # the sandbox's own client: listing is not the adapter's job
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.r2.bucket, Prefix=VARIANT_PREFIX
    )
    return sum(
        1 for page in pages for item in page.get("Contents", ()) if item["Key"].endswith(".json")
    )


def _deployments(world: Sandbox) -> dict[str, int]:
    return {name: len(p.deployments) for name, p in world.cloudflare.pages.projects.items()}


def _fix_in_place(world: Sandbox, site: str, version: int) -> None:
    """The editor corrects a typo in a published version: same number, new content."""
    db = sqlite3.connect(world.cloudflare.d1_path)
    try:
        (raw,) = db.execute(
            "SELECT content_json FROM site_versions WHERE site_id = ? AND version_number = ?",
            (site, version),
        ).fetchone()
        content = json.loads(raw)
        content["pages"][0]["blocks"][1]["text"] += " (typo fixed)"
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        with db:
            db.execute(
                "UPDATE site_versions SET content_json = ?, content_hash = ? "
                "WHERE site_id = ? AND version_number = ?",
                (text, hashlib.sha256(text.encode()).hexdigest(), site, version),
            )
    finally:
        db.close()


def _apply(root: Path, world: Sandbox) -> tuple[int, str, float]:
    started = time.perf_counter()
    code, out = run_cli(["apply", "--yes", "--specs", str(root), "--now", repr(world.clock.now())])
    return code, out, time.perf_counter() - started


def _publish_twice(sites: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        root = Path(tmp) / "specs"
        fleetgen.generate(root, sites, 0)
        specs = load_directory(root)
        with Sandbox(
            state_dir=Path(tmp) / "sandbox",
            with_stripe=False,
            with_evolution=False,
            with_r2=True,
            cloudflare={"rate_limit_requests": 10**9},
        ) as world:
            env = {**world.settings_env(), SANDBOX_CONTROL_ENV: world.control_url}
            env["CLOUDFLARE_RATE_LIMIT"] = LIFTED
            with environment(env):
                code, out = run_cli(["migrate", "--dir", str(MIGRATIONS)])
                if code != 0:
                    print(out)
                    return 1
                seeded = seed_world(world, specs, photos=bench_photos)
                forget_optimised()
                code, out, first = _apply(root, world)
                encoded = _indexes(world)
                world.clock.advance(600)
                settle, _, _ = _apply(root, world)  # D1 records the hostnames' statuses
                if code != 0 or settle != 0:
                    print(out[-3000:])
                    return 1
                target = sorted(specs.sites)[sites // 2]
                _fix_in_place(world, target, specs.sites[target].spec.production.version)
                before = _deployments(world)
                forget_optimised()  # as after a restart: only R2 remembers the variants
                code, out, second = _apply(root, world)
                after = _deployments(world)
                changed = sorted(p for p in after if after[p] != before.get(p, 0))
                again = _indexes(world) - encoded
    summary = next((line for line in out.splitlines() if line.startswith("Apply:")), out[-500:])
    photos = len(seeded.media)
    print(
        f"publish with images: {sites} sites, {photos} photos in R2 "
        f"({sum(seeded.media.values()) / 1e6:.1f} MB), moto as R2, D1 as a SQLite file"
    )
    print(f"  from scratch: apply {first:.1f} s wall, {encoded} images encoded and cached")
    print(
        f"  after {target}'s content was fixed in place: apply {second:.1f} s wall; {summary}; "
        f"deployments made for {changed}; {again} images encoded"
    )
    print(f"  command: python -m bench.bench_media --sites {sites}")
    ok = code == 0 and changed == [specs.sites[target].spec.pages_project] and again == 0
    if not ok:
        print("UNEXPECTED: the second apply did more (or other) work than the one site")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the encoding, bytes-saved and publish figures; 0 when all went as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--encode-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args([] if argv is None else argv)
    if args.encode_only:
        return encode_only()
    _print_encoding(_encoding())
    return _publish_twice(args.sites)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
