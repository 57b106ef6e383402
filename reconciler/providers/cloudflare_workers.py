"""The Workers adapter: the dispatch Worker's script, its zone route and the fallback origin.

Built on :class:`~reconciler.providers.cloudflare.CloudflareClient` (one token, one bucket, one
call counter); used by the observer and the platform handlers. Shapes follow the official SDK
(``cloudflare/resources/workers/scripts``, ``workers/routes.py``,
``custom_hostnames/fallback_origin.py``) and ROUTING.md section 2.

- ``script_settings(name)``: ``GET /accounts/{a}/workers/scripts/{name}/settings`` (404: None);
- ``deploy_script(name, ...)``: ``PUT /accounts/{a}/workers/scripts/{name}``, multipart: the
  ``metadata`` part and the module;
- ``list_routes()``: ``GET /zones/{z}/workers/routes``;
- ``create_route(pattern, script)``: ``POST /zones/{z}/workers/routes`` ``{pattern, script}``;
- ``update_route(id, pattern, script)``: ``PUT /zones/{z}/workers/routes/{id}``;
- ``fallback_origin()``: ``GET /zones/{z}/custom_hostnames/fallback_origin`` (404: None);
- ``set_fallback_origin(origin)``: ``PUT`` the same path with ``{origin}``.

The deployed script carries two bindings: ``ROUTES`` (the routing table's KV namespace) and
``ROUTER_VERSION`` (plain text: the sha256 of the source as shipped), so observing the Worker is
one settings read, never a download. A script upload states the whole script, so it is retried
like a read; a route create is looked up by pattern before it is sent again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare import WORKER, CloudflareClient
from reconciler.providers.cloudflare_errors import PROVIDER
from reconciler.providers.http import Call

__all__ = [
    "COMPATIBILITY_DATE",
    "ROUTES_BINDING",
    "VERSION_BINDING",
    "FallbackOrigin",
    "ScriptSettings",
    "WorkerRoute",
    "WorkersClient",
]

_SCRIPT_SETTINGS = WORKER + "/settings"
_ROUTES = "/zones/{zone_id}/workers/routes"
_ROUTE = _ROUTES + "/{route_id}"
_FALLBACK = "/zones/{zone_id}/custom_hostnames/fallback_origin"
ROUTES_BINDING = "ROUTES"
VERSION_BINDING = "ROUTER_VERSION"
COMPATIBILITY_DATE = "2024-09-23"
MAIN_MODULE = "worker.js"


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    """What the deployed script's bindings say: its version and the namespace it reads."""

    version: str | None
    namespace_id: str | None


@dataclass(frozen=True, slots=True)
class WorkerRoute:
    """A zone route: requests matching ``pattern`` run ``script`` (None: no Worker)."""

    id: str
    pattern: str
    script: str | None


@dataclass(frozen=True, slots=True)
class FallbackOrigin:
    """The zone's custom hostname fallback origin and its status."""

    origin: str | None
    status: str | None


class WorkersClient:
    """Workers scripts, routes and the fallback origin through one :class:`CloudflareClient`."""

    def __init__(self, cloudflare: CloudflareClient) -> None:
        """Send every request through ``cloudflare`` (its bucket and counters)."""
        self._cf = cloudflare

    async def script_settings(self, script: str) -> ScriptSettings | None:
        """The deployed script's version and KV binding; None when no such script exists."""
        call = Call(
            "GET",
            _SCRIPT_SETTINGS,
            {"account_id": self._cf.account_id, "script_name": script},
        )
        try:
            result = await self._cf.result(call)
        except NotFoundError:
            return None
        bindings = result.get("bindings") if isinstance(result, dict) else None
        version: str | None = None
        namespace: str | None = None
        for binding in bindings if isinstance(bindings, list) else []:
            if not isinstance(binding, dict):
                continue
            if binding.get("name") == VERSION_BINDING and binding.get("type") == "plain_text":
                version = str(binding.get("text") or "") or None
            if binding.get("name") == ROUTES_BINDING and binding.get("type") == "kv_namespace":
                namespace = str(binding.get("namespace_id") or "") or None
        return ScriptSettings(version=version, namespace_id=namespace)

    async def deploy_script(
        self, script: str, *, source: bytes, namespace_id: str, version: str
    ) -> None:
        """Upload the module Worker with its ``ROUTES`` and ``ROUTER_VERSION`` bindings.

        Raises:
            PermanentError: Cloudflare refused the script (a syntax error, a bad binding):
                the message quotes Cloudflare's codes.
        """
        metadata = {
            "main_module": MAIN_MODULE,
            "compatibility_date": COMPATIBILITY_DATE,
            "bindings": [
                {"type": "kv_namespace", "name": ROUTES_BINDING, "namespace_id": namespace_id},
                {"type": "plain_text", "name": VERSION_BINDING, "text": version},
            ],
        }
        call = Call(
            "PUT",
            WORKER,
            {"account_id": self._cf.account_id, "script_name": script},
            multipart=[
                ("metadata", (None, json.dumps(metadata).encode(), "application/json")),
                (MAIN_MODULE, (MAIN_MODULE, source, "application/javascript+module")),
            ],
        )
        await self._cf.result(call)

    async def list_routes(self) -> list[WorkerRoute]:
        """Every Worker route of the zone."""
        call = Call("GET", _ROUTES, {"zone_id": self._cf.zone_id})
        result = await self._cf.result(call)
        if not isinstance(result, list):
            raise PermanentError(PROVIDER, f"{call.label}: result is not a list")
        return [_route(item) for item in result if isinstance(item, dict)]

    async def create_route(self, pattern: str, script: str) -> WorkerRoute:
        """Create the route (looked up by pattern first and after a lost answer)."""
        existing = await self._find_route(pattern)
        if existing is not None:
            return await self.update_route(existing.id, pattern, script)
        call = Call(
            "POST",
            _ROUTES,
            {"zone_id": self._cf.zone_id},
            json={"pattern": pattern, "script": script},
            idempotent=False,
        )

        def created(result: Any) -> WorkerRoute:
            if not isinstance(result, dict):
                raise PermanentError(PROVIDER, f"{call.label}: result is not an object")
            return WorkerRoute(id=str(result.get("id", "")), pattern=pattern, script=script)

        return await self._cf.create_or_find(
            call, created, lambda: self._find_route(pattern), resend=False
        )

    async def update_route(self, route_id: str, pattern: str, script: str) -> WorkerRoute:
        """Point the route ``route_id`` at ``script`` (a PUT stating final values)."""
        call = Call(
            "PUT",
            _ROUTE,
            {"zone_id": self._cf.zone_id, "route_id": route_id},
            json={"pattern": pattern, "script": script},
        )
        await self._cf.result(call)
        return WorkerRoute(id=route_id, pattern=pattern, script=script)

    async def _find_route(self, pattern: str) -> WorkerRoute | None:
        for route in await self.list_routes():
            if route.pattern == pattern:
                return route
        return None

    async def fallback_origin(self) -> FallbackOrigin | None:
        """The zone's fallback origin; None when none is set."""
        call = Call("GET", _FALLBACK, {"zone_id": self._cf.zone_id})
        try:
            result = await self._cf.result(call)
        except NotFoundError:
            return None
        if not isinstance(result, dict) or not result.get("origin"):
            return None
        status = result.get("status")
        return FallbackOrigin(
            origin=str(result["origin"]), status=status if isinstance(status, str) else None
        )

    async def set_fallback_origin(self, origin: str) -> FallbackOrigin:
        """``PUT`` the fallback origin (final value: retried like a read)."""
        call = Call("PUT", _FALLBACK, {"zone_id": self._cf.zone_id}, json={"origin": origin})
        result = await self._cf.result(call)
        status = result.get("status") if isinstance(result, dict) else None
        return FallbackOrigin(origin=origin, status=status if isinstance(status, str) else None)


def _route(item: dict[str, Any]) -> WorkerRoute:
    script = item.get("script")
    return WorkerRoute(
        id=str(item.get("id", "")),
        pattern=str(item.get("pattern", "")),
        script=script if isinstance(script, str) and script else None,
    )
