"""Per-provider circuit breakers: stop calling a provider that keeps failing, probe it later.

Who calls it: the daemon loop (``runtime/loop.py``) asks :meth:`CircuitBreaker.allow` before
sending work to a provider and reports each call's result with :meth:`record_success` or
:meth:`record_failure`; work for a provider whose breaker is open waits until
:attr:`CircuitBreaker.retry_at` while work for the other providers goes on. ``runtime/metrics``
exports :attr:`CircuitBreaker.state` as a gauge. What it calls: nothing but the injected clock;
it is pure bookkeeping with no I/O and no sleeps.

The states (``DESIGN.md`` §5, runbook 6 "API down"):

1. **closed**: calls flow. ``failure_threshold`` transient failures in a row, all within
   ``window`` seconds, trip the breaker. A success, or a failure older than ``window``, starts
   the count again. A :class:`~reconciler.errors.PermanentError` never counts: the provider
   answered, the request was wrong.
2. **open**: :meth:`~CircuitBreaker.allow` says no until ``retry_at``. The open period starts at
   ``open_for`` seconds and doubles on every trip in a row (re-opening from half-open), up to
   ``max_open_for``; a server's ``Retry-After`` longer than that is honoured.
3. **half_open**: once ``retry_at`` passes, exactly one probe is let through. Its success closes
   the breaker (and resets the doubling); its transient failure opens it again for twice as long.
   A probe that never reports back (its task was cancelled) is forgotten after ``probe_timeout``
   so the breaker cannot stay half-open forever.

Nothing here marks work as done: a refused call raises :class:`BreakerOpenError` (a
``TransientError`` with ``retry_after`` and ``not_applied=True``) from :meth:`check`, so the
caller's retry machinery sees an ordinary transient failure that certainly did nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from reconciler.core.provider import Provider
from reconciler.errors import ProviderError, TransientError

__all__ = [
    "PROVIDERS",
    "BreakerOpenError",
    "BreakerSettings",
    "BreakerState",
    "Breakers",
    "CircuitBreaker",
]

PROVIDERS: tuple[str, ...] = tuple(provider.value for provider in Provider)
"""The providers that get a breaker by default: every :class:`Provider`."""

Clock = Callable[[], float]
StateListener = Callable[[str, "BreakerState"], None]


class BreakerState(IntEnum):
    """A breaker's state; the integer is the value exported as the ``breaker_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        """``closed``, ``half_open`` or ``open``."""
        return self.name.lower()


class BreakerOpenError(TransientError):
    """A call was refused locally because the provider's breaker is open; nothing was sent."""

    def __init__(self, provider: str, retry_after: float) -> None:
        """Say which breaker refused and when it will let a probe through."""
        super().__init__(
            provider,
            f"circuit breaker open; next probe in {retry_after:.1f} s",
            retry_after=retry_after,
            not_applied=True,
        )


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker trips and how long it stays open (module docstring, the states)."""

    failure_threshold: int = 5  # transient failures in a row that trip it
    window: float = 60.0  # seconds within which those failures must fall
    open_for: float = 30.0  # seconds the first trip stays open; doubled on every trip in a row
    max_open_for: float = 600.0  # cap on the doubled open period
    probe_timeout: float = 60.0  # seconds after which an unanswered half-open probe is forgotten

    def __post_init__(self) -> None:
        """Refuse settings no breaker could follow.

        Raises:
            ValueError: a threshold under 1, a period not positive, or a cap under ``open_for``.
        """
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.window <= 0 or self.open_for <= 0 or self.probe_timeout <= 0:
            raise ValueError("window, open_for and probe_timeout must be positive")
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be at least open_for")


class CircuitBreaker:
    """One provider's breaker (see the module docstring for the state machine)."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock = time.time,
        on_change: StateListener | None = None,
    ) -> None:
        """Create a closed breaker.

        Args:
            name: the provider it guards (used in errors, logs and metric labels).
            settings: its thresholds and periods (the defaults when omitted).
            clock: epoch seconds (injected; tests pass a fake).
            on_change: called with ``(name, new_state)`` on every state change.
        """
        self.name = name
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures: list[float] = []  # times of the current run of transient failures
        self._trips = 0  # consecutive trips without a successful probe
        self._retry_at: float | None = None
        self._probe_started: float | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose time is up reads as half-open."""
        self._refresh(self._clock())
        return self._state

    @property
    def retry_at(self) -> float | None:
        """When an open breaker lets a probe through (epoch seconds); ``None`` unless open."""
        self._refresh(self._clock())
        return self._retry_at if self._state is BreakerState.OPEN else None

    @property
    def trips(self) -> int:
        """How many times in a row it has tripped without a successful probe since."""
        return self._trips

    # ------------------------------------------------------------------ deciding

    def allow(self) -> bool:
        """Whether a call may be sent now.

        Closed: always. Open: never. Half-open: true once, for the probe, and false for
        everyone else until the probe reports (or ``probe_timeout`` passes).

        Returns:
            True when the caller may send the call and must then report its result.
        """
        now = self._clock()
        self._refresh(now)
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return False
        if self._probe_started is None or now - self._probe_started >= self.settings.probe_timeout:
            self._probe_started = now
            return True
        return False

    def check(self) -> None:
        """Like :meth:`allow`, but raise instead of returning false.

        Raises:
            BreakerOpenError: the breaker refuses calls; ``retry_after`` says for how long
                (0 while a half-open probe is in flight and the answer is unknown).
        """
        if self.allow():
            return
        now = self._clock()
        if self._state is BreakerState.OPEN and self._retry_at is not None:
            wait = max(0.0, self._retry_at - now)
        else:
            assert self._probe_started is not None
            wait = max(0.0, self._probe_started + self.settings.probe_timeout - now)
        raise BreakerOpenError(self.name, wait)

    # ------------------------------------------------------------------ reporting

    def record_success(self) -> None:
        """A call reached the provider and got an answer: close the breaker, reset counts."""
        now = self._clock()
        self._refresh(now)
        if self._state is BreakerState.OPEN:
            # A call sent before the trip answered late; the probe decides, not stragglers.
            return
        self._failures.clear()
        self._trips = 0
        self._probe_started = None
        self._retry_at = None
        self._set(BreakerState.CLOSED)

    def record_failure(self, error: BaseException) -> None:
        """A call failed; only a :class:`~reconciler.errors.TransientError` counts.

        A :class:`BreakerOpenError` (our own refusal) is ignored. Any other error means the
        provider did answer (a 400, a 404, an auth failure), which is evidence it is up: it
        counts as a success for a half-open probe and changes nothing otherwise.

        Args:
            error: the exception the call raised.
        """
        if isinstance(error, BreakerOpenError):
            return
        now = self._clock()
        self._refresh(now)
        if not isinstance(error, TransientError):
            if self._state is BreakerState.HALF_OPEN:
                self.record_success()
            return
        self.last_error = str(error)
        if self._state is BreakerState.OPEN:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._trip(now, error)
            return
        self._failures = [at for at in self._failures if now - at < self.settings.window]
        self._failures.append(now)
        if len(self._failures) >= self.settings.failure_threshold:
            self._trip(now, error)

    # ------------------------------------------------------------------ internals

    def _trip(self, now: float, error: TransientError) -> None:
        self._trips += 1
        period = min(self.settings.open_for * 2 ** (self._trips - 1), self.settings.max_open_for)
        if error.retry_after is not None:
            period = max(period, error.retry_after)
        self._retry_at = now + period
        self._failures.clear()
        self._probe_started = None
        self._set(BreakerState.OPEN)

    def _refresh(self, now: float) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._retry_at is not None
            and now >= self._retry_at
        ):
            self._probe_started = None
            self._set(BreakerState.HALF_OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_change is not None:
            self._on_change(self.name, state)

    def __repr__(self) -> str:
        """Name and state, for logs."""
        return f"CircuitBreaker({self.name!r}, state={self._state.label})"


class Breakers:
    """One :class:`CircuitBreaker` per provider, shared by every worker of the daemon."""

    def __init__(
        self,
        providers: tuple[str, ...] = PROVIDERS,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock = time.time,
        on_change: StateListener | None = None,
    ) -> None:
        """Create a closed breaker for each provider, all with the same settings.

        Args:
            providers: provider names (``ProviderError.provider`` values).
            settings: every breaker's thresholds and periods (the defaults when omitted).
            clock: epoch seconds, shared by every breaker.
            on_change: called with ``(provider, new_state)`` on every state change.
        """
        self._listeners: list[StateListener] = [] if on_change is None else [on_change]
        self._breakers = {
            name: CircuitBreaker(name, settings, clock=clock, on_change=self._changed)
            for name in providers
        }

    def subscribe(self, listener: StateListener) -> None:
        """Also call ``listener`` with ``(provider, new_state)`` on every state change (the
        loop retries failed work when a breaker lets calls through again)."""
        self._listeners.append(listener)

    def _changed(self, provider: str, state: BreakerState) -> None:
        for listener in list(self._listeners):
            listener(provider, state)

    def __getitem__(self, provider: str) -> CircuitBreaker:
        """The breaker for ``provider``.

        Raises:
            KeyError: no breaker guards that provider.
        """
        return self._breakers[provider]

    def __contains__(self, provider: object) -> bool:
        """Whether a breaker guards ``provider``."""
        return isinstance(provider, str) and provider in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        """The breakers, in provider order."""
        return iter(self._breakers.values())

    def record_failure(self, error: BaseException) -> None:
        """Route a failure to the breaker of the provider that raised it, if it has one.

        Args:
            error: any exception; only a ``ProviderError`` of a guarded provider is recorded.
        """
        if isinstance(error, ProviderError) and error.provider in self:
            self[error.provider].record_failure(error)

    def states(self) -> dict[str, BreakerState]:
        """Each provider's current state (what the ``breaker_state`` gauge exports).

        Reading refreshes: an open breaker whose period is over turns half-open here, and its
        listeners (the gauge) hear of it, so a scrape never shows a stale "open".
        """
        return {name: breaker.state for name, breaker in self._breakers.items()}
