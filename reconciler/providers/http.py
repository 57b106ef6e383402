"""Shared HTTP plumbing for the reconciler's HTTP adapters: one request, budgeted and retried.

Who calls it: ``providers/cloudflare.py`` (and any other HTTP adapter, e.g. the Evolution API
client) builds one :class:`HttpApi` and sends every request through :meth:`HttpApi.send`.
What it calls: :class:`~reconciler.providers.ratelimit.TokenBucket` (shared per credential),
:func:`~reconciler.providers.retry.with_retries`, ``httpx.AsyncClient``.

One request goes through these steps, in order::

    Call ─▶ with_retries ─▶ bucket.acquire(lane) ─▶ httpx ─▶ 429? ─▶ check(response) ─▶ Response
                ▲                                      │        │          │
                └──────── TransientError ◀─────────────┴────────┴──────────┘

1. Every attempt, retries included, takes a token from the shared bucket first.
2. Network failures become :class:`~reconciler.errors.TransientError`. ``not_applied`` is set
   only where the request certainly never reached the server: a refused or failed connection
   (``httpx.ConnectError``, ``ConnectTimeout``) or no free connection (``PoolTimeout``). A read
   or write timeout, or a dropped connection, leaves the outcome unknown.
3. A 429 pauses the shared bucket for the server's ``Retry-After`` (seconds or an HTTP date;
   :data:`DEFAULT_RATE_LIMIT_PAUSE` when absent) and raises ``TransientError(not_applied=True,
   retry_after=...)``, so :func:`with_retries` waits it out instead of retrying hot, and every
   other caller of the same credential waits too.
4. Everything else is the adapter's ``check`` function: it reads the body (an envelope, say)
   and raises the project's error for a failure, or returns for a success.
5. ``with_retries`` retries transient errors: always for idempotent calls, only when
   ``not_applied`` for the others.
6. Fencing: inside :func:`fencing` (the daemon's and ``apply``'s writers run every call in
   one, with ``lease.ensure``), the check runs again immediately before each attempt leaves
   the process, after the bucket's wait and after every retry's backoff. A leader paused or
   cut off past its lease's local deadline therefore sends nothing more, even mid-retry; the
   check raises (``LeaseLostError``), which is never retried.

Secrets (tokens) passed as ``secrets`` are registered with ``reconciler/redact.py`` and masked
in every error message (and every other output), and :class:`HttpApi`'s ``repr`` shows neither
headers nor tokens. ``calls`` counts the requests actually sent, by
``"METHOD /path/{template}"``, for benchmarks and plan cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.core.lane import Lane
from reconciler.errors import PermanentError, ProviderError, TransientError
from reconciler.providers.closing import AsyncClosing
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy, with_retries
from reconciler.redact import redact, register

__all__ = [
    "DEFAULT_RATE_LIMIT_PAUSE",
    "DEFAULT_RETRY",
    "Call",
    "FormPart",
    "HttpApi",
    "ResponseCheck",
    "fencing",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy()
"""The retry policy adapters use unless told otherwise."""

DEFAULT_RATE_LIMIT_PAUSE = 60.0
"""Seconds to pause after a 429 that carries no usable ``Retry-After`` header."""

ResponseCheck = Callable[[httpx.Response, "Call"], None]
"""Raise the project's error for a failed response, or return for a successful one."""

FormPart = tuple[str, tuple[str | None, bytes, str | None]]
"""One multipart part: ``(name, (filename or None for a text field, bytes, content type))``."""

Fence = Callable[[], object]
"""Raises when this process may no longer act (``LeaderLease.ensure``)."""

_FENCE: ContextVar[Fence | None] = ContextVar("reconciler_fence", default=None)


@contextlib.contextmanager
def fencing(check: Fence | None) -> Iterator[None]:
    """Run the block with ``check`` called now and right before every request it sends (rule 6).

    Args:
        check: the fence (``lease.ensure``); None runs the block unfenced.
    """
    if check is None:
        yield
        return
    check()
    token = _FENCE.set(check)
    try:
        yield
    finally:
        _FENCE.reset(token)


@dataclass(frozen=True, slots=True)
class Call:
    """One logical request: what to send and whether repeating it is harmless.

    ``template`` is the path with ``{placeholders}`` (the key of :attr:`HttpApi.calls` and of
    error messages); ``path`` fills them (each value is percent-encoded as one segment).
    """

    method: str
    template: str
    path: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str | int] | None = None
    json: Any = None
    multipart: Sequence[FormPart] | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    lane: Lane | None = None

    @property
    def label(self) -> str:
        """``"METHOD /path/{template}"``: stable, free of ids and secrets."""
        return f"{self.method} {self.template}"

    def url(self) -> str:
        """The path relative to the API root, with every placeholder filled and encoded."""
        return self.template.format_map({k: quote(v, safe="") for k, v in self.path.items()})


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The ``Retry-After`` header as seconds from now, or None when absent or unreadable.

    Args:
        response: the HTTP response.
        now: epoch seconds for an HTTP-date header (default: the current time).

    Returns:
        A non-negative number of seconds, or None.
    """
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        reference = time.time() if now is None else now
        seconds = when.timestamp() - reference
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class HttpApi(AsyncClosing):
    """An ``httpx.AsyncClient`` behind a shared token bucket, retries and error translation."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        bucket: TokenBucket,
        check: ResponseCheck,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        lane: Lane = Lane.CHANGE,
        secrets: Sequence[str] = (),
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Build the client.

        Args:
            provider: name used in errors (``"cloudflare"``).
            base_url: API root; request paths are joined below it.
            headers: default headers (authentication included); never logged.
            bucket: the token bucket shared by every client of this credential.
            check: the adapter's response check (see :data:`ResponseCheck`).
            retry: attempts and backoff for transient failures.
            transport: an httpx transport (``httpx.MockTransport`` in unit tests).
            timeout: seconds for connect, read, write and pool waits.
            lane: default priority lane of this client's requests.
            secrets: values to scrub from any error message (the token).
            rng: jitter source for the backoff (seeded in tests).
            sleep: how retries wait (a fake in tests).
        """
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.bucket = bucket
        self.retry = retry
        self.lane = lane
        self.calls: Counter[str] = Counter()
        self._check = check
        self._secrets = tuple(s for s in secrets if s)
        register(self._secrets)
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=dict(headers),
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        """Provider and base URL only: never headers or tokens."""
        return f"HttpApi(provider={self.provider!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def scrub(self, text: str) -> str:
        """``text`` redacted (``reconciler/redact.py``): every configured secret, this
        client's included, and anything shaped like a credential, replaced by ``***``."""
        return redact(text)

    async def send(self, call: Call, *, retry: RetryPolicy | None = None) -> httpx.Response:
        """Send ``call`` with retries; return the successful response.

        Args:
            call: the request.
            retry: overrides the client's policy for this call.

        Returns:
            The response that passed the adapter's check.

        Raises:
            TransientError: still failing after the allowed attempts, or not retryable.
            PermanentError: the adapter's check said retrying cannot help.
        """

        def on_retry(attempt: int, error: TransientError, wait: float) -> None:
            log.warning(
                "%s: %s failed (%s); retry %d in %.2f s",
                self.provider,
                call.label,
                error,
                attempt + 1,
                wait,
            )

        return await with_retries(
            lambda: self.attempt(call),
            policy=retry if retry is not None else self.retry,
            idempotent=call.idempotent,
            rng=self._rng,
            sleep=self._sleep,
            on_retry=on_retry,
        )

    async def attempt(self, call: Call) -> httpx.Response:
        """Send ``call`` exactly once (after a bucket token); translate every failure.

        Returns:
            The response that passed the adapter's check.
        """
        await self.bucket.acquire(call.lane if call.lane is not None else self.lane)
        fence = _FENCE.get()
        if fence is not None:
            fence()  # after the wait, right before the request leaves (rule 6)
        self.calls[call.label] += 1
        try:
            response = await self._client.request(
                call.method,
                call.url(),
                params=dict(call.params) if call.params is not None else None,
                json=call.json,
                files=list(call.multipart) if call.multipart is not None else None,
                headers=dict(call.headers) if call.headers is not None else None,
            )
        except httpx.HTTPError as exc:
            raise self._network_error(call, exc) from exc
        if response.status_code == 429:
            hint = retry_after_seconds(response)
            pause = hint if hint is not None else DEFAULT_RATE_LIMIT_PAUSE
            self.bucket.pause_for(pause)
            raise TransientError(
                self.provider,
                f"{call.label}: rate limited (429), waiting {pause:g} s",
                status=429,
                retry_after=pause,
                not_applied=True,
            )
        self._check(response, call)
        return response

    def _network_error(self, call: Call, exc: httpx.HTTPError) -> ProviderError:
        kind = type(exc).__name__
        detail = self.scrub(str(exc)) or kind
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return TransientError(
                self.provider,
                f"{call.label}: not sent ({kind}: {detail})",
                not_applied=True,
            )
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(
                self.provider, f"{call.label}: no answer in time, outcome unknown ({kind})"
            )
        if isinstance(exc, httpx.TransportError):
            return TransientError(
                self.provider, f"{call.label}: connection failed, outcome unknown ({kind})"
            )
        # Anything else (an invalid URL, too many redirects) is a bug or bad settings.
        return PermanentError(self.provider, f"{call.label}: {kind}: {detail}")
