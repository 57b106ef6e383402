"""Support for the observe and PR-mode tests: a sandbox converged to the example fleet.

``bench/converged.py`` (not an installed package) is loaded from its file; it seeds the
simulator state and the D1 file directly. :func:`clients` builds read-only clients like the
wiring does, but without retries, so an injected 5xx fails fast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.cloudflare_kv import KvClient
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.providers.d1 import SqliteDatabase
from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.ratelimit import Lane, TokenBucket
from reconciler.providers.retry import NO_RETRY
from reconciler.runtime.observe import ObserveClients
from reconciler.runtime.observe_routes import RoutingTarget
from reconciler.sandbox.world import Sandbox
from reconciler.settings import Settings
from reconciler.spec.load import Specs, load_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO_ROOT / "specs"


def _load_converged() -> ModuleType:
    name = "bench_converged"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "converged.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


converged = _load_converged()


def example_specs() -> Specs:
    """The example fleet under specs/."""
    return load_directory(EXAMPLE_SPECS)


def clients(world: Sandbox, *, stripe: object | None) -> ObserveClients:
    """Read-only clients for ``world`` (no retries), with ``stripe`` as the billing reader."""
    settings = Settings.from_env(world.settings_env())
    cloudflare = CloudflareClient(
        settings.cloudflare,
        bucket=TokenBucket(capacity=100_000, period=1.0),
        retry=NO_RETRY,
        lane=Lane.SWEEP,
    )
    evolution = EvolutionClient(
        settings.evolution, bucket=TokenBucket(capacity=1000, period=1.0), retry=NO_RETRY
    )
    routing = settings.routing
    known = [
        ns.id for ns in world.cloudflare.kv.namespaces.values() if ns.title == routing.namespace
    ]
    return ObserveClients(
        database=SqliteDatabase(settings.d1.sqlite_path),
        cloudflare=cloudflare,
        stripe=stripe,  # type: ignore[arg-type]
        evolution=evolution,
        kv=KvClient(cloudflare),
        workers=WorkersClient(cloudflare),
        routing=RoutingTarget(
            namespace=routing.namespace,
            worker=routing.worker,
            route_pattern=routing.route_pattern,
            declared=bool(routing.fallback_origin),
            namespace_id=known[0] if known else None,  # as ROUTING_KV_NAMESPACE_ID would
        ),
    )


async def close(observers: ObserveClients) -> None:
    """Close what :func:`clients` opened."""
    await observers.database.close()
    for client in (observers.cloudflare, observers.evolution):
        closer = getattr(client, "aclose", None)
        if closer is not None:
            await closer()
