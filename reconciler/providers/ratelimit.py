"""Client-side request budgets: one token bucket per provider credential, shared by every caller.

Cloudflare allows 1,200 requests per 5 minutes per token and blocks *every* call for five
minutes once that is exceeded (contracts/cloudflare/CONTRACT.md §2.1), so the adapter must never
get there by itself. ``wiring`` builds one :class:`TokenBucket` per credential and hands the
same instance to every client that uses that credential; the adapters call :meth:`acquire`
before each request and :meth:`pause_until` when the server answers 429 anyway (another tool on
the same token, a smaller real limit).

Callers that matter more go first: :meth:`acquire` takes a ``lane`` (lower rank = higher
priority, see :class:`~reconciler.core.lane.Lane`) and waiters are served in lane order, then
arrival order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

from reconciler.core.lane import Lane

DEFAULT_MARGIN = 0.015  # share of the budget left to other users of the same credential
DEFAULT_BURST_SHARE = 0.02  # share of the budget that may go out at once
MIN_WAIT = 0.001  # seconds; the shortest wait the pump sleeps


def budget_ceiling(capacity: int, margin: float) -> int:
    """The most this process may send in any window: ``capacity`` less the margin, rounded down.

    The margin is whole requests (``int(capacity * margin)``), so a small budget keeps all of its
    requests rather than losing one to rounding.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError("the margin is a share of the budget, from 0 up to (not including) 1")
    return max(1, capacity - int(capacity * margin))


class TokenBucket:
    """A budget of at most ``capacity`` requests in *any* window of ``period`` seconds.

    The bucket keeps a ``margin`` of the capacity (default 1.5 %) for other users of the same
    credential, so its *ceiling* is ``capacity - int(capacity * margin)``. It holds ``burst``
    tokens (default 2 % of the capacity) and refills at ``(ceiling - burst) / period`` tokens per
    second, so the most any sliding window can see is ``burst + (ceiling - burst) = ceiling``:
    safe whether the server counts in fixed or in sliding windows. A long run uses
    ``(ceiling - burst) / capacity`` of the budget (:attr:`sustained_share`): 96.5 % of
    Cloudflare's 1,200 per 300 s with the defaults (1,182 at most in a window, 3.86 per second).

    The bucket is asyncio-only and must be used from one event loop.
    """

    def __init__(
        self,
        *,
        capacity: int,
        period: float,
        burst: int | None = None,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Create a bucket for ``capacity`` requests per ``period`` seconds, less ``margin``."""
        if capacity < 1 or period <= 0:
            raise ValueError("a token bucket needs a positive capacity and period")
        self.capacity = capacity
        self.period = period
        self.ceiling = budget_ceiling(capacity, margin)
        chosen_burst = burst if burst is not None else max(1, int(capacity * DEFAULT_BURST_SHARE))
        if not 1 <= chosen_burst <= self.ceiling:
            raise ValueError("burst must be between 1 and the capacity less the margin")
        self._burst = float(chosen_burst)
        # With burst == ceiling nothing would be left for refills; keep a trickle so the
        # bucket still flows (that case over-admits by design and is only for tests).
        self.rate = max(self.ceiling - chosen_burst, 1) / period
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self.acquired = 0  # total tokens handed out, for benchmarks and metrics
        self.waited = 0.0  # total seconds callers spent waiting

    @property
    def burst(self) -> int:
        """Tokens the bucket holds when full: what may go out at once."""
        return int(self._burst)

    @property
    def sustained_share(self) -> float:
        """Share of ``capacity`` a long run of requests uses (the refill rate over the budget)."""
        return self.rate * self.period / self.capacity

    @property
    def paused_until(self) -> float:
        """Clock time before which no request is let through (after a 429)."""
        return self._paused_until

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self.rate)

    def _delay(self) -> float:
        """Seconds until one token can be handed out (0 when one is available now)."""
        self._refill()
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        # Float refills can land a hair below 1.0 after waiting exactly the computed delay;
        # without the tolerance that would spin on ever smaller sleeps.
        if self._tokens >= 1.0 - 1e-9:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self, lane: Lane = Lane.CHANGE) -> None:
        """Wait until a request may be sent, serving higher-priority lanes first."""
        if not self._waiters and self._delay() == 0.0:
            self._tokens -= 1.0
            self.acquired += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (lane.rank, next(self._sequence), future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._serve())
        started = self._clock()
        try:
            await future
        finally:
            self.waited += max(0.0, self._clock() - started)

    async def _serve(self) -> None:
        while self._waiters:
            delay = self._delay()
            if delay > 0:
                # At least a millisecond: on an epoch-seconds clock (float steps of ~0.2 us) a
                # smaller wait could leave the clock where it was, and the pump would spin.
                await self._sleep(max(delay, MIN_WAIT))
                continue
            _, _, future = heapq.heappop(self._waiters)
            if future.done():  # the waiter was cancelled
                continue
            self._tokens -= 1.0
            self.acquired += 1
            future.set_result(None)

    def pause_until(self, when: float) -> None:
        """Let nothing through before clock time ``when`` (the server said 429)."""
        self._paused_until = max(self._paused_until, when)
        self._tokens = 0.0

    def pause_for(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` from now."""
        self.pause_until(self._clock() + max(0.0, seconds))
