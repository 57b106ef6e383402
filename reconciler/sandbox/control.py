"""Control endpoints every simulator shares: the virtual clock, reset, faults, call log, summary.

``sandbox/cloudflare.py`` and ``sandbox/evolution_control.py`` add :func:`shared_routes` to their
own ``/__sandbox/`` routes; the call log they read is the simulator's
:class:`~reconciler.sandbox.pipeline.CallLog`. Tests and the demo drive them over HTTP
(docs/sandbox.md lists them). Control endpoints need no authentication: the simulators only
listen on loopback.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.cloudflare_common import iso
from reconciler.sandbox.faults import FaultRule
from reconciler.sandbox.pipeline import Simulated


async def read_json(request: Request) -> Any:
    """The request's JSON body; ``{}`` when empty, None when it is not JSON."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None


def bad_request(message: str, *, status: int = 400) -> JSONResponse:
    """A control endpoint's error answer."""
    return JSONResponse({"error": message}, status_code=status)


def shared_routes(sim: Simulated) -> list[Route]:
    """``/__sandbox/clock``, ``reset``, ``faults``, ``calls`` and ``summary`` for one simulator."""
    clock, faults = sim.clock, sim.faults

    async def clock_endpoint(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            seconds = body.get("seconds") if isinstance(body, dict) else None
            if not isinstance(seconds, int | float) or seconds < 0:
                return bad_request('body must be {"seconds": <non-negative number>}')
            clock.advance(float(seconds))
        now = clock.now()
        return JSONResponse({"now": now, "iso": iso(now)})

    async def reset_endpoint(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"reset": True})

    async def faults_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
        elif request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict):
                return bad_request("body must be a JSON object")
            raw_rules = body.get("rules", [body] if "rules" not in body else [])
            try:
                rules = [
                    FaultRule.from_json({k: v for k, v in r.items() if k != "seed"})
                    for r in raw_rules
                ]
                seed = int(body.get("seed", 0))
            except (TypeError, ValueError, AttributeError) as exc:
                return bad_request(str(exc))
            faults.set(rules, seed=seed)
        return JSONResponse({"seed": faults.seed, "rules": faults.rules()})

    async def calls_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            sim.clear_calls()
            return JSONResponse({"cleared": True})
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return bad_request("since must be an integer")
        return JSONResponse({"calls": sim.calls_since(since)})

    async def summary_endpoint(request: Request) -> Response:
        return JSONResponse(sim.summary())

    return [
        Route("/__sandbox/clock", clock_endpoint, methods=["GET", "POST"]),
        Route("/__sandbox/reset", reset_endpoint, methods=["POST"]),
        Route("/__sandbox/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/calls", calls_endpoint, methods=["GET", "DELETE"]),
        Route("/__sandbox/summary", summary_endpoint, methods=["GET"]),
    ]
