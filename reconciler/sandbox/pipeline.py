"""The request pipeline and call log every HTTP simulator shares (Cloudflare, Evolution API).

A simulator declares its routes (``(method, pattern, template, handler)`` rows) and its rules
(:class:`Rules`: how a request is read, and the :data:`Step` functions that may answer it before
its handler: body parsing, authentication, rate limits, unknown routes, faults).
:func:`api_endpoint` runs one request through them: the first step that answers (or raises a
:class:`Refusal`) decides, and the last, :func:`handle`, calls the route's handler with the
simulator's lock held. Every exchange is then appended to the simulator's :class:`CallLog`, and
the response is delayed, held or dropped as the fault plan (:mod:`reconciler.sandbox.faults`)
decided. The control endpoints that read the log live in :mod:`reconciler.sandbox.control`.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.faults import NO_FAULT, FaultDecision, FaultPlan

LOGGED_HEADERS = ("retry-after", "ratelimit", "ratelimit-policy")


@dataclass(slots=True)
class Outcome:
    """What a route handler answers: HTTP status, JSON body (or raw bytes) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # when set, sent as is with headers' content-type


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass(slots=True)
class Call:
    """One API request as a handler sees it (path parameters filled in by the router)."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    form: dict[str, str] | None
    files: list[str]
    headers: dict[str, str]
    body: bytes = b""
    parts: tuple[Part, ...] = ()
    json_error: bool = False  # a non-empty, non-multipart body that is not JSON


Handler = Callable[[Any, Call], Outcome]
"""A route handler: ``(state, call) -> Outcome`` (``state`` is the running simulator's)."""

RouteRow = tuple[str, re.Pattern[str], str, Handler]
"""``(method, pattern, template, handler)``: the pattern's named groups become path parameters."""


class Refusal(Exception, abc.ABC):
    """A failure a simulator answers in its own error format: an HTTP status and a body."""

    status: int

    @abc.abstractmethod
    def body(self) -> Any:
        """The JSON body of the refusal."""


@dataclass(frozen=True, slots=True)
class Matched:
    """The route a request matched and its path parameters."""

    handler: Handler
    params: dict[str, str]
    template: str


def match(routes: Sequence[RouteRow], method: str, path: str) -> Matched | None:
    """The first route of ``routes`` serving ``method path``."""
    for route_method, pattern, template, handler in routes:
        found = pattern.match(path)
        if found and route_method == method:
            return Matched(handler, found.groupdict(), template)
    return None


def bare_call(request: Request, raw: bytes, path: str) -> Call:
    """The request with its body unparsed (a reader parses what its service parses)."""
    return Call(
        method=request.method,
        path=path,
        params={},
        query=dict(request.query_params),
        json=None,
        form=None,
        files=[],
        headers={k.lower(): v for k, v in request.headers.items()},
        body=raw,
    )


class CallLog:
    """Every exchange one simulator answered, numbered; secrets (auth headers) never stored."""

    def __init__(self, clock: VirtualClock) -> None:
        """An empty log stamped with ``clock``'s virtual time."""
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self.seq = 0

    def record(self, call: Call, template: str, outcome: Outcome, fault: str | None) -> None:
        """Append one exchange (request body, answer, the headers tests read, the fault)."""
        with self._lock:
            self.seq += 1
            self._entries.append(
                {
                    "seq": self.seq,
                    "at": self._clock.now(),
                    "method": call.method,
                    "path": call.path,
                    "route": template,
                    "query": dict(call.query),
                    "request_content_type": call.headers.get("content-type"),
                    "request_json": call.json,
                    "request_form": call.form,
                    "request_files": list(call.files),
                    "status": outcome.status,
                    "response_json": outcome.body,
                    "response_headers": {
                        k: v for k, v in outcome.headers.items() if k in LOGGED_HEADERS
                    },
                    "fault": fault,
                }
            )

    def since(self, since: int = 0) -> list[dict[str, Any]]:
        """Entries with ``seq > since``."""
        with self._lock:
            return [c for c in self._entries if c["seq"] > since]

    def clear(self) -> None:
        """Empty the log (sequence numbers keep growing)."""
        with self._lock:
            self._entries.clear()

    def restart(self) -> None:
        """Empty the log and number from 1 again (a simulator's reset)."""
        with self._lock:
            self._entries.clear()
            self.seq = 0

    def counts(self) -> dict[str, Any]:
        """The log counted: total, by ``METHOD route`` and by status (for ``/summary``)."""
        by_route: collections.Counter[str] = collections.Counter()
        by_status: collections.Counter[str] = collections.Counter()
        with self._lock:
            for call in self._entries:
                by_route[f"{call['method']} {call['route']}"] += 1
                by_status[str(call["status"])] += 1
            total = len(self._entries)
        return {
            "calls": total,
            "by_route": dict(sorted(by_route.items())),
            "by_status": dict(sorted(by_status.items())),
        }


class Simulated(abc.ABC):
    """What every simulator's state offers its pipeline, control endpoints and tests."""

    clock: VirtualClock
    lock: threading.RLock
    faults: FaultPlan
    call_log: CallLog

    @property
    def seq(self) -> int:
        """The sequence number of the last logged call."""
        return self.call_log.seq

    def calls_since(self, since: int = 0) -> list[dict[str, Any]]:
        """Call-log entries with ``seq > since``."""
        return self.call_log.since(since)

    def clear_calls(self) -> None:
        """Empty the call log (sequence numbers keep growing)."""
        self.call_log.clear()

    @abc.abstractmethod
    def reset(self) -> None:
        """Return to the initial world (each simulator says what that is)."""

    @abc.abstractmethod
    def tallies(self) -> dict[str, Any]:
        """The simulator's own counts for ``/summary``, beside the call log's."""

    def summary(self) -> dict[str, Any]:
        """Counts of logged calls by ``METHOD route`` and status, and the simulator's tallies."""
        with self.lock:
            return {**self.call_log.counts(), **self.tallies()}


@dataclass(slots=True)
class Exchange:
    """One request on its way through the pipeline: what steps read and add to."""

    call: Call
    matched: Matched | None
    headers: dict[str, str] = field(default_factory=dict)  # added to whatever answers
    decision: FaultDecision = NO_FAULT


Step = Callable[[Exchange], Outcome | None]
"""One rule: an answer that ends the pipeline, or None to go on (it may raise a Refusal)."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What one simulator declares: its routes, how it reads a request, and its steps in order."""

    routes: Sequence[RouteRow]
    read: Callable[[Request, bytes, str], Call]
    steps: Sequence[Step]
    root: str = ""  # the API's path prefix on the server (stripped before routing)


def fault_step(
    faults: FaultPlan,
    *,
    too_many: Callable[[int], Outcome],
    server_error: Callable[[Call, int, bool], Outcome],
) -> Step:
    """Ask the fault plan; answer a 429 burst, an injected 5xx, or an unprocessed timeout.

    ``server_error(call, status, timed_out)`` renders the simulator's 5xx (504 for a timeout
    whose request does not take effect: a gateway in front of the service gave up).
    """

    def step(exchange: Exchange) -> Outcome | None:
        call = exchange.call
        decision = exchange.decision = faults.decide(call.method, call.path)
        if decision.kind == "rate_limited":
            return too_many(decision.retry_after)
        if decision.kind == "error":
            return server_error(call, decision.status, False)
        if decision.kind in ("timeout", "drop") and not decision.process:
            return server_error(call, 504, True)
        return None

    return step


def unrouted_step(answer: Callable[[Call], Refusal]) -> Step:
    """Refuse a request no route serves, with the simulator's own answer."""

    def step(exchange: Exchange) -> Outcome | None:
        if exchange.matched is None:
            raise answer(exchange.call)
        return None

    return step


def handle(state: Simulated, *, crash: Callable[[Call], Outcome] | None = None) -> Step:
    """The last step: the route's handler, with the simulator's lock held.

    ``crash`` answers an unexpected exception (None lets it propagate: the server's own 500).
    """

    def step(exchange: Exchange) -> Outcome | None:
        matched = exchange.matched
        assert matched is not None, "an unrouted request must be refused by an earlier step"
        call = exchange.call
        call.params = matched.params
        with state.lock:
            try:
                return matched.handler(state, call)
            except Refusal:
                raise
            except Exception:
                if crash is None:
                    raise
                return crash(call)

    return step


def _answer(steps: Sequence[Step], exchange: Exchange) -> Outcome:
    for step in steps:
        try:
            outcome = step(exchange)
        except Refusal as exc:
            outcome = Outcome(exc.status, exc.body())
        if outcome is not None:
            return outcome
    raise AssertionError("a simulator's last step must answer")


class Dropped(Response):
    """Start a response that announces a body and never sends it: the client sees a drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )


def respond(outcome: Outcome) -> Response:
    """The HTTP response of an outcome: raw bytes, an empty 204, or JSON."""
    if outcome.raw is not None:
        return Response(outcome.raw, status_code=outcome.status, headers=outcome.headers)
    if outcome.status == 204:
        return Response(status_code=204, headers=outcome.headers)
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)


async def _deliver(outcome: Outcome, decision: FaultDecision) -> Response:
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.kind == "timeout":
        await asyncio.sleep(decision.hold_seconds)
    if decision.kind == "drop":
        return Dropped()
    return respond(outcome)


def api_endpoint(state: Simulated, rules: Rules) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint that serves a simulator's API through its rules."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        # scope["path"], not a path parameter: Starlette's "$" would drop a trailing "\n".
        path = request.scope["path"][len(rules.root) :] or "/"
        call = rules.read(request, raw, path)
        exchange = Exchange(call, match(rules.routes, call.method, path))
        outcome = _answer(rules.steps, exchange)
        outcome.headers = {**exchange.headers, **outcome.headers}
        template = exchange.matched.template if exchange.matched else path
        decision = exchange.decision
        state.call_log.record(
            call, template, outcome, None if decision.kind == "none" else decision.kind
        )
        return await _deliver(outcome, decision)

    return endpoint
