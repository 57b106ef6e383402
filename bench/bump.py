"""A version bump of a converged fleet, through ``reconciler apply``: calls counted, forecast kept.

Used by ``bench/bench_publish.py``. The sandbox is seeded converged (:mod:`bench.converged`: no
API calls, nothing logged), D1 reached over the simulated REST API as in production; then every
site's production version is raised by one in its spec file (the next content snapshot is
written to ``site_versions`` as the site editor would) and ``reconciler apply --yes`` runs in
process. The waits between deployment polls advance the sandbox's virtual clock.

:func:`run` returns the figures: calls per family (from the simulator's call log), the plan's
forecast (its ``API calls:`` line), the calls of the observation alone (a ``reconciler plan``
run first: the forecast is of the actions, not the reading) and the apply's exit code and wall
time.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import converged, fleetgen
from bench.harness import environment, run_cli
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs, load_directory
from reconciler.wiring import SANDBOX_CONTROL_ENV

_FORECAST = re.compile(r"([a-z][a-z0-9 _()-]*?) (\d[\d,]*)")


@dataclass(frozen=True)
class Bump:
    """What one bump apply cost."""

    sites: int
    code: int
    wall: float
    families: Counter[str]  # the apply's calls: its observation, then its actions
    observation: int  # calls of the same observation alone (``reconciler plan`` before it)
    statuses: Counter[int]
    forecast: dict[str, int]
    summary: str
    tail: str


def family(call: dict[str, Any]) -> str:
    """Which part of Cloudflare a logged call used (and on which credential)."""
    route = str(call.get("route") or call.get("path") or "")
    if "/d1/" in route:
        return "d1"
    if "/pages/assets" in route:
        return "pages assets (JWT)"  # authorised by the upload JWT, not the API token
    if route.endswith("/upload-token"):
        return "pages upload token"
    if "/deployments" in route and call.get("method") == "POST":
        return "pages create"
    if "/deployments/" in route:
        return "pages status"
    if "/deployments" in route:
        return "pages list deployments"
    if "/pages/projects" in route:
        return "pages project"
    if "custom_hostnames" in route:
        return "custom hostnames"
    if "purge_cache" in route:
        return "cache purge"
    if "/storage/kv/" in route:
        return "kv"
    return "other"


def forecast_of(output: str) -> dict[str, int]:
    """The plan's ``API calls:`` line as meter -> calls."""
    line = next((ln for ln in output.splitlines() if ln.startswith("API calls:")), "")
    return {
        name.strip(): int(count.replace(",", ""))
        for name, count in _FORECAST.findall(re.sub(r" \([^)]*\)", "", line[10:]))
    }


def next_snapshots(path: Path, specs: Specs) -> None:
    """``site_versions`` rows for every site's next production version (with content hash)."""
    rows = []
    for name, site in sorted(specs.sites.items()):
        version = site.spec.production.version + 1
        snapshot = dict(converged.SNAPSHOT, pages=[
            {"path": "/", "title": "Home",
             "blocks": [{"type": "hero", "heading": f"Version {version} of {name}"}]},
        ])  # fmt: skip
        text = json.dumps(snapshot)
        rows.append((name, version, text, hashlib.sha256(text.encode()).hexdigest()))
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(
                "INSERT OR IGNORE INTO site_versions (site_id, version_number, content_json, "
                "content_hash) VALUES (?, ?, ?, ?)",
                rows,
            )
    finally:
        connection.close()


def bump_specs(root: Path, specs: Specs) -> None:
    """Raise every site's production version by one in its YAML file."""
    for site in specs.sites.values():
        path = root / "sites" / f"{site.name}.yaml"
        old = site.spec.production.version
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(f"version: {old}\n", f"version: {old + 1}\n", 1), "utf-8")


def run(tmp: Path, sites: int, seed: int, *, budget: bool = False) -> Bump:
    """Seed converged, bump every site, apply once; the calls and the forecast.

    ``budget``: the production budget on the client and the simulator; otherwise both lifted.
    """
    root = tmp / "specs"
    fleetgen.generate(root, sites, seed)
    specs = load_directory(root)
    with Sandbox(
        state_dir=tmp / "sandbox",
        with_stripe=False,
        d1_backend="d1",
        cloudflare={} if budget else {"rate_limit_requests": 10**9},
    ) as world:
        sim = world.cloudflare
        converged.converge(sim, sim.d1_path, specs)
        next_snapshots(sim.d1_path, specs)
        bump_specs(root, specs)
        namespaces = [ns.id for ns in sim.kv.namespaces.values()]
        settings = {**world.settings_env(), SANDBOX_CONTROL_ENV: world.control_url}
        settings["ROUTING_KV_NAMESPACE_ID"] = namespaces[0]
        if not budget:
            settings["CLOUDFLARE_RATE_LIMIT"] = "1000000/300"
        with environment(settings):
            sim.clear_calls()
            run_cli(["plan", "--specs", str(root), "--now", repr(world.clock.now())])
            observation = len(sim.calls_since(0))
            sim.clear_calls()
            started = time.perf_counter()
            code, out = run_cli(
                ["apply", "--yes", "--specs", str(root), "--now", repr(world.clock.now())]
            )
            wall = time.perf_counter() - started
            calls = sim.calls_since(0)
    summary = next((line for line in out.splitlines() if line.startswith("Apply:")), "")
    return Bump(
        sites=len(specs.sites),
        code=code,
        wall=wall,
        families=Counter(family(call) for call in calls),
        observation=observation,
        statuses=Counter(int(call["status"]) for call in calls),
        forecast=forecast_of(out),
        summary=summary,
        tail=out[-3000:],
    )
