"""The daemon's work queue: resource keys waiting to be reconciled, by lane and readiness time.

Called by the daemon loop (``runtime/loop.py``): Git diffs, webhooks and sweeps ``add`` keys
("Site/acme-home", "Tenant/acme", "Hostname/www.acme.com", "Sweep/hostnames"); workers ``get``
a key, reconcile it, report ``success`` or ``failure`` and then call ``done``. Deadlines found
while reconciling (a validation timeout, the next dunning day, a lock threshold) come back as
``wake_at`` timers. It calls nothing but the injected clock and sleep; lanes are the shared
`~reconciler.core.lane.Lane` priorities (urgent, change, sweep).

Rules (controller-runtime's workqueue semantics, plus per-resource failure memory):

1. De-duplication: a key is queued at most once. Adding a queued key keeps one entry at the
   higher-priority lane and the earlier readiness time. Timers are adds with a time: a key with
   a timer at t=100 that is added for now is reconciled now, and that pass re-derives its
   deadlines (the loop calls ``wake_at`` again).
2. Exclusivity: a key handed out by ``get`` is never handed out again before ``done(key)``.
   An add (or timer) for a key being processed is remembered and queued on ``done``.
3. Order: ``get`` returns the ready key of the highest-priority lane; within a lane, the one
   ready earliest (then first added). Keys not yet ready wait in one heap: no polling, many
   timers cost a heap entry each.
4. Failures are :class:`Failure` values, never exceptions. A transient failure re-queues the
   key after an exponential, fully jittered delay (base 1 s, cap 5 min) that is never shorter
   than its ``retry_after``. A terminal failure re-queues nothing: the key waits for the next
   change or sweep. After ``max_failures`` consecutive failures of either kind the key is
   *stuck*: it keeps its last failure, sweep-lane adds and timers are dropped, and only an
   urgent or change add (or ``success``) releases it, even one that arrived while the last
   attempt was failing. ``success`` forgets every failure.
5. Time is the injected ``clock`` (epoch seconds by default, so timers take absolute
   deadlines from specs and invoices) and waiting is the injected ``sleep``: tests run in
   virtual time.
6. An optional :class:`QueueObserver` hears of every add, hand-out, release and retry: the
   ``workqueue_*`` metrics in controller-runtime's names (``runtime/metrics.py``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.lane import Lane
from reconciler.runtime.waiting import event_or_timer

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "MAX_FAILURES",
    "Failure",
    "LaneLike",
    "QueueObserver",
    "QueueShutDown",
    "WorkQueue",
    "as_lane",
]

BACKOFF_BASE = 1.0
"""Seconds of the first retry window (the jittered delay lies in [0, base))."""
BACKOFF_CAP = 300.0
"""Largest retry window in seconds (5 minutes), before a server's ``retry_after``."""
MAX_FAILURES = 5
"""Consecutive failures after which a key is stuck until a change arrives."""

LaneLike = Lane | str
"""A lane, or its name ("urgent", "change", "sweep"; core's ``plan.Lane`` values match)."""


def as_lane(value: LaneLike) -> Lane:
    """The :class:`Lane` named by ``value``.

    Raises:
        ValueError: an unknown lane name.
    """
    if isinstance(value, Lane):
        return value
    try:
        return Lane[str(value).upper()]
    except KeyError as exc:
        raise ValueError(f"unknown lane {value!r}; expected urgent, change or sweep") from exc


class QueueObserver(Protocol):
    """What the queue reports for metrics (controller-runtime's workqueue metrics)."""

    def added(self, depth: int) -> None:
        """A key was queued (not merged into one already queued); ``depth`` is the new size."""

    def taken(self, depth: int, waited: float) -> None:
        """A key was handed out after ``waited`` seconds ready in the queue."""

    def finished(self, seconds: float) -> None:
        """A key handed out ``seconds`` ago was released with ``done``."""

    def retried(self) -> None:
        """A failed key was re-queued with backoff."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a reconcile of a key failed, as the queue needs it (rule 4): a value, not an error.

    ``terminal``: retrying cannot help until something changes (controller-runtime's
    ``TerminalError``); ``retry_after``: the server's hint, never cut short.
    """

    reason: str
    terminal: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        """The reason, for logs and the ``Stuck`` condition."""
        return self.reason


class QueueShutDown(Exception):  # named like asyncio.QueueShutDown (Python 3.13)
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


@dataclass(frozen=True, slots=True)
class _Backoff:
    """Full-jitter exponential backoff, and the failures in a row that make a key stuck."""

    base: float
    cap: float
    max_failures: int
    rng: Callable[[], float]

    def jittered(self, attempt: int) -> float:
        """Uniform in ``[0, min(cap, base * 2 ** (attempt - 1)))``."""
        return min(self.cap, self.base * 2.0 ** max(0, attempt - 1)) * self.rng()


@dataclass(slots=True)
class _Entry:
    lane: Lane
    ready_at: float
    version: int


@dataclass(slots=True)
class _Failures:
    count: int
    error: Failure


class WorkQueue:
    """De-duplicating, prioritised, delayed queue of resource keys (module rules 1-5)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        base: float = BACKOFF_BASE,
        cap: float = BACKOFF_CAP,
        max_failures: int = MAX_FAILURES,
        observer: QueueObserver | None = None,
    ) -> None:
        """Create an empty queue.

        Args:
            clock: current time in seconds; timers and ``after`` delays are on this clock.
            sleep: waits that many seconds of ``clock`` time (``asyncio.sleep`` by default).
            rng: uniform random numbers in [0, 1) for the backoff jitter.
            base: first backoff window in seconds.
            cap: largest backoff window in seconds.
            max_failures: consecutive failures that make a key stuck.
            observer: told of adds, hand-outs, releases and retries (the metrics).
        """
        if base <= 0 or cap < base or max_failures < 1:
            raise ValueError("need 0 < base <= cap and max_failures >= 1")
        self._clock = clock
        self._sleep = sleep
        self._backoff = _Backoff(base, cap, max_failures, rng)
        self._entries: dict[str, _Entry] = {}
        # Lazy-deletion heaps: an item whose version is not its entry's current one is stale.
        self._waiting: list[tuple[float, int, str, int]] = []  # (ready_at, seq, key, version)
        self._ready: dict[Lane, list[tuple[float, int, str, int]]] = {lane: [] for lane in Lane}
        self._sequence = itertools.count()
        self._versions = itertools.count(1)
        self._processing: dict[str, Lane] = {}
        # Adds that arrived while processing: (lane, ready_at, whether it releases a stuck key).
        self._dirty: dict[str, tuple[Lane, float, bool]] = {}
        self._retry: dict[str, tuple[Lane, float]] = {}  # backoff re-queues pending done()
        self._failures: dict[str, _Failures] = {}
        self._stuck: dict[str, Failure] = {}
        self._depth: dict[Lane, int] = dict.fromkeys(Lane, 0)
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped = 0  # sweep adds ignored because their key was stuck
        self._observer = observer
        self._started: dict[str, float] = {}  # key -> clock time it was handed out

    # ---------------------------------------------------------------- adding

    def add(self, key: str, lane: LaneLike = Lane.CHANGE, *, after: float = 0.0) -> None:
        """Queue ``key`` to be ready ``after`` seconds from now (rules 1, 2 and 4)."""
        chosen = as_lane(lane)
        self._add(key, chosen, self._clock() + max(0.0, after), releases=chosen is not Lane.SWEEP)

    def wake_at(self, key: str, when: float, lane: LaneLike = Lane.CHANGE) -> None:
        """Queue ``key`` to be ready at clock time ``when`` (a deadline), without polling.

        A timer never releases a stuck key (rule 4): only a change does.
        """
        self._add(key, as_lane(lane), when, releases=False)

    def _add(self, key: str, lane: Lane, ready_at: float, *, releases: bool) -> None:
        if self._closed:
            return
        if key in self._processing:
            previous = self._dirty.get(key)
            merged = _merge(None if previous is None else previous[:2], lane, ready_at)
            self._dirty[key] = (*merged, releases or (previous is not None and previous[2]))
            return
        if key in self._stuck:
            if not releases:
                self.dropped += 1
                return
            self._release(key)
        self._enqueue(key, lane, ready_at)

    def _enqueue(self, key: str, lane: Lane, ready_at: float) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            if lane.rank >= entry.lane.rank and ready_at >= entry.ready_at:
                return
            self._depth[entry.lane] -= 1
            entry.lane = min(entry.lane, lane, key=_rank)
            entry.ready_at = min(entry.ready_at, ready_at)
            entry.version = next(self._versions)
        else:
            entry = _Entry(lane, ready_at, next(self._versions))
            self._entries[key] = entry
            if self._observer is not None:
                self._observer.added(len(self._entries))
        self._depth[entry.lane] += 1
        heapq.heappush(self._waiting, (entry.ready_at, next(self._sequence), key, entry.version))
        self._wakeup.set()

    # ---------------------------------------------------------------- taking

    async def get(self) -> str:
        """Wait for and return the next ready key, marking it as being processed.

        Raises:
            QueueShutDown: the queue was shut down (at once, or while waiting).
        """
        while True:
            if self._closed:
                raise QueueShutDown("the work queue is shut down")
            key = self._pop_ready()
            if key is not None:
                return key
            # NB: clearing right after a failed pop, with no await in between, means an add
            # can never be missed: anything added earlier would have been popped just now.
            self._wakeup.clear()
            await self._wait(self._next_ready_at())

    def get_nowait(self) -> str | None:
        """The next ready key, or None when nothing is ready now."""
        return None if self._closed else self._pop_ready()

    def _pop_ready(self) -> str | None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            item = heapq.heappop(self._waiting)
            entry = self._entries.get(item[2])
            if entry is not None and entry.version == item[3]:
                heapq.heappush(self._ready[entry.lane], item)
        for lane in Lane:
            heap = self._ready[lane]
            while heap:
                _, _, key, version = heapq.heappop(heap)
                entry = self._entries.get(key)
                if entry is None or entry.version != version:
                    continue
                del self._entries[key]
                self._depth[entry.lane] -= 1
                self._processing[key] = entry.lane
                self._started[key] = now
                if self._observer is not None:
                    self._observer.taken(len(self._entries), max(0.0, now - entry.ready_at))
                return key
        return None

    def _next_ready_at(self) -> float | None:
        while self._waiting:
            ready_at, _, key, version = self._waiting[0]
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                return ready_at
            heapq.heappop(self._waiting)
        return None

    async def _wait(self, deadline: float | None) -> None:
        """Wait until something is added, or until ``deadline`` on the clock."""
        timer = None if deadline is None else self._sleep(max(0.0, deadline - self._clock()))
        await event_or_timer(self._wakeup, timer)

    def done(self, key: str) -> None:
        """Release ``key`` after processing; queue what arrived meanwhile and any retry."""
        if self._processing.pop(key, None) is None:
            return
        started = self._started.pop(key, None)
        if self._observer is not None and started is not None:
            self._observer.finished(max(0.0, self._clock() - started))
        dirty = self._dirty.pop(key, None)
        retry = self._retry.pop(key, None)
        if dirty is not None:
            lane, ready_at, releases = dirty
            if key in self._stuck and releases:
                self._release(key)
            if key in self._stuck:
                self.dropped += 1
            else:
                self._enqueue(key, lane, ready_at)
        if retry is not None and key not in self._stuck:
            self._enqueue(key, *retry)
        self._wakeup.set()

    # ---------------------------------------------------------------- outcomes

    def success(self, key: str) -> None:
        """Forget every failure of ``key`` (and release it if it was stuck)."""
        self._failures.pop(key, None)
        self._stuck.pop(key, None)

    def failure(self, key: str, error: Failure, *, now: float | None = None) -> float | None:
        """Record a failed reconcile of ``key`` and decide when it is tried again (rule 4).

        Args:
            key: the resource that failed.
            error: what failed; its ``retry_after`` is honoured, a terminal failure
                re-queues nothing.
            now: the time of the failure (default: the clock).

        Returns:
            Seconds until the retry, or None when nothing was re-queued (a permanent error or a
            key that is now stuck).
        """
        when = self._clock() if now is None else now
        record = self._failures.get(key)
        count = 1 if record is None else record.count + 1
        self._failures[key] = _Failures(count, error)
        if count >= self._backoff.max_failures:
            self._stuck[key] = error
            self._retry.pop(key, None)
            self._remove(key)
            return None
        if error.terminal:
            return None
        delay = self.backoff(count, error)
        if self._observer is not None:
            self._observer.retried()
        lane = self._processing.get(key)
        if lane is not None:
            self._retry[key] = _merge(self._retry.get(key), lane, when + delay)
        else:
            entry = self._entries.get(key)
            self._enqueue(key, entry.lane if entry else Lane.CHANGE, when + delay)
        return delay

    def backoff(self, attempt: int, error: Failure | None = None) -> float:
        """The jittered delay before retry number ``attempt`` (1-based) after ``error``.

        Full jitter: uniform in ``[0, min(cap, base * 2 ** (attempt - 1)))``, then raised to the
        error's ``retry_after`` when that is longer (a server hint is never cut short).
        """
        delay = self._backoff.jittered(attempt)
        if error is not None and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def failures(self, key: str) -> int:
        """Consecutive failures of ``key`` since its last success."""
        record = self._failures.get(key)
        return 0 if record is None else record.count

    def last_error(self, key: str) -> Failure | None:
        """The most recent failure of ``key`` since its last success, if any."""
        record = self._failures.get(key)
        return None if record is None else record.error

    def retryable(self) -> list[str]:
        """Keys whose last failure was not permanent, stuck ones included, sorted (the loop
        retries them when a circuit breaker lets calls through again)."""
        return sorted(key for key, record in self._failures.items() if not record.error.terminal)

    def stuck(self, key: str) -> Failure | None:
        """The last error of ``key`` when it is stuck, else None."""
        return self._stuck.get(key)

    def stuck_keys(self) -> list[str]:
        """Every stuck key, sorted."""
        return sorted(self._stuck)

    def _release(self, key: str) -> None:
        self._stuck.pop(key, None)
        self._failures.pop(key, None)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._depth[entry.lane] -= 1

    # ---------------------------------------------------------------- introspection

    def running(self) -> list[float]:
        """Seconds each key handed out and not yet ``done`` has been processed so far."""
        now = self._clock()
        return [max(0.0, now - started) for started in self._started.values()]

    def depth(self, lane: LaneLike) -> int:
        """Keys queued in ``lane``, ready or waiting for their time (not those in process)."""
        return self._depth[as_lane(lane)]

    def __len__(self) -> int:
        """Keys queued in every lane."""
        return len(self._entries)

    def is_queued(self, key: str) -> bool:
        """True when ``key`` waits in the queue (not while it is being processed)."""
        return key in self._entries

    def is_processing(self, key: str) -> bool:
        """True between ``get`` returning ``key`` and ``done(key)``."""
        return key in self._processing

    def ready_at(self, key: str) -> float | None:
        """When a queued ``key`` becomes ready, or None when it is not queued."""
        entry = self._entries.get(key)
        return None if entry is None else entry.ready_at

    def lane_of(self, key: str) -> Lane | None:
        """The lane of a queued ``key``, or None when it is not queued."""
        entry = self._entries.get(key)
        return None if entry is None else entry.lane

    @property
    def processing(self) -> frozenset[str]:
        """Keys handed out and not yet done."""
        return frozenset(self._processing)

    @property
    def is_shut_down(self) -> bool:
        """True after :meth:`shutdown`."""
        return self._closed

    def shutdown(self) -> None:
        """Stop handing out keys: waiting and future ``get`` calls raise ``QueueShutDown``."""
        self._closed = True
        self._wakeup.set()


def _merge(current: tuple[Lane, float] | None, lane: Lane, ready_at: float) -> tuple[Lane, float]:
    if current is None:
        return lane, ready_at
    return min(current[0], lane, key=_rank), min(current[1], ready_at)


def _rank(lane: Lane) -> int:
    """The key that orders lanes by priority (:attr:`Lane.rank`)."""
    return lane.rank
