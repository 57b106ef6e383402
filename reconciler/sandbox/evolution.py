"""The Evolution API (WhatsApp gateway) simulator: a stateful Starlette app speaking API v2.

``create_app(clock=..., api_key=...)`` returns the app and its
:class:`~reconciler.sandbox.evolution_state.EvolutionState`.
:mod:`reconciler.sandbox.world` serves it with :mod:`reconciler.sandbox.host`; the test
fixtures in ``tests/support/evolution.py`` do the same. The API lives at the server root
(``EVOLUTION_API_BASE`` is ``http://127.0.0.1:<port>``); control endpoints live under
``/__sandbox/`` on the same server (no auth; loopback only;
:mod:`~reconciler.sandbox.evolution_control`). docs/evolution.md lists both. This module holds
the routes, the body validation and the rules it gives the request pipeline every simulator
shares (:mod:`reconciler.sandbox.pipeline`).

Behaviour follows ``contracts/evolution/CONTRACT.md`` (the server's source, 2.3.x):

1. Body parsing runs first (a malformed JSON body is a 400 before any route or guard), then
   route matching (unmatched: 404 ``Cannot METHOD /path``), then the guards in the server's
   order: instance exists (404) *before* the ``apikey`` (401; the global key or the instance's
   own token). Then the fault plan (:mod:`reconciler.sandbox.faults`), then the handler.
2. sendText validates the v2 body with the server's messages (nested array), rejects blank
   text, checks the number (a closed socket: 500 ``Connection Closed``; not on WhatsApp: 400
   with the OnWhatsApp object), then "sends": 201 with the ``prepareMessage()`` object, status
   ``PENDING``, a unique ``key.id`` and the virtual time as ``messageTimestamp``.
3. whatsappNumbers answers its own errors with the raw thrown object (no ``response`` key).
4. Every exchange is appended to the pipeline's call log, in the Cloudflare simulator's record
   format (the ``apikey`` header is never stored), and every accepted message to a message log
   with its virtual timestamp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.routing import Route

from reconciler.sandbox import pipeline
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.evolution_control import control_routes
from reconciler.sandbox.evolution_state import (
    CONNECTION_CLOSED,
    DEFAULT_INSTANCE,
    NOT_LOADED,
    ApiError,
    BodyParseError,
    EvolutionState,
    Instance,
    create_jid,
    digits_of,
    envelope,
)
from reconciler.sandbox.faults import FaultPlan
from reconciler.sandbox.pipeline import Call, Exchange, Handler, Outcome, RouteRow, Rules, Step

API_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# ---- validation (CONTRACT.md §5.1, the server's JSON Schemas and jsonschema's messages) ----------


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def send_text_problems(body: Any) -> list[str]:
    """Validation messages for a sendText body, in the order the server reports them."""
    if not isinstance(body, dict):
        return ["instance is not of a type(s) object"]
    problems: list[str] = []
    if "number" in body and not isinstance(body["number"], str):
        problems.append("Invalid format")
    if "text" in body and not isinstance(body["text"], str):
        problems.append("text is not of a type(s) string")
    if "delay" in body and not _is_integer(body["delay"]):
        problems.append("Enter a value in milliseconds")
    if "quoted" in body:
        problems.extend(_quoted_problems(body["quoted"]))
    for flag in ("mentionsEveryOne", "linkPreview"):
        if flag in body and not isinstance(body[flag], bool):
            problems.append(f"{flag} is not of a type(s) boolean")
    if "mentioned" in body:
        mentioned = body["mentioned"]
        if not isinstance(mentioned, list):
            problems.append("mentioned is not of a type(s) array")
        else:
            if not mentioned:
                problems.append("mentioned does not meet minimum length of 1")
            if len({json.dumps(m, sort_keys=True) for m in mentioned}) != len(mentioned):
                problems.append("mentioned contains duplicate item")
            for item in mentioned:
                if not isinstance(item, str) or not re.match(r"\d+", item):
                    problems.append('"mentioned" must be an array of numeric strings')
    for name in ("number", "text"):
        if name not in body:
            problems.append(f'instance requires property "{name}"')
    return problems


def _quoted_problems(quoted: Any) -> list[str]:
    if not isinstance(quoted, dict):
        return ["quoted is not of a type(s) object"]
    if "key" not in quoted:
        return ['quoted requires property "key"']
    key = quoted["key"]
    if not isinstance(key, dict):
        return ["quoted.key is not of a type(s) object"]
    if "id" not in key:
        return ['quoted.key requires property "id"']
    if not isinstance(key["id"], str):
        return ["quoted.key.id is not of a type(s) string"]
    if not key["id"]:
        return ["quoted.key.id does not meet minimum length of 1"]
    return []


def whatsapp_numbers_problems(body: Any) -> list[str]:
    """Validation messages for a whatsappNumbers body (``numbers`` is not required)."""
    if not isinstance(body, dict):
        return ["instance is not of a type(s) object"]
    if "numbers" not in body:
        return []
    numbers = body["numbers"]
    if not isinstance(numbers, list):
        return ["numbers is not of a type(s) array"]
    problems = [
        f"numbers[{i}] is not of a type(s) string"
        for i, item in enumerate(numbers)
        if not isinstance(item, str)
    ]
    if not numbers:
        problems.append("numbers does not meet minimum length of 1")
    if len({json.dumps(n, sort_keys=True) for n in numbers}) != len(numbers):
        problems.append("numbers contains duplicate item")
    return problems


def _raw_error(problems: list[str]) -> dict[str, Any]:
    """The raw BadRequestException object whatsappNumbers answers with (no ``response``)."""
    return {"status": 400, "error": "Bad Request", "message": [problems]}


def _boom_connection_closed() -> dict[str, Any]:
    """A Baileys ``Boom`` for a closed socket, as ``JSON.stringify`` renders it [derived]."""
    return {
        "data": None,
        "isBoom": True,
        "isServer": False,
        "output": {
            "statusCode": 428,
            "payload": {
                "statusCode": 428,
                "error": "Precondition Required",
                "message": CONNECTION_CLOSED,
            },
            "headers": {},
        },
    }


# ---- handlers -----------------------------------------------------------------------------------


def _send_text(state: EvolutionState, instance: Instance, call: Call) -> Outcome:
    body = _body(call)
    problems = send_text_problems(body)
    if problems:
        raise ApiError(400, [problems])
    assert isinstance(body, dict)
    number, text = body["number"], body["text"]
    if not text.strip():
        raise ApiError(400, ["Text is required"])
    if instance.mode == "unloaded":
        raise ApiError(500, NOT_LOADED)
    if not instance.can_send:
        raise state.connection_closed()
    entry = state.on_whatsapp(number)
    jid = entry["jid"]
    is_group = jid.endswith("@g.us") or jid.endswith("@broadcast")
    if not entry["exists"] and not is_group:
        raise ApiError(400, [entry])
    failure = state.send_failures[0] if state.send_failures else None
    if failure is not None:
        failure.times -= 1
        if failure.times <= 0:
            state.send_failures.popleft()
        if failure.applied:
            state.record_message(instance, number=number, jid=jid, text=text, body=body)
        raise ApiError(400, [failure.message])
    return Outcome(
        201, state.record_message(instance, number=number, jid=jid, text=text, body=body)
    )


def _connection_state(state: EvolutionState, instance: Instance, call: Call) -> Outcome:
    info: dict[str, Any] = {"instanceName": instance.name}
    if instance.mode != "unloaded":
        info["state"] = instance.mode
    return Outcome(200, {"instance": info})


def _connect(state: EvolutionState, instance: Instance, call: Call) -> Outcome:
    if instance.mode == "unloaded":
        message = "TypeError: Cannot read properties of undefined (reading 'connectionStatus')"
        return Outcome(200, {"error": True, "message": message})
    if instance.mode == "open":
        return Outcome(200, {"instance": {"instanceName": instance.name, "state": "open"}})
    number = call.query.get("number")
    if number:
        instance.pairing_number = digits_of(number)
    instance.mode = "connecting"
    return Outcome(200, state.qr_code(instance))


def _whatsapp_numbers(state: EvolutionState, instance: Instance, call: Call) -> Outcome:
    body = _body(call)
    problems = whatsapp_numbers_problems(body)
    if problems:
        return Outcome(400, _raw_error(problems))
    assert isinstance(body, dict)
    numbers = body.get("numbers")
    if numbers is None or instance.mode == "unloaded":
        return Outcome(400, {})  # a TypeError thrown in the handler serialises to {}
    if not instance.can_send:
        return Outcome(400, _boom_connection_closed())
    broadcasts = [n for n in numbers if "@broadcast" in n]
    groups = [n for n in numbers if "@g.us" in create_jid(n) and n not in broadcasts]
    plain = [n for n in numbers if n not in broadcasts and n not in groups]
    return Outcome(200, [state.on_whatsapp(n) for n in (*broadcasts, *groups, *plain)])


def _body(call: Call) -> Any:
    """The body as the handlers read it: a form is an object like a JSON body."""
    return dict(call.form) if call.form is not None else call.json


InstanceHandler = Callable[[EvolutionState, Instance, Call], Outcome]


def _on_instance(handler: InstanceHandler) -> Handler:
    """A route handler given the instance its path names (the guards found it)."""

    def run(state: EvolutionState, call: Call) -> Outcome:
        return handler(state, state.instances[call.params["instance"]], call)

    return run


_ROUTE_SPECS: tuple[tuple[str, str, str, InstanceHandler], ...] = (
    ("POST", "/message/sendText/", "/message/sendText/{instance}", _send_text),
    (
        "GET",
        "/instance/connectionState/",
        "/instance/connectionState/{instance}",
        _connection_state,
    ),
    ("GET", "/instance/connect/", "/instance/connect/{instance}", _connect),
    ("POST", "/chat/whatsappNumbers/", "/chat/whatsappNumbers/{instance}", _whatsapp_numbers),
)
ROUTES: tuple[RouteRow, ...] = tuple(
    (
        method,
        re.compile("^" + re.escape(prefix) + r"(?P<instance>[^/]+)/?$"),
        template,
        _on_instance(handler),
    )
    for method, prefix, template, handler in _ROUTE_SPECS
)


# ---- the rules of the request pipeline ---------------------------------------------------------


def _parse_body(content_type: str, raw: bytes) -> tuple[Any, dict[str, str] | None]:
    """``(json, form)`` as Express's body parsers see them; raises ApiError on bad JSON."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return None, dict(parse_qsl(raw.decode("utf-8", errors="replace")))
    if not raw or not (media == "application/json" or media.endswith("+json")):
        return None, None
    text = raw.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    try:
        if stripped[:1] not in ("{", "["):
            # body-parser's strict mode: only objects and arrays.
            raise json.JSONDecodeError("strict", text, len(text) - len(stripped))
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            message = "Unexpected end of JSON input"
        else:
            message = f"Unexpected token {text[exc.pos]} in JSON at position {exc.pos}"
        raise BodyParseError(message) from exc


def _parse(exchange: Exchange) -> None:
    """Body parsing runs before routing: malformed JSON is a 400 on any path."""
    call = exchange.call
    call.json, call.form = _parse_body(call.headers.get("content-type", ""), call.body)


def _guard(state: EvolutionState) -> Step:
    """The instance exists (404) before the ``apikey`` is checked (401; global or its own)."""

    def step(exchange: Exchange) -> None:
        assert exchange.matched is not None
        name = exchange.matched.params["instance"]
        with state.lock:
            instance = state.instances.get(name)
            if instance is None:
                raise ApiError(404, [f'The "{name}" instance does not exist'])
            key = exchange.call.headers.get("apikey", "")
            if not key or key not in (state.api_key, instance.token):
                raise ApiError(401, "Unauthorized")

    return step


def _too_many(retry_after: int) -> Outcome:
    """Evolution API never answers 429 itself: this is a proxy in front of it (§5.7)."""
    return Outcome(
        429,
        {"status": 429, "error": "Too Many Requests", "response": {"message": "Too Many"}},
        {"retry-after": str(max(retry_after, 1))},
    )


def _server_error(call: Call, status: int, timed_out: bool) -> Outcome:
    message = "Gateway Timeout" if timed_out else "Internal Server Error"
    return Outcome(status, envelope(status, message))


def _rules(state: EvolutionState) -> Rules:
    return Rules(
        routes=ROUTES,
        read=pipeline.bare_call,
        steps=(
            _parse,
            pipeline.unrouted_step(
                lambda call: ApiError(404, [f"Cannot {call.method} {call.path}"])
            ),
            _guard(state),
            pipeline.fault_step(state.faults, too_many=_too_many, server_error=_server_error),
            pipeline.handle(state),
        ),
    )


def create_app(
    *,
    clock: VirtualClock,
    api_key: str,
    instance: str | None = None,
    instances: Iterable[str] = (),
    faults: FaultPlan | None = None,
    seed: int = 0,
) -> tuple[Starlette, EvolutionState]:
    """Build the simulator app and its state.

    Args:
        clock: the shared virtual clock (message timestamps).
        api_key: the global ``apikey`` (``AUTHENTICATION_API_KEY``).
        instance: one instance name to create (what :mod:`reconciler.sandbox.world` passes).
        instances: more instance names; ``("sitebuilder",)`` when neither is given.
        faults: a fault plan to share (a new one if None).
        seed: seed for tokens, instance ids and message ids.

    Returns:
        ``(app, state)``: serve ``app``; drive and inspect ``state``.
    """
    names = [*([instance] if instance else []), *instances] or [DEFAULT_INSTANCE]
    state = EvolutionState(clock=clock, api_key=api_key, instances=names, faults=faults, seed=seed)
    routes = [
        *control_routes(state),
        Route("/{path:path}", pipeline.api_endpoint(state, _rules(state)), methods=API_METHODS),
    ]
    return Starlette(routes=routes), state
