"""The Evolution API (WhatsApp gateway) simulator: a stateful Starlette app speaking API v2.

``create_app(clock=..., api_key=...)`` returns the app and its :class:`EvolutionState`.
:mod:`reconciler.sandbox.world` serves it with :mod:`reconciler.sandbox.host`; the test
fixtures in ``tests/support/evolution.py`` do the same. The API lives at the server root
(``EVOLUTION_API_BASE`` is ``http://127.0.0.1:<port>``); control endpoints live under
``/__sandbox/`` on the same server (no auth; loopback only). docs/evolution.md lists both.

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
4. Every exchange is appended to a call log in the same record format as the Cloudflare
   simulator's (the ``apikey`` header is never stored), and every accepted message to a
   message log with its virtual timestamp.

State is guarded by one lock, so tests may read or drive it from other threads while the server
runs.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import random
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.control import bad_request, call_counts, read_json, shared_routes
from reconciler.sandbox.faults import FaultDecision, FaultPlan

DEFAULT_INSTANCE = "sitebuilder"
CONNECTION_CLOSED = "Connection Closed"
NOT_LOADED = "Cannot read properties of undefined (reading 'textMessage')"
PUSH_NAME = "Você"
STATES = ("open", "connecting", "close")
MESSAGE_STATUSES = ("ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED")
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
# A 1x1 transparent PNG: the QR image's stand-in.
_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd4"
        "0000000049454e44ae426082"
    )
).decode()

InstanceMode = Literal["open", "connecting", "close", "unloaded"]
MODES: tuple[InstanceMode, ...] = ("open", "connecting", "close", "unloaded")
API_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# ---- numbers and JIDs (CONTRACT.md §2, createJid.ts) ---------------------------------------------


def _mx_or_ar(digits: str) -> str:
    """Mexico (52) and Argentina (54): drop the mobile ``1``/``9`` after the country code."""
    if digits[:2] in ("52", "54") and len(digits) == 13:
        return digits[:2] + digits[3:]
    return digits


def _brazil(digits: str) -> str:
    """Brazil (55): drop the ninth digit when the area code is 31+ and the line starts 7-9."""
    match = re.fullmatch(r"(\d{2})(\d{2})\d(\d{8})", digits)
    if match is None or match.group(1) != "55":
        return digits
    if int(match.group(3)[0]) < 7 or int(match.group(2)) < 31:
        return digits
    return match.group(1) + match.group(2) + match.group(3)


def create_jid(number: str) -> str:
    """The JID the server derives from a ``number`` field (CONTRACT.md §2, §6).

    Full JIDs (``@s.whatsapp.net``, ``@g.us``, ``@lid``, ``@broadcast``) are kept; otherwise
    spaces, ``+``, ``(`` and ``)`` are stripped, long ids become group JIDs, and the MX/AR and
    Brazilian ninth-digit rules apply before ``@s.whatsapp.net`` is appended.
    """
    number = re.sub(r":\d+", "", number, count=1)
    if any(s in number for s in ("@g.us", "@s.whatsapp.net", "@lid", "@broadcast")):
        return number
    cleaned = re.sub(r"[\s+()]", "", number).split(":")[0].split("@")[0]
    if "-" in cleaned and len(cleaned) >= 24:
        return re.sub(r"[^\d-]", "", cleaned) + "@g.us"
    digits = re.sub(r"\D", "", cleaned)
    if len(digits) >= 18:
        return digits + "@g.us"
    return _brazil(_mx_or_ar(digits)) + "@s.whatsapp.net"


def digits_of(number: str) -> str:
    """The digits of a number or of a JID's user part (``+55 11 9…`` → ``55119…``)."""
    return re.sub(r"\D", "", number.split("@")[0].split(":")[0])


def is_plausible(digits: str) -> bool:
    """Whether ``digits`` can be an E.164 number: 8 to 15 digits, not starting with 0."""
    return 8 <= len(digits) <= 15 and not digits.startswith("0")


# ---- state --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Instance:
    """One WhatsApp instance as the gateway holds it.

    ``stale`` models the caveat of CONTRACT.md §3: ``connectionState`` still says ``open`` but
    the socket is gone, so number checks and sends fail with ``Connection Closed``.
    """

    name: str
    token: str
    instance_id: str
    mode: InstanceMode = "open"
    stale: bool = False
    qr_count: int = 0
    pairing_number: str | None = None

    @property
    def can_send(self) -> bool:
        """Whether the socket is really open."""
        return self.mode == "open" and not self.stale

    def as_json(self) -> dict[str, Any]:
        """The control view of the instance (never its token)."""
        return {
            "name": self.name,
            "instance_id": self.instance_id,
            "state": self.mode,
            "stale": self.stale,
            "qr_count": self.qr_count,
        }


@dataclass(slots=True)
class SendFailure:
    """A queued library failure for the next sends: 400 ``["<message>"]``.

    ``applied`` makes the message go out anyway (the server answers 400 after sending, as in the
    Prisma errors of CONTRACT.md §5.3).
    """

    message: str
    times: int = 1
    applied: bool = False


@dataclass(slots=True)
class _Outcome:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Call:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    form: dict[str, str] | None
    headers: dict[str, str]


class ApiError(Exception):
    """A failure rendered by the server's global handler (CONTRACT.md §1.1)."""

    def __init__(self, status: int, message: Any) -> None:
        """``message`` becomes ``response.message`` (a string or the constructor's arguments)."""
        super().__init__(f"{status} {message!r}")
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        """``{"status", "error", "response": {"message"}}``."""
        return envelope(self.status, self.message)


class BodyParseError(ApiError):
    """Malformed JSON: body-parser's error has status 400 but no ``error``, so the global
    handler's default reason applies (CONTRACT.md §5.6, derived)."""

    def __init__(self, message: str) -> None:
        """Keep the parser's message (a string)."""
        super().__init__(400, message)

    def body(self) -> dict[str, Any]:
        """``{"status": 400, "error": "Internal Server Error", "response": {"message"}}``."""
        return {
            "status": 400,
            "error": "Internal Server Error",
            "response": {"message": self.message},
        }


def envelope(status: int, message: Any) -> dict[str, Any]:
    """The global error envelope with the reason phrase of ``status``."""
    return {
        "status": status,
        "error": REASONS.get(status, "Internal Server Error"),
        "response": {"message": message},
    }


class EvolutionState:
    """The simulator's state: instances, numbers not on WhatsApp, messages, faults and calls."""

    def __init__(
        self,
        *,
        clock: VirtualClock,
        api_key: str,
        instances: Iterable[str] = (DEFAULT_INSTANCE,),
        faults: FaultPlan | None = None,
        seed: int = 0,
    ) -> None:
        """Build the initial world: every instance ``open``, every plausible number on WhatsApp."""
        self.clock = clock
        self.api_key = api_key
        self.faults = faults if faults is not None else FaultPlan()
        self.lock = threading.RLock()
        self._initial_instances = tuple(dict.fromkeys(instances))
        self._seed = seed
        # Message ids never repeat, not even across resets; tokens and instance ids do.
        self._id_rng = random.Random(seed + 104_729)
        self._build()

    def _build(self) -> None:
        self._rng = random.Random(self._seed)
        self.instances: dict[str, Instance] = {}
        for name in self._initial_instances:
            self.add_instance(name)
        self.not_on_whatsapp: set[str] = set()
        self.names: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.seq = 0
        self.message_seq = 0
        self.send_failures: collections.deque[SendFailure] = collections.deque()
        self.connection_closed_body: Literal["string", "array"] = "string"

    # ---- control --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Return to the initial world: instances open, no faults, messages, calls or failures."""
        with self.lock:
            self.faults.clear()
            self._build()

    def add_instance(self, name: str, *, mode: InstanceMode = "open") -> Instance:
        """Create (or replace) an instance with a fresh token."""
        with self.lock:
            instance = Instance(
                name=name,
                token=f"{self._rng.getrandbits(128):032X}",
                instance_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                mode=mode,
            )
            self.instances[name] = instance
            return instance

    def remove_instance(self, name: str) -> bool:
        """Delete an instance; True when it existed."""
        with self.lock:
            return self.instances.pop(name, None) is not None

    def instance_token(self, name: str) -> str:
        """The instance's own apikey (also accepted by the guards)."""
        with self.lock:
            return self.instances[name].token

    def set_state(self, name: str, mode: InstanceMode, *, stale: bool = False) -> Instance:
        """Put an instance in ``open``/``connecting``/``close``/``unloaded`` (KeyError if absent).

        ``stale=True`` with ``open`` keeps reporting ``open`` while sends fail (CONTRACT.md §3).
        """
        if mode not in MODES:
            raise ValueError(f"state must be one of open, connecting, close, unloaded: {mode!r}")
        with self.lock:
            instance = self.instances[name]
            instance.mode = mode
            instance.stale = stale and mode == "open"
            if mode == "open":
                instance.qr_count = 0
            return instance

    def disconnect(self, name: str = DEFAULT_INSTANCE) -> None:
        """The phone dropped: the instance goes to ``close``."""
        self.set_state(name, "close")

    def connect(self, name: str = DEFAULT_INSTANCE) -> None:
        """Someone scanned the QR code: the instance goes to ``open``."""
        self.set_state(name, "open")

    def set_on_whatsapp(self, numbers: Iterable[str], *, exists: bool) -> list[str]:
        """Mark numbers as (not) on WhatsApp; returns the digits affected."""
        affected = [digits_of(n) for n in numbers]
        with self.lock:
            for digits in affected:
                if exists:
                    self.not_on_whatsapp.discard(digits)
                else:
                    self.not_on_whatsapp.add(digits)
        return affected

    def queue_send_failure(self, failure: SendFailure) -> None:
        """Make the next ``failure.times`` sends fail with a library error."""
        with self.lock:
            self.send_failures.append(failure)

    def on_whatsapp(self, number: str) -> dict[str, Any]:
        """The OnWhatsApp entry for one input, key order ``jid, exists, number[, name]``."""
        jid = create_jid(number)
        user = digits_of(jid)
        if jid.endswith("@g.us") or jid.endswith("@broadcast"):
            exists = False
        else:
            with self.lock:
                exists = (
                    is_plausible(user)
                    and user not in self.not_on_whatsapp
                    and digits_of(number) not in self.not_on_whatsapp
                )
        entry: dict[str, Any] = {"jid": jid, "exists": exists, "number": number}
        name = self.names.get(user)
        if exists and name:
            entry["name"] = name
        return entry

    def messages_since(self, since: int = 0) -> list[dict[str, Any]]:
        """Message-log entries with ``seq > since``."""
        with self.lock:
            return [dict(m) for m in self.messages if m["seq"] > since]

    def calls_since(self, since: int = 0) -> list[dict[str, Any]]:
        """Call-log entries with ``seq > since``."""
        with self.lock:
            return [c for c in self.calls if c["seq"] > since]

    def clear_calls(self) -> None:
        """Empty the call log (sequence numbers keep growing)."""
        with self.lock:
            self.calls.clear()

    def clear_messages(self) -> None:
        """Empty the message log (sequence numbers keep growing)."""
        with self.lock:
            self.messages.clear()

    def summary(self) -> dict[str, Any]:
        """Counts of logged calls by ``METHOD route`` and status, and of messages sent."""
        with self.lock:
            return {
                **call_counts(self.calls),
                "messages": len(self.messages),
                "instances": {n: i.mode for n, i in sorted(self.instances.items())},
            }

    def log(self, call: _Call, template: str, outcome: _Outcome, fault: str | None) -> None:
        """Append one exchange to the call log (the ``apikey`` header is never stored)."""
        with self.lock:
            self.seq += 1
            self.calls.append(
                {
                    "seq": self.seq,
                    "at": self.clock.now(),
                    "method": call.method,
                    "path": call.path,
                    "route": template,
                    "query": dict(call.query),
                    "request_content_type": call.headers.get("content-type"),
                    "request_json": call.json,
                    "request_form": call.form,
                    "request_files": [],
                    "status": outcome.status,
                    "response_json": outcome.body,
                    "response_headers": {
                        k: v for k, v in outcome.headers.items() if k == "retry-after"
                    },
                    "fault": fault,
                }
            )

    # ---- the gateway's behaviour ----------------------------------------------------------------

    def connection_closed(self) -> ApiError:
        """The 500 of a closed socket, in the configured variant (CONTRACT.md §5.6)."""
        if self.connection_closed_body == "array":
            return ApiError(500, [f"Error: {CONNECTION_CLOSED}"])
        return ApiError(500, CONNECTION_CLOSED)

    def message_id(self) -> str:
        """A Baileys-style id: ``3EB0`` and 18 upper-case hex digits (22 characters)."""
        return "3EB0" + f"{self._id_rng.getrandbits(72):018X}"

    def record_message(
        self, instance: Instance, *, number: str, jid: str, text: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Accept one message for sending; returns the 201 body (CONTRACT.md §2.1)."""
        now = int(self.clock.now())
        message_id = self.message_id()
        self.message_seq += 1
        self.messages.append(
            {
                "seq": self.message_seq,
                "id": message_id,
                "instance": instance.name,
                "number": number,
                "remote_jid": jid,
                "text": text,
                "timestamp": now,
                "status": "PENDING",
                "delay": body.get("delay"),
                "link_preview": body.get("linkPreview"),
            }
        )
        return {
            "key": {"remoteJid": jid, "fromMe": True, "id": message_id},
            "pushName": PUSH_NAME,
            "status": "PENDING",
            "message": {"conversation": text},
            "contextInfo": {"mentionedJid": [], "groupMentions": []},
            "messageType": "conversation",
            "messageTimestamp": now,
            "instanceId": instance.instance_id,
            "source": "web",
        }

    def qr_code(self, instance: Instance) -> dict[str, Any]:
        """The QR object of ``GET /instance/connect`` (CONTRACT.md §4)."""
        instance.qr_count += 1
        code = "2@" + base64.b64encode(self._rng.randbytes(48)).decode()
        pairing: str | None = None
        if instance.pairing_number:
            alphabet = "ABCDEFGHJKLMNPQRSTVWXYZ0123456789"
            pairing = "".join(self._rng.choice(alphabet) for _ in range(8))
        return {
            "pairingCode": pairing,
            "code": code,
            "base64": "data:image/png;base64," + _PNG,
            "count": instance.qr_count,
        }


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


def _send_text(state: EvolutionState, instance: Instance, call: _Call) -> _Outcome:
    body = call.json
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
    return _Outcome(
        201, state.record_message(instance, number=number, jid=jid, text=text, body=body)
    )


def _connection_state(state: EvolutionState, instance: Instance, call: _Call) -> _Outcome:
    info: dict[str, Any] = {"instanceName": instance.name}
    if instance.mode != "unloaded":
        info["state"] = instance.mode
    return _Outcome(200, {"instance": info})


def _connect(state: EvolutionState, instance: Instance, call: _Call) -> _Outcome:
    if instance.mode == "unloaded":
        message = "TypeError: Cannot read properties of undefined (reading 'connectionStatus')"
        return _Outcome(200, {"error": True, "message": message})
    if instance.mode == "open":
        return _Outcome(200, {"instance": {"instanceName": instance.name, "state": "open"}})
    number = call.query.get("number")
    if number:
        instance.pairing_number = digits_of(number)
    instance.mode = "connecting"
    return _Outcome(200, state.qr_code(instance))


def _whatsapp_numbers(state: EvolutionState, instance: Instance, call: _Call) -> _Outcome:
    body = call.json
    problems = whatsapp_numbers_problems(body)
    if problems:
        return _Outcome(400, _raw_error(problems))
    assert isinstance(body, dict)
    numbers = body.get("numbers")
    if numbers is None or instance.mode == "unloaded":
        return _Outcome(400, {})  # a TypeError thrown in the handler serialises to {}
    if not instance.can_send:
        return _Outcome(400, _boom_connection_closed())
    broadcasts = [n for n in numbers if "@broadcast" in n]
    groups = [n for n in numbers if "@g.us" in create_jid(n) and n not in broadcasts]
    plain = [n for n in numbers if n not in broadcasts and n not in groups]
    return _Outcome(200, [state.on_whatsapp(n) for n in (*broadcasts, *groups, *plain)])


RouteHandler = Callable[[EvolutionState, Instance, _Call], _Outcome]
_ROUTE_SPECS: tuple[tuple[str, str, str, RouteHandler], ...] = (
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
ROUTES = tuple(
    (method, re.compile("^" + re.escape(prefix) + r"(?P<instance>[^/]+)/?$"), template, handler)
    for method, prefix, template, handler in _ROUTE_SPECS
)


def _route(method: str, path: str) -> tuple[RouteHandler, str, str] | None:
    """The handler, the instance name and the route template for ``method path``."""
    for route_method, pattern, template, handler in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, match.group("instance"), template
    return None


# ---- HTTP layer ---------------------------------------------------------------------------------


class _Dropped(Response):
    """Start a response that announces a body and never sends it: the client sees a drop."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )


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


def _fault_outcome(decision: FaultDecision) -> _Outcome | None:
    if decision.kind == "rate_limited":
        # Evolution API never answers 429 itself: this is a proxy in front of it (§5.7).
        return _Outcome(
            429,
            {"status": 429, "error": "Too Many Requests", "response": {"message": "Too Many"}},
            {"retry-after": str(max(decision.retry_after, 1))},
        )
    if decision.kind == "error":
        return _Outcome(decision.status, envelope(decision.status, "Internal Server Error"))
    if decision.kind in ("timeout", "drop") and not decision.process:
        return _Outcome(504, envelope(504, "Gateway Timeout"))
    return None


def _api_endpoint(state: EvolutionState) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = _Call(
            method=request.method,
            path=path,
            params={},
            query=dict(request.query_params),
            json=None,
            form=None,
            headers=headers,
        )
        found = _route(call.method, path)
        template = found[2] if found else path
        decision = FaultDecision()
        outcome: _Outcome | None = None
        try:
            call.json, call.form = _parse_body(headers.get("content-type", ""), raw)
            if call.form is not None:
                call.json = dict(call.form)
            if found is None:
                raise ApiError(404, [f"Cannot {call.method} {path}"])
            handler, name, _ = found
            call.params = {"instance": name}
            with state.lock:
                instance = state.instances.get(name)
                if instance is None:
                    raise ApiError(404, [f'The "{name}" instance does not exist'])
                key = headers.get("apikey", "")
                if not key or key not in (state.api_key, instance.token):
                    raise ApiError(401, "Unauthorized")
            decision = state.faults.decide(call.method, path)
            outcome = _fault_outcome(decision)
            if outcome is None:
                with state.lock:
                    outcome = handler(state, instance, call)
        except ApiError as exc:
            outcome = _Outcome(exc.status, exc.body())
        if call.form is not None:
            call.json = None
        assert outcome is not None
        state.log(call, template, outcome, None if decision.kind == "none" else decision.kind)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.kind == "timeout":
            await asyncio.sleep(decision.hold_seconds)
        if decision.kind == "drop":
            return _Dropped()
        return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)

    return endpoint


# ---- control endpoints --------------------------------------------------------------------------


def _control_routes(state: EvolutionState) -> list[Route]:
    async def instances(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                return bad_request('body must be {"name": str}')
            return JSONResponse(state.add_instance(name).as_json(), status_code=201)
        with state.lock:
            listed = [i.as_json() for _, i in sorted(state.instances.items())]
        return JSONResponse({"instances": listed})

    async def instance(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            return JSONResponse({"deleted": state.remove_instance(name)})
        if request.method == "PUT":
            body = await read_json(request)
            wanted = body.get("state") if isinstance(body, dict) else None
            stale = body.get("stale", False) if isinstance(body, dict) else False
            mode = next((m for m in MODES if m == wanted), None)
            if mode is None:
                return bad_request(f"state must be one of {', '.join(MODES)}")
            try:
                changed = state.set_state(name, mode, stale=bool(stale))
            except KeyError:
                return bad_request(f"no instance {name!r}", status=404)
            except ValueError as exc:
                return bad_request(str(exc))
            return JSONResponse(changed.as_json())
        with state.lock:
            found = state.instances.get(name)
            view = found.as_json() if found is not None else None
        if view is None:
            return bad_request(f"no instance {name!r}", status=404)
        return JSONResponse(view)

    async def numbers(request: Request) -> Response:
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

    async def send_failures(request: Request) -> Response:
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

    async def config(request: Request) -> Response:
        if request.method == "PUT":
            body = await read_json(request)
            variant = body.get("connection_closed_body") if isinstance(body, dict) else None
            if variant not in ("string", "array"):
                return bad_request('body must be {"connection_closed_body": "string" | "array"}')
            with state.lock:
                state.connection_closed_body = variant
        return JSONResponse({"connection_closed_body": state.connection_closed_body})

    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_messages()
            return JSONResponse({"cleared": True})
        since = _since(request)
        if since is None:
            return bad_request("since must be an integer")
        return JSONResponse({"messages": state.messages_since(since)})

    return [
        *shared_routes(
            clock=state.clock,
            faults=state.faults,
            reset=state.reset,
            calls_since=state.calls_since,
            clear_calls=state.clear_calls,
            summary=state.summary,
        ),
        Route("/__sandbox/instances", instances, methods=["GET", "POST"]),
        Route("/__sandbox/instances/{name}", instance, methods=["GET", "PUT", "DELETE"]),
        Route("/__sandbox/numbers", numbers, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/send-failures", send_failures, methods=["GET", "POST", "DELETE"]),
        Route("/__sandbox/config", config, methods=["GET", "PUT"]),
        Route("/__sandbox/messages", messages, methods=["GET", "DELETE"]),
    ]


def _since(request: Request) -> int | None:
    try:
        return int(request.query_params.get("since", "0"))
    except ValueError:
        return None


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
        *_control_routes(state),
        Route(
            "/{path:path}", _api_endpoint(state), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
        ),
    ]
    return Starlette(routes=routes), state
