"""The Evolution API simulator's control endpoints under ``/__sandbox/`` (no auth; loopback).

Besides the routes every simulator shares (:func:`reconciler.sandbox.control.shared_routes`),
tests and the demo use these to put instances in a state, mark numbers as not on WhatsApp, queue
library failures, pick the ``Connection Closed`` body variant and read the message log of
:class:`~reconciler.sandbox.evolution_state.EvolutionState`. docs/evolution.md lists them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.control import bad_request, read_json, shared_routes
from reconciler.sandbox.evolution_state import MODES, EvolutionState, SendFailure


class _Control:
    """The endpoints, each a method reading or driving one part of the state."""

    def __init__(self, state: EvolutionState) -> None:
        self.state = state

    async def instances(self, request: Request) -> Response:
        """GET: every instance; POST ``{"name"}``: create one."""
        state = self.state
        if request.method == "POST":
            body = await read_json(request)
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                return bad_request('body must be {"name": str}')
            return JSONResponse(state.add_instance(name).as_json(), status_code=201)
        with state.lock:
            listed = [i.as_json() for _, i in sorted(state.instances.items())]
        return JSONResponse({"instances": listed})

    async def instance(self, request: Request) -> Response:
        """GET: one instance; PUT ``{"state", "stale"?}``: set its state; DELETE: remove it."""
        state = self.state
        name = request.path_params["name"]
        if request.method == "DELETE":
            return JSONResponse({"deleted": state.remove_instance(name)})
        if request.method == "PUT":
            return await self._set_state(request, name)
        with state.lock:
            found = state.instances.get(name)
            view = found.as_json() if found is not None else None
        if view is None:
            return bad_request(f"no instance {name!r}", status=404)
        return JSONResponse(view)

    async def _set_state(self, request: Request, name: str) -> Response:
        body = await read_json(request)
        wanted = body.get("state") if isinstance(body, dict) else None
        stale = body.get("stale", False) if isinstance(body, dict) else False
        mode = next((m for m in MODES if m == wanted), None)
        if mode is None:
            return bad_request(f"state must be one of {', '.join(MODES)}")
        try:
            changed = self.state.set_state(name, mode, stale=bool(stale))
        except KeyError:
            return bad_request(f"no instance {name!r}", status=404)
        except ValueError as exc:
            return bad_request(str(exc))
        return JSONResponse(changed.as_json())

    async def numbers(self, request: Request) -> Response:
        """POST ``{"numbers", "exists"?}``: mark numbers; DELETE: every number is on WhatsApp."""
        state = self.state
        if request.method == "DELETE":
            with state.lock:
                state.not_on_whatsapp.clear()
        elif request.method == "POST":
            body = await read_json(request)
            listed = body.get("numbers") if isinstance(body, dict) else None
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
                return bad_request('body must be {"numbers": [str], "exists"?: bool}')
            state.set_on_whatsapp(listed, exists=bool(body.get("exists", False)))
        with state.lock:
            return JSONResponse({"not_on_whatsapp": sorted(state.not_on_whatsapp)})

    async def send_failures(self, request: Request) -> Response:
        """POST ``{"message", "times"?, "applied"?}``: queue a failure; DELETE: clear them."""
        state = self.state
        if request.method == "DELETE":
            with state.lock:
                state.send_failures.clear()
        else:
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("message"), str):
                return bad_request('body must be {"message": str, "times"?: int, "applied"?: bool}')
            times = body.get("times", 1)
            if not isinstance(times, int) or times < 1:
                return bad_request("times must be a positive integer")
            state.queue_send_failure(
                SendFailure(body["message"], times=times, applied=bool(body.get("applied")))
            )
        with state.lock:
            queued = [
                {"message": f.message, "times": f.times, "applied": f.applied}
                for f in state.send_failures
            ]
        return JSONResponse({"send_failures": queued})

    async def config(self, request: Request) -> Response:
        """PUT ``{"connection_closed_body": "string" | "array"}``: the 500's body variant."""
        state = self.state
        if request.method == "PUT":
            body = await read_json(request)
            variant = body.get("connection_closed_body") if isinstance(body, dict) else None
            if variant not in ("string", "array"):
                return bad_request('body must be {"connection_closed_body": "string" | "array"}')
            with state.lock:
                state.connection_closed_body = variant
        return JSONResponse({"connection_closed_body": state.connection_closed_body})

    async def messages(self, request: Request) -> Response:
        """GET ``?since=``: the message log after a sequence number; DELETE: empty it."""
        if request.method == "DELETE":
            self.state.clear_messages()
            return JSONResponse({"cleared": True})
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return bad_request("since must be an integer")
        return JSONResponse({"messages": self.state.messages_since(since)})


def control_routes(state: EvolutionState) -> list[Route]:
    """The shared control routes and the gateway's own."""
    control = _Control(state)
    return [
        *shared_routes(state),
        Route("/__sandbox/instances", control.instances, methods=["GET", "POST"]),
        Route("/__sandbox/instances/{name}", control.instance, methods=["GET", "PUT", "DELETE"]),
        Route("/__sandbox/numbers", control.numbers, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/send-failures", control.send_failures, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/config", control.config, methods=["GET", "PUT"]),
        Route("/__sandbox/messages", control.messages, methods=["GET", "DELETE"]),
    ]
