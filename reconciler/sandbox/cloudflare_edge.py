"""What visitors reach through the simulated Cloudflare: Pages sites, and the edge's decisions.

Routes added by :func:`reconciler.sandbox.cloudflare.create_app` beside the API:

* ``GET /__pages/{project}/{path}``: the site ``https://<project>.pages.dev/<path>`` serves,
  from the files uploaded with each Direct Upload (production's live deployment;
  ``?deployment=<id>`` for another). The dispatch Worker's ``PAGES_ORIGIN`` points here in
  the sandbox (``http://127.0.0.1:<port>/__pages/{project}``).
* ``GET /__sandbox/edge?host=…&path=…``: how the zone's edge treats a visitor request: whether
  the hostname is served (an *active* custom hostname of the zone, or a name in the zone), which
  Worker route matches, the script it runs (its modules and bindings, as uploaded) and the
  version of every KV namespace it binds. The Worker host (:mod:`reconciler.sandbox.workerd_host`)
  asks this for every request it gets.
* ``GET /__sandbox/kv/{namespace_id}``: a namespace's entries and version (the host copies them
  into workerd's KV when the version moves).

It also answers every unrouted ``/client/v4`` request (Starlette's own 404, e.g. a path holding
``%0A``) with Cloudflare's JSON error envelope instead of a plain-text page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconciler.sandbox.cloudflare_common import ApiError, no_route
from reconciler.sandbox.cloudflare_workers import edge_route

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

API_ROOT = "/client/v4"


def served_by_zone(sim: CloudflareSim, host: str) -> tuple[bool, str]:
    """Whether the zone's edge takes traffic for ``host``, and why not when it does not."""
    host = host.lower().rstrip(".")
    zone = sim.config.zone_name
    if host == zone or host.endswith("." + zone):
        return True, ""
    hostname_id = sim.hostnames.by_name.get(host)
    if hostname_id is None:
        return False, f"{host} is not a custom hostname of the zone"
    status, ssl_status, _ = sim.hostnames.evaluate(
        sim.hostnames.by_id[hostname_id], sim.clock.now()
    )
    if status != "active":
        return False, f"custom hostname {host} is {status} (ssl {ssl_status}), not active"
    return True, ""


def edge_decision(sim: CloudflareSim, host: str, path: str) -> dict[str, Any]:
    """The edge's answer for one visitor request (see the module docstring)."""
    with sim.lock:
        served, reason = served_by_zone(sim, host)
        if not served:
            return {"served": False, "reason": reason, "route": None, "script": None, "kv": {}}
        route, script = edge_route(sim, host, path)
        kv: dict[str, Any] = {}
        if script is not None:
            for binding in script.bindings:
                if binding["type"] == "kv_namespace":
                    namespace = sim.kv.namespaces.get(binding["namespace_id"])
                    if namespace is not None:
                        namespace.live(sim.clock.now())  # expiry moves the version too
                    kv[binding["name"]] = {
                        "id": binding["namespace_id"],
                        "version": namespace.version if namespace is not None else -1,
                    }
        return {
            "served": True,
            "reason": ""
            if script is not None
            else "no Worker route matches and the fallback origin is originless",
            "route": route.pattern if route is not None else None,
            "script": script.export() if script is not None else None,
            "kv": kv,
        }


def edge_routes(sim: CloudflareSim) -> list[Route]:
    """The Pages site, edge and KV export routes of the simulator (module docstring)."""

    async def pages_site(request: Request) -> Response:
        name = request.path_params["project"]
        path = "/" + request.path_params.get("path", "")
        with sim.lock:
            project = sim.pages.projects.get(name)
            if project is None:
                return PlainTextResponse("No such Pages project.", status_code=404)
            status, body, content_type = sim.pages.serve(
                project, path, sim.clock.now(), request.query_params.get("deployment")
            )
        return Response(body, status_code=status, media_type=content_type)

    async def edge(request: Request) -> Response:
        host = request.query_params.get("host", "")
        path = request.query_params.get("path", "/")
        return JSONResponse(edge_decision(sim, host, path))

    async def kv_export(request: Request) -> Response:
        with sim.lock:
            namespace = sim.kv.namespaces.get(request.path_params["namespace_id"])
            if namespace is None:
                return JSONResponse({"error": "no such namespace"}, status_code=404)
            return JSONResponse(sim.kv.export(namespace, sim.clock.now()))

    return [
        Route("/__pages/{project}", pages_site, methods=["GET", "HEAD"]),
        Route("/__pages/{project}/{path:path}", pages_site, methods=["GET", "HEAD"]),
        Route("/__sandbox/edge", edge, methods=["GET"]),
        Route("/__sandbox/kv/{namespace_id}", kv_export, methods=["GET"]),
    ]


async def not_found(request: Request, exc: Exception) -> Response:
    """Starlette's 404/405: the JSON envelope under the API root, plain text elsewhere."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if request.url.path.startswith(API_ROOT):
        error: ApiError = no_route(request.url.path[len(API_ROOT) :])
        return JSONResponse(error.body(), status_code=400)
    return PlainTextResponse("Not Found", status_code=status)
