"""Cloudflare's response envelope and error codes, translated into the project's error types.

Who calls it: :class:`reconciler.providers.cloudflare.CloudflareClient` hands
:func:`check_envelope` to :class:`reconciler.providers.http.HttpApi` as its response check, so
every Cloudflare answer passes through it. Pure functions of the response; no I/O.

Rules (contracts/cloudflare/CONTRACT.md §1.1, §1.3, §2), applied in this order:

=====================================================  ==========================================
answer                                                 raised
=====================================================  ==========================================
any 2xx whose body is not ``success: false``           nothing (a bare ``{"id": ...}`` is fine)
2xx with a body that is not JSON                        ``TransientError`` (a proxy page, say)
HTTP 429 or code 971                                    ``TransientError(not_applied=True,
                                                        retry_after)``; 429 is handled (and the
                                                        bucket paused) by ``providers/http.py``
HTTP 5xx, 408, codes 8000000 (Pages), 1500              ``TransientError`` (outcome unknown)
code 1406 (duplicate custom hostname)                   :class:`DuplicateHostnameError`
code 8000013 (upload JWT expired)                       :class:`UploadTokenExpiredError`
HTTP 404, codes 1436, 8000007, 7404                     ``NotFoundError``
HTTP 401/403, code 10000                                ``PermanentError`` (authentication)
any other failure (400 validation, 7003, 1435, 7500…)   ``PermanentError``
=====================================================  ==========================================

Messages name the request by its path template and quote Cloudflare's codes and messages, with
any configured secret scrubbed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.core.provider import Provider
from reconciler.errors import NotFoundError, PermanentError, ProviderError, TransientError
from reconciler.providers.http import Call, retry_after_seconds

__all__ = [
    "AUTH_CODES",
    "NOT_FOUND_CODES",
    "PROVIDER",
    "RATE_LIMITED_CODE",
    "TRANSIENT_CODES",
    "ApiMessage",
    "DuplicateHostnameError",
    "UploadTokenExpiredError",
    "check_envelope",
    "classify",
    "parse_messages",
]

PROVIDER = Provider.CLOUDFLARE
RATE_LIMITED_CODE = 971
DUPLICATE_HOSTNAME = 1406
UPLOAD_TOKEN_EXPIRED = 8000013
NOT_FOUND_CODES = frozenset({1436, 8000007, 7404})
TRANSIENT_CODES = frozenset({8000000, 1500})
AUTH_CODES = frozenset({10000})


class DuplicateHostnameError(PermanentError):
    """Creating a custom hostname failed because it already exists (1406, HTTP 409)."""


class UploadTokenExpiredError(PermanentError):
    """The Pages asset-upload JWT is unauthorized or expired (8000013); fetch a new one."""


@dataclass(frozen=True, slots=True)
class ApiMessage:
    """One entry of the envelope's ``errors``: code and message."""

    code: int
    message: str


def parse_messages(body: Any) -> tuple[ApiMessage, ...]:
    """The ``errors`` of a decoded failure envelope (tolerant of odd shapes)."""
    if not isinstance(body, dict):
        return ()
    out: list[ApiMessage] = []
    for item in body.get("errors") or ():
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        message = item.get("message")
        out.append(
            ApiMessage(
                code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
                message=message if isinstance(message, str) else "",
            )
        )
    return tuple(out)


def classify(
    status: int,
    messages: tuple[ApiMessage, ...],
    label: str,
    *,
    retry_after: float | None = None,
    scrub: Callable[[str], str] = lambda text: text,
) -> ProviderError:
    """Map one failed answer to the project's error type (table in the module docstring).

    Args:
        status: the HTTP status.
        messages: the envelope's ``errors``.
        label: ``"METHOD /template"`` of the request.
        retry_after: the ``Retry-After`` hint in seconds, if any.
        scrub: removes secrets from the message.

    Returns:
        The error to raise (not raised here).
    """
    codes = {m.code for m in messages}
    detail = "; ".join(f"{m.code} {m.message}".strip() for m in messages) or "no error details"
    text = scrub(f"{label} -> HTTP {status}: {detail}")
    if status == 429 or RATE_LIMITED_CODE in codes:
        return TransientError(
            PROVIDER, text, status=status, retry_after=retry_after, not_applied=True
        )
    if status >= 500 or status == 408 or codes & TRANSIENT_CODES:
        return TransientError(PROVIDER, text, status=status, retry_after=retry_after)
    if DUPLICATE_HOSTNAME in codes:
        return DuplicateHostnameError(PROVIDER, text, status=status)
    if UPLOAD_TOKEN_EXPIRED in codes:
        return UploadTokenExpiredError(PROVIDER, text, status=status)
    if status == 404 or codes & NOT_FOUND_CODES:
        return NotFoundError(PROVIDER, text, status=status)
    if status in (401, 403) or codes & AUTH_CODES:
        return PermanentError(PROVIDER, f"authentication failed: {text}", status=status)
    return PermanentError(PROVIDER, text, status=status)


def check_envelope(
    response: httpx.Response, call: Call, *, scrub: Callable[[str], str] = lambda t: t
) -> None:
    """Raise the project's error for a failed Cloudflare answer; return for a success.

    Args:
        response: the HTTP response (its body is read here).
        call: the request it answers (for the message).
        scrub: removes secrets from messages.
    """
    status = response.status_code
    body: Any = None
    decoded = True
    if response.content:
        try:
            body = response.json()
        except ValueError:
            decoded = False
    if 200 <= status < 300:
        if not decoded:
            raise TransientError(
                PROVIDER,
                scrub(f"{call.label} -> HTTP {status}: the body is not JSON"),
                status=status,
            )
        if not (isinstance(body, dict) and body.get("success") is False):
            return
    raise classify(
        status,
        parse_messages(body),
        call.label,
        retry_after=retry_after_seconds(response),
        scrub=scrub,
    )
