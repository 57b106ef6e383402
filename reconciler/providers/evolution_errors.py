"""The Evolution API's answers as the project's errors (CONTRACT.md section 5).

Used by :class:`~reconciler.providers.evolution.EvolutionClient`, which hands
:func:`check_response` to :class:`~reconciler.providers.http.HttpApi` for every call; the
error types are re-exported there. The rules are obligation 2 of that module's docstring.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler.core.provider import Provider
from reconciler.errors import PermanentError, TransientError
from reconciler.providers.http import Call

PROVIDER = Provider.WHATSAPP
"""The gateway's one provider name (errors, breaker, budget): ``whatsapp``, not the adapter's."""
SEND_TEXT = "/message/sendText/{instance}"
CONNECTION_STATE = "/instance/connectionState/{instance}"
WHATSAPP_NUMBERS = "/chat/whatsappNumbers/{instance}"

DISCONNECTED_RETRY_AFTER = 60.0
"""Seconds the runtime should wait before trying a disconnected gateway again."""
_CONNECTION_CLOSED = "Connection Closed"


# ---- errors -------------------------------------------------------------------------------------


class InvalidNumberError(PermanentError):
    """The recipient is not on WhatsApp (or the number is not a phone number at all).

    ``number`` is the number as sent, ``jid`` the JID the gateway resolved ("" when refused
    locally). Known false negatives exist (CONTRACT.md §5.3): permanent for this attempt.
    """

    def __init__(
        self, message: str, *, number: str, jid: str = "", status: int | None = None
    ) -> None:
        """Keep the number and JID next to the message."""
        super().__init__(PROVIDER, message, status=status)
        self.number = number
        self.jid = jid


class UnknownInstanceError(PermanentError):
    """The configured instance name does not exist on the gateway (404)."""


class EvolutionAuthError(PermanentError):
    """The ``apikey`` was refused (401): neither the global key nor the instance's token."""


class RequestRejectedError(PermanentError):
    """The gateway refused our request as malformed (validation, blank text, bad JSON)."""


class GatewayDisconnectedError(TransientError):
    """The instance's WhatsApp socket is closed: nothing can be checked or sent until it is back."""


class SendFailedError(TransientError):
    """The gateway's WhatsApp library failed while sending; the message may have gone out."""


# ---- response check -----------------------------------------------------------------------------


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(body: Any) -> Any:
    """``response.message`` of the envelope, or ``message`` of a raw thrown object."""
    if not isinstance(body, dict):
        return None
    inner = body.get("response")
    if isinstance(inner, dict):
        return inner.get("message")
    return body.get("message")


def _mentions_closed(body: Any, response: httpx.Response) -> bool:
    text = json.dumps(body) if body is not None else response.text
    return _CONNECTION_CLOSED in text


def _summary(message: Any) -> str:
    if isinstance(message, list):
        flat = [m for item in message for m in (item if isinstance(item, list) else [item])]
        return "; ".join(str(m) for m in flat)[:300]
    return str(message)[:300] if message is not None else ""


class Disconnected(Exception):
    """Carries a GatewayDisconnectedError past ``with_retries`` (it must not be retried here)."""

    def __init__(self, error: GatewayDisconnectedError) -> None:
        super().__init__(str(error))
        self.error = error


def check_response(response: httpx.Response, call: Call) -> None:
    """Return for a 2xx; raise the project's error for anything else (CONTRACT.md §5).

    Raises:
        InvalidNumberError, UnknownInstanceError, EvolutionAuthError, RequestRejectedError:
            permanent failures.
        SendFailedError, TransientError: transient failures.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    body = body_of(response)
    message = _message(body)
    where = call.label
    if status == 404:
        if isinstance(message, list) and any("does not exist" in str(m) for m in message):
            instance = call.path.get("instance", "")
            raise UnknownInstanceError(
                PROVIDER, f"{where}: instance {instance!r} does not exist (404)", status=404
            )
        raise PermanentError(
            PROVIDER,
            f"{where}: no such route (404: {_summary(message)}); check the base URL and that "
            "the gateway runs Evolution API v2",
            status=404,
        )
    if status == 401:
        raise EvolutionAuthError(PROVIDER, f"{where}: apikey refused (401)", status=401)
    if status in (400, 500) and _mentions_closed(body, response):
        raise Disconnected(
            GatewayDisconnectedError(
                PROVIDER,
                f"{where}: WhatsApp connection closed ({status}: {_summary(message) or 'raw'})",
                status=status,
                retry_after=DISCONNECTED_RETRY_AFTER,
                # A 500 comes from the number check, before anything is sent (§2, §5.6).
                not_applied=status == 500,
            )
        )
    if status == 400:
        _raise_bad_request(call, body, message)
    if status >= 500:
        raise TransientError(
            PROVIDER, f"{where}: server error ({status}: {_summary(message)})", status=status
        )
    raise PermanentError(
        PROVIDER, f"{where}: refused ({status}: {_summary(message)})", status=status
    )


def _raise_bad_request(call: Call, body: Any, message: Any) -> None:
    where = call.label
    if isinstance(message, list) and message:
        first = message[0]
        if isinstance(first, dict) and first.get("exists") is False:
            number = str(first.get("number", ""))
            jid = str(first.get("jid", ""))
            raise InvalidNumberError(
                f"{where}: {number} is not on WhatsApp (jid {jid})",
                number=number,
                jid=jid,
                status=400,
            )
        if isinstance(first, list):
            raise RequestRejectedError(
                PROVIDER, f"{where}: request rejected (400: {_summary(message)})", status=400
            )
        if all(isinstance(m, str) for m in message):
            if "Text is required" in message:
                raise RequestRejectedError(PROVIDER, f"{where}: text is required", status=400)
            if call.template == SEND_TEXT:
                raise SendFailedError(
                    PROVIDER,
                    f"{where}: send failed in the gateway, may have been sent "
                    f"(400: {_summary(message)})",
                    status=400,
                )
    if isinstance(message, str):
        raise RequestRejectedError(
            PROVIDER, f"{where}: body refused (400: {_summary(message)})", status=400
        )
    if call.template == WHATSAPP_NUMBERS and isinstance(body, dict):
        # The route answers library failures with the raw thrown object (§6): the request was
        # valid, so it is the gateway's trouble.
        raise TransientError(PROVIDER, f"{where}: number check failed in the gateway", status=400)
    raise PermanentError(PROVIDER, f"{where}: refused (400: {_summary(message)})", status=400)
