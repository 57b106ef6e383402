"""The Evolution API simulator's state: instances, numbers on WhatsApp, messages, errors.

:class:`EvolutionState` is what :mod:`reconciler.sandbox.evolution` serves and its control
endpoints (:mod:`reconciler.sandbox.evolution_control`) drive; tests read and drive it directly
too. It derives JIDs from numbers as the server does (``contracts/evolution/CONTRACT.md`` §2,
``createJid.ts``), holds the call log (:class:`~reconciler.sandbox.pipeline.CallLog`) and the
message log, and renders the gateway's error envelope (:class:`ApiError`, CONTRACT.md §1.1).
State is guarded by one lock, so tests may read or drive it from other threads while the server
runs.
"""

from __future__ import annotations

import base64
import collections
import random
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.faults import FaultPlan
from reconciler.sandbox.pipeline import CallLog, Refusal, Simulated

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


class ApiError(Refusal):
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


class EvolutionState(Simulated):
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
        self.call_log = CallLog(clock)
        self._build()

    def _build(self) -> None:
        self._rng = random.Random(self._seed)
        self.instances: dict[str, Instance] = {}
        for name in self._initial_instances:
            self.add_instance(name)
        self.not_on_whatsapp: set[str] = set()
        self.names: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []
        self.message_seq = 0
        self.send_failures: collections.deque[SendFailure] = collections.deque()
        self.connection_closed_body: Literal["string", "array"] = "string"

    # ---- control --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Return to the initial world: instances open, no faults, messages, calls or failures."""
        with self.lock:
            self.faults.clear()
            self.call_log.restart()
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

    def clear_messages(self) -> None:
        """Empty the message log (sequence numbers keep growing)."""
        with self.lock:
            self.messages.clear()

    def tallies(self) -> dict[str, Any]:
        """Messages sent and each instance's state, for ``/summary``."""
        return {
            "messages": len(self.messages),
            "instances": {n: i.mode for n, i in sorted(self.instances.items())},
        }

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
