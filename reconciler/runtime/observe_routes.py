"""observe_routes: read the routing table and the dispatch Worker platform for ``observe``.

Called by :func:`reconciler.runtime.observe.observe` in its first phase, beside the hostname
listing; calls the read methods of ``providers/cloudflare_kv.py`` and
``providers/cloudflare_workers.py`` only.

Rules:

1. The table is read by listing keys with their metadata (1,000 per request; the value is
   also the metadata, ``core/routing.py`` rule 2). A key without readable metadata is read by
   value (bulk get, 100 per request), so a table written by hand is still understood. A scoped
   observation reads only its hostnames' values (bulk get), never the whole listing.
2. A missing namespace is an empty table, and ``namespace_id`` None tells the planner to
   create it first.
3. The platform (script settings, routes, fallback origin) is read only when declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.routing import ObservedPlatform, RouteEntry, parse_route
from reconciler.providers.cloudflare_kv import KvKey
from reconciler.providers.cloudflare_workers import FallbackOrigin, ScriptSettings, WorkerRoute
from reconciler.runtime.offloop import off_loop

__all__ = [
    "KvReader",
    "PlatformReader",
    "RoutingReading",
    "RoutingTarget",
    "read_platform",
    "read_routes",
]


class KvReader(Protocol):
    """The read methods of ``providers.cloudflare_kv.KvClient`` the observer uses."""

    async def find_namespace(self, title: str) -> str | None:
        """The namespace id titled ``title``, or None."""
        ...

    async def list_keys(self, namespace_id: str) -> list[KvKey]:
        """Every key with its metadata."""
        ...

    async def bulk_get(self, namespace_id: str, keys: list[str]) -> dict[str, Any]:
        """Text values of ``keys``."""
        ...


class PlatformReader(Protocol):
    """The read methods of ``providers.cloudflare_workers.WorkersClient`` the observer uses."""

    async def script_settings(self, script: str) -> ScriptSettings | None:
        """The deployed script's version and KV binding; None when absent."""
        ...

    async def list_routes(self) -> list[WorkerRoute]:
        """Every Worker route of the zone."""
        ...

    async def fallback_origin(self) -> FallbackOrigin | None:
        """The zone's fallback origin; None when unset."""
        ...


@dataclass(frozen=True, slots=True)
class RoutingTarget:
    """Which namespace, Worker and route the settings name; ``declared``: the platform is
    desired state (``ROUTING_FALLBACK_ORIGIN`` set)."""

    namespace: str
    worker: str
    route_pattern: str
    declared: bool
    namespace_id: str | None = None  # known from settings: no lookup by title


@dataclass(frozen=True, slots=True)
class RoutingReading:
    """The table as read, and the namespace id it was read from (None: no namespace)."""

    routes: dict[str, RouteEntry]
    namespace_id: str | None


async def read_routes(
    kv: KvReader, target: RoutingTarget, lookups: list[str] | None = None
) -> RoutingReading:
    """Read the routing table (module rules 1 and 2), or only the entries of ``lookups``
    (a scoped observation: one bulk get per 100 hostnames instead of the whole listing)."""
    namespace_id = target.namespace_id or await kv.find_namespace(target.namespace)
    if namespace_id is None:
        return RoutingReading(routes={}, namespace_id=None)
    unread: list[str] = list(lookups) if lookups is not None else []
    listed = await kv.list_keys(namespace_id) if lookups is None else []
    # A whole table's entries (one a hostname) are parsed off the event loop (offloop).
    size = None if lookups is None else len(lookups)
    routes = await off_loop(size, lambda: _parsed(listed, unread))
    if unread:
        for name, value in (await kv.bulk_get(namespace_id, unread)).items():
            entry = parse_route(value)
            if entry is not None:
                routes[name] = entry
    table = await off_loop(size, lambda: dict(sorted(routes.items())))
    return RoutingReading(routes=table, namespace_id=namespace_id)


def _parsed(listed: list[KvKey], unread: list[str]) -> dict[str, RouteEntry]:
    """The listed keys' entries read from their metadata; the others go to ``unread``."""
    routes: dict[str, RouteEntry] = {}
    for key in listed:
        entry = parse_route(key.metadata)
        if entry is None:
            unread.append(key.name)
        else:
            routes[key.name] = entry
    return routes


async def read_platform(
    workers: PlatformReader, target: RoutingTarget, namespace_id: str | None
) -> ObservedPlatform:
    """Read the Worker's settings, its route and the fallback origin (module rule 3)."""
    script = await workers.script_settings(target.worker)
    route = next(
        (r for r in await workers.list_routes() if r.pattern == target.route_pattern), None
    )
    fallback = await workers.fallback_origin()
    return ObservedPlatform(
        namespace_id=namespace_id,
        script_hash=script.version if script is not None else None,
        script_namespace=script.namespace_id if script is not None else None,
        route_id=route.id if route is not None else None,
        route_script=route.script if route is not None else None,
        fallback_origin=fallback.origin if fallback is not None else None,
        fallback_status=fallback.status if fallback is not None else None,
    )
