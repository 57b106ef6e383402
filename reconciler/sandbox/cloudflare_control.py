"""The Cloudflare simulator's control endpoints under ``/__sandbox/`` (no auth; loopback only).

Besides the routes every simulator shares (:func:`reconciler.sandbox.control.shared_routes`),
tests and the demo use these to write sandbox DNS records, make a hostname stick or fail, make
deployments fail, create Pages projects and read the config (never the token) of the running
:class:`~reconciler.sandbox.cloudflare.CloudflareSim`. docs/sandbox.md lists them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.cloudflare_hostnames import HostnameBehaviour
from reconciler.sandbox.cloudflare_pages import Behaviour
from reconciler.sandbox.control import bad_request, read_json, shared_routes

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim


class _Control:
    """The endpoints, each a method reading or driving one part of the simulator."""

    def __init__(self, sim: CloudflareSim) -> None:
        self.sim = sim

    async def dns(self, request: Request) -> Response:
        """GET: every record or one; PUT ``{"cname"?, "txt"?, "target"?}``: write; DELETE."""
        sim = self.sim
        name = request.path_params.get("name")
        if name is None:
            return JSONResponse({"records": [r.as_json() for r in sim.dns.all()]})
        if request.method == "DELETE":
            return JSONResponse({"deleted": sim.dns.delete(name)})
        if request.method == "GET":
            record = sim.dns.get(name)
            if record is None:
                return JSONResponse({"error": "no such record"}, status_code=404)
            return JSONResponse(record.as_json())
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad_request('body must be {"cname"?: str, "txt"?: [str]}')
        cname = body.get("cname")
        if body.get("target") == "cname_target":
            cname = sim.config.cname_target
        txt = body.get("txt", [])
        if (cname is not None and not isinstance(cname, str)) or not isinstance(txt, list):
            return bad_request("cname must be a string and txt a list of strings")
        return JSONResponse(sim.dns.put(name, cname=cname, txt=[str(t) for t in txt]).as_json())

    async def hostname_behaviour(self, request: Request) -> Response:
        """PUT: make one hostname stick or fail; DELETE: let it behave normally again."""
        name = request.path_params["name"]
        if request.method == "DELETE":
            self.sim.set_hostname_behaviour(name, None)
            return JSONResponse({"hostname": name, "mode": "normal"})
        body = await read_json(request)
        try:
            behaviour = HostnameBehaviour.from_json(body if isinstance(body, dict) else {})
        except ValueError as exc:
            return bad_request(str(exc))
        self.sim.set_hostname_behaviour(name, behaviour)
        return JSONResponse({"hostname": name, **asdict(behaviour)})

    async def deployment_behaviour(self, request: Request) -> Response:
        """POST: how one deployment, or a project's next ones, will end."""
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad_request("body must be a JSON object")
        try:
            behaviour = Behaviour.from_json(body)
            self.sim.set_deployment_behaviour(
                behaviour,
                project=body.get("project"),
                deployment_id=body.get("deployment_id"),
                times=int(body.get("times", 1)),
            )
        except (ValueError, KeyError) as exc:
            return bad_request(str(exc), status=404 if isinstance(exc, KeyError) else 400)
        return JSONResponse({"mode": behaviour.mode, "stage": behaviour.stage})

    async def projects(self, request: Request) -> Response:
        """GET: the Pages projects' names; POST ``{"name", "production_branch"?}``: create one."""
        sim = self.sim
        if request.method == "GET":
            with sim.lock:
                names = sorted(sim.pages.projects)
            return JSONResponse({"projects": names})
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return bad_request('body must be {"name": str, "production_branch"?: str}')
        try:
            project = sim.create_project(
                body["name"], production_branch=str(body.get("production_branch", "main"))
            )
        except ValueError as exc:
            return bad_request(str(exc), status=409)
        return JSONResponse(project, status_code=201)

    async def config(self, request: Request) -> Response:
        """GET: the running config without its token."""
        cfg = asdict(self.sim.config)
        cfg.pop("token")
        return JSONResponse(cfg)


def control_routes(sim: CloudflareSim) -> list[Route]:
    """The shared control routes and the Cloudflare simulator's own."""
    control = _Control(sim)
    return [
        *shared_routes(sim),
        Route("/__sandbox/dns", control.dns, methods=["GET"]),
        Route("/__sandbox/dns/{name}", control.dns, methods=["GET", "PUT", "DELETE"]),
        Route(
            "/__sandbox/hostnames/{name}/behaviour",
            control.hostname_behaviour,
            methods=["PUT", "DELETE"],
        ),
        Route("/__sandbox/deployments/behaviour", control.deployment_behaviour, methods=["POST"]),
        Route("/__sandbox/projects", control.projects, methods=["GET", "POST"]),
        Route("/__sandbox/config", control.config, methods=["GET"]),
    ]
