"""Retries for provider calls: capped exponential backoff with full jitter, ``Retry-After`` first.

Adapters wrap each HTTP call in :func:`with_retries`. The rules (contracts/cloudflare/CONTRACT.md
§2.4 describes the official SDK's, which these follow):

1. Only :class:`~reconciler.errors.TransientError` is retried; a ``PermanentError`` is raised at
   once.
2. A non-idempotent call (a create, a send) is retried only when the error says the request
   certainly had no effect (``not_applied``: connection refused, 429). After a timeout or a 5xx
   the caller must look before trying again, so the error is raised.
3. The wait is the server's ``retry_after`` when it gave one (never shorter), else
   ``base * 2**attempt`` capped at ``cap``, with full jitter. A 429 is therefore waited out,
   never retried hot.
4. After ``attempts`` tries the last error is raised; the daemon's per-resource backoff takes it
   from there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one call is retried."""

    attempts: int = 4  # total tries, including the first
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 330.0  # longer hints (a 5-minute block) are still honoured, capped

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (0-based) without a server hint."""
        ceiling = min(self.cap, self.base * (2**attempt))
        return rng.uniform(ceiling / 2, ceiling)

    def delay(self, attempt: int, error: TransientError, rng: random.Random) -> float:
        """Delay before the next try after ``error``; a server hint is never shortened."""
        jittered = self.backoff(attempt, rng)
        if error.retry_after is not None:
            return min(self.max_retry_after, max(error.retry_after, 0.0)) + rng.uniform(0, 0.25)
        return jittered


NO_RETRY = RetryPolicy(attempts=1)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
) -> T:
    """Run ``call`` and retry it on transient errors according to ``policy``.

    Args:
        call: makes one attempt; raises TransientError or PermanentError on failure.
        policy: attempts and backoff.
        idempotent: whether repeating the call is harmless (GET, PUT-like PATCH, DELETE).
        rng: jitter source (inject a seeded one in tests).
        sleep: how to wait (inject a fake in tests).
        on_retry: called with (attempt, error, delay) before each wait, for logs and metrics.
    """
    jitter = rng if rng is not None else random.Random()
    attempt = 0
    while True:
        try:
            return await call()
        except TransientError as error:
            retryable = idempotent or error.not_applied
            if not retryable or attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt, error, jitter)
            if on_retry is not None:
                on_retry(attempt, error, wait)
            await sleep(wait)
            attempt += 1
