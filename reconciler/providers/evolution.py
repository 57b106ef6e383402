"""Evolution API adapter (WhatsApp): connection state, number check and sending dunning texts.

Who calls it: the dunning executor and the WhatsApp health check, through
:class:`EvolutionClient`, built by ``wiring`` from
:class:`~reconciler.settings.EvolutionSettings` with the token bucket shared by every client of
the gateway's key. What it calls: :class:`~reconciler.providers.http.HttpApi` (httpx, the token
bucket, :func:`~reconciler.providers.retry.with_retries`) against the v2 routes of
``../shared/contracts/evolution/CONTRACT.md``.

Obligations (the contract's sections in brackets):

1. v2 bodies only: ``{"number", "text"}`` for sendText, with the number sent as digits without
   ``+`` (a full JID is sent as is) [§2]. Numbers longer than E.164's 15 digits are refused
   locally, because the server would turn them into a *group* JID [§2, createJid].
2. Errors become the project's types, raised from the HTTP response [§5, §5.8]:

   - 400 with the OnWhatsApp object (``exists: false``): :class:`InvalidNumberError`
     (permanent; the step fails once with the number and JID in the message);
   - 404 ``instance does not exist``: :class:`UnknownInstanceError` (permanent, configuration);
     any other 404 (no such route: wrong base URL or a v1 server): ``PermanentError``;
   - 401: :class:`EvolutionAuthError` (permanent, configuration);
   - 400 validation (nested array), ``Text is required`` or malformed JSON:
     :class:`RequestRejectedError` (permanent: our request is wrong);
   - ``Connection Closed`` in any form (500 string, 500 ``["Error: Connection Closed"]``, the
     raw 400 object of whatsappNumbers): :class:`GatewayDisconnectedError` (transient);
   - another 400 from sendText (a library error such as ``SessionError: No sessions``):
     :class:`SendFailedError` (transient, but the message *may* have gone out: never resent
     here);
   - 5xx, timeouts and connection failures: ``TransientError``.
3. Retries (:mod:`reconciler.providers.retry`): reads are retried with backoff; sendText is not
   idempotent, so it is retried only when the request certainly had no effect (a refused
   connection, a proxy's 429). A disconnected gateway is reported at once, never retried here:
   it usually needs someone to scan a QR code (RUNBOOKS.md §8), and the runtime's own backoff
   (``retry_after`` = :data:`DISCONNECTED_RETRY_AFTER`) decides when to look again.
4. Every request, retries included, takes a token from the shared bucket first, so sends are
   paced client-side (the server has no rate limit of its own [§5.7]).
5. ``calls`` counts the requests sent, by ``"METHOD /route/{instance}"``. The API key is only
   ever in the ``apikey`` header: never in a URL, a message, a log line or a ``repr``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from reconciler.core.lane import Lane
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.evolution_errors import (
    CONNECTION_STATE,
    DISCONNECTED_RETRY_AFTER,
    PROVIDER,
    SEND_TEXT,
    WHATSAPP_NUMBERS,
    Disconnected,
    EvolutionAuthError,
    GatewayDisconnectedError,
    InvalidNumberError,
    RequestRejectedError,
    SendFailedError,
    UnknownInstanceError,
    body_of,
    check_response,
)
from reconciler.providers.http import Call, HttpApi
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.settings import EvolutionSettings

__all__ = [
    "CONNECTION_STATE",
    "DISCONNECTED_RETRY_AFTER",
    "PROVIDER",
    "SEND_TEXT",
    "WHATSAPP_NUMBERS",
    "ConnectionState",
    "EvolutionAuthError",
    "EvolutionClient",
    "GatewayDisconnectedError",
    "InvalidNumberError",
    "NumberCheck",
    "RequestRejectedError",
    "SendFailedError",
    "SentMessage",
    "UnknownInstanceError",
    "check_response",
    "wire_number",
]

NUMBERS_PER_CHECK = 100
"""Numbers per whatsappNumbers request (the server sets no limit; this keeps each call short)."""

E164_MAX_DIGITS = 15
DEFAULT_RETRY = RetryPolicy()


# ---- values -------------------------------------------------------------------------------------


class ConnectionState(StrEnum):
    """An instance's WhatsApp connection (CONTRACT.md §3); only ``OPEN`` can send."""

    OPEN = "open"
    CONNECTING = "connecting"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class NumberCheck:
    """Whether one number is on WhatsApp, and the JID the gateway resolved for it."""

    exists: bool
    jid: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A text the gateway accepted (201): ``id`` is the provider message id to log.

    ``status`` is normally ``PENDING``; delivery progress only arrives by webhook.
    ``timestamp`` is epoch seconds (``None`` if the gateway sent none); ``raw`` the whole body,
    for ``dunning_step_logs.provider_response``.
    """

    id: str
    remote_jid: str
    status: str
    timestamp: int | None
    raw: Mapping[str, Any]


def wire_number(number: str) -> str:
    """The ``number`` field to send: digits without ``+`` (a JID unchanged).

    Raises:
        InvalidNumberError: when there are no digits, or more than E.164's 15 (the gateway would
            treat 18+ digits as a group).
    """
    if "@" in number:
        return number.strip()
    digits = re.sub(r"\D", "", number)
    if not digits:
        raise InvalidNumberError(f"not a phone number: {number!r}", number=number)
    if len(digits) > E164_MAX_DIGITS:
        raise InvalidNumberError(
            f"not an E.164 number (more than {E164_MAX_DIGITS} digits): {number!r}",
            number=number,
        )
    return digits


# ---- client -------------------------------------------------------------------------------------


class EvolutionClient(AsyncClosing):
    """The Evolution API v2 client for one instance; an async context manager.

    Attributes:
        instance: the instance name every call addresses.
    """

    def __init__(
        self,
        settings: EvolutionSettings,
        *,
        bucket: TokenBucket,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        lane: Lane = Lane.CHANGE,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Build the client.

        Args:
            settings: base URL (the server root), API key and instance name.
            bucket: the token bucket shared by every client of this gateway key.
            retry: attempts and backoff for transient failures.
            transport: an httpx transport (``httpx.ASGITransport`` in unit tests).
            timeout: seconds per request; a send blocks for its ``delay`` plus the number check.
            lane: default priority lane (``send_text`` can override it).
            rng: jitter source for the backoff (seeded in tests).
            sleep: how retries wait (a fake in tests).

        Raises:
            ValueError: when the base URL or the instance name is missing.
        """
        if not settings.base_url or not settings.instance:
            raise ValueError("EVOLUTION_API_BASE and EVOLUTION_INSTANCE must be set")
        self.instance = settings.instance
        self._api = HttpApi(
            provider=PROVIDER,
            base_url=settings.base_url,
            headers={"apikey": settings.api_key.reveal(), "accept": "application/json"},
            bucket=bucket,
            check=check_response,
            retry=retry,
            transport=transport,
            timeout=timeout,
            lane=lane,
            secrets=(settings.api_key.reveal(),),
            rng=rng,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        """Where the client points, never its key."""
        return f"EvolutionClient(base_url={self._api.base_url!r}, instance={self.instance!r})"

    @property
    def calls(self) -> Counter[str]:
        """Requests sent so far, by ``"METHOD /route/{instance}"`` (retries included)."""
        return self._api.calls

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._api.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._api.send(call)
        except Disconnected as stop:
            raise stop.error from None

    async def connection_state(self) -> ConnectionState:
        """The instance's connection state (``GET /instance/connectionState``).

        An absent ``state`` (the instance is not loaded) or one this client does not know
        (``refused``) reads as ``CLOSE``: nothing can be sent in either case.
        """
        response = await self._send(Call("GET", CONNECTION_STATE, path={"instance": self.instance}))
        body = body_of(response)
        info = body.get("instance") if isinstance(body, dict) else None
        state = info.get("state") if isinstance(info, dict) else None
        known = {s.value: s for s in ConnectionState}
        return (
            known.get(state, ConnectionState.CLOSE)
            if isinstance(state, str)
            else (ConnectionState.CLOSE)
        )

    async def check_numbers(self, numbers: Sequence[str]) -> dict[str, NumberCheck]:
        """Which numbers are on WhatsApp (``POST /chat/whatsappNumbers``).

        Args:
            numbers: phone numbers in E.164 (``+`` and separators allowed) or JIDs.

        Returns:
            One entry per distinct input, keyed by the input as given. Inputs that cannot be
            phone numbers are answered ``exists=False`` without asking the gateway.
        """
        results: dict[str, NumberCheck] = {}
        wire: dict[str, list[str]] = {}
        for number in dict.fromkeys(numbers):
            try:
                wire.setdefault(wire_number(number), []).append(number)
            except InvalidNumberError:
                results[number] = NumberCheck(exists=False, jid="")
        sent = list(wire)
        for start in range(0, len(sent), NUMBERS_PER_CHECK):
            chunk = sent[start : start + NUMBERS_PER_CHECK]
            response = await self._send(
                Call(
                    "POST",
                    WHATSAPP_NUMBERS,
                    path={"instance": self.instance},
                    json={"numbers": chunk},
                )
            )
            for value, check in _match_entries(chunk, body_of(response)).items():
                for original in wire[value]:
                    results[original] = check
        return {number: results[number] for number in dict.fromkeys(numbers)}

    async def send_text(self, number: str, text: str, *, lane: Lane | None = None) -> SentMessage:
        """Send one text (``POST /message/sendText``, v2 body); not idempotent.

        Args:
            number: recipient in E.164 (``+55 11 …`` is fine) or a JID.
            text: the message; must not be blank.
            lane: priority lane for the shared bucket (the client's default if None).

        Raises:
            InvalidNumberError: not on WhatsApp, or not a phone number (no request sent).
            GatewayDisconnectedError: the instance is not connected.
            SendFailedError: the gateway's library failed; the text may have been sent.
        """
        wire = wire_number(number)
        if not text.strip():
            raise RequestRejectedError(PROVIDER, "refusing to send a blank text")
        response = await self._send(
            Call(
                "POST",
                SEND_TEXT,
                path={"instance": self.instance},
                json={"number": wire, "text": text},
                idempotent=False,
                lane=lane,
            )
        )
        return _sent_message(body_of(response), wire)


def _match_entries(sent: Sequence[str], body: Any) -> dict[str, NumberCheck]:
    """Map whatsappNumbers entries back to the values sent.

    The server echoes ``number`` as sent and keeps the input order of plain numbers (broadcast
    and group entries first), so an entry is matched by its echo, then by its JID's digits,
    then by position among the entries left.
    """
    entries = body if isinstance(body, list) else []
    matched: dict[str, NumberCheck] = {}
    leftovers: list[NumberCheck] = []
    by_digits = {re.sub(r"\D", "", s.split("@")[0]): s for s in sent}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        check = NumberCheck(
            exists=entry.get("exists") is True,
            jid=str(entry.get("jid", "")),
            name=name if isinstance(name, str) else None,
        )
        echo = entry.get("number")
        jid_digits = re.sub(r"\D", "", check.jid.split("@")[0])
        if isinstance(echo, str) and echo in sent and echo not in matched:
            matched[echo] = check
        elif jid_digits in by_digits and by_digits[jid_digits] not in matched:
            matched[by_digits[jid_digits]] = check
        else:
            leftovers.append(check)
    for value in sent:
        if value not in matched:
            matched[value] = leftovers.pop(0) if leftovers else NumberCheck(exists=False, jid="")
    return matched


def _sent_message(body: Any, wire: str) -> SentMessage:
    raw: dict[str, Any] = body if isinstance(body, dict) else {}
    key = raw.get("key") if isinstance(raw.get("key"), dict) else {}
    assert isinstance(key, dict)
    stamp = raw.get("messageTimestamp")
    timestamp: int | None = None
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        timestamp = stamp
    elif isinstance(stamp, str) and stamp.isdigit():
        timestamp = int(stamp)
    return SentMessage(
        id=str(key.get("id", "")),
        remote_jid=str(key.get("remoteJid") or wire),
        status=str(raw.get("status", "PENDING")),
        timestamp=timestamp,
        raw=raw,
    )
