"""Circuit breakers: trip on transient failures, stay open, probe once, close or back off."""

from __future__ import annotations

import pytest

from reconciler.core.provider import Provider
from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.providers.evolution import PROVIDER as EVOLUTION
from reconciler.runtime.breaker import (
    BreakerOpenError,
    Breakers,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
)


class FakeClock:
    """Epoch seconds that move only when told."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def transient(provider: str = "cloudflare", retry_after: float | None = None) -> TransientError:
    return TransientError(provider, "502 bad gateway", status=502, retry_after=retry_after)


def tripped(
    clock: FakeClock,
    *,
    open_for: float = 30.0,
    max_open_for: float = 600.0,
    probe_timeout: float = 60.0,
) -> CircuitBreaker:
    """A breaker (threshold 3) that has just tripped."""
    settings = BreakerSettings(
        3, open_for=open_for, max_open_for=max_open_for, probe_timeout=probe_timeout
    )
    breaker = CircuitBreaker("cloudflare", settings, clock=clock)
    for _ in range(3):
        breaker.record_failure(transient())
    return breaker


def test_a_new_breaker_is_closed_and_allows_calls() -> None:
    breaker = CircuitBreaker("stripe", clock=FakeClock())
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.retry_at is None


def test_threshold_transient_failures_in_a_row_open_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("cloudflare", BreakerSettings(3, open_for=30), clock=clock)
    breaker.record_failure(transient())
    breaker.record_failure(transient())
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(transient())
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_at == clock.now + 30


def test_permanent_errors_never_trip_the_breaker() -> None:
    breaker = CircuitBreaker("stripe", BreakerSettings(2), clock=FakeClock())
    for _ in range(10):
        breaker.record_failure(PermanentError("stripe", "invalid request", status=400))
        breaker.record_failure(NotFoundError("stripe", "no such invoice", status=404))
        breaker.record_failure(ValueError("not a provider error"))
    assert breaker.state is BreakerState.CLOSED


def test_a_success_between_failures_starts_the_count_again() -> None:
    breaker = CircuitBreaker("d1", BreakerSettings(3), clock=FakeClock())
    for _ in range(5):
        breaker.record_failure(transient("d1"))
        breaker.record_failure(transient("d1"))
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_failures_spread_wider_than_the_window_do_not_trip() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("d1", BreakerSettings(3, window=60), clock=clock)
    for _ in range(6):
        breaker.record_failure(transient("d1"))
        clock.advance(31)
    assert breaker.state is BreakerState.CLOSED


def test_an_open_breaker_half_opens_after_its_period_and_lets_exactly_one_probe() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30)
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.trips == 0
    assert breaker.allow() and breaker.allow()


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30, max_open_for=100)
    periods = []
    for _ in range(4):
        retry_at = breaker.retry_at
        assert retry_at is not None
        periods.append(retry_at - clock.now)
        clock.advance(retry_at - clock.now)
        assert breaker.allow()
        breaker.record_failure(transient())
    assert periods == [30, 60, 100, 100]


def test_a_probe_answered_with_a_permanent_error_proves_the_provider_is_up() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure(PermanentError("cloudflare", "bad request", status=400))
    assert breaker.state is BreakerState.CLOSED


def test_retry_after_longer_than_the_open_period_is_honoured() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("cloudflare", BreakerSettings(1, open_for=30), clock=clock)
    breaker.record_failure(transient(retry_after=300))
    assert breaker.retry_at == clock.now + 300


def test_a_probe_that_never_reports_is_forgotten_after_the_probe_timeout() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30, probe_timeout=20)
    clock.advance(30)
    assert breaker.allow()
    clock.advance(19)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_late_answers_of_calls_sent_before_the_trip_do_not_change_an_open_breaker() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30)
    retry_at = breaker.retry_at
    breaker.record_success()
    breaker.record_failure(transient())
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == retry_at


def test_check_raises_a_not_applied_transient_error_with_the_wait() -> None:
    clock = FakeClock()
    breaker = tripped(clock, open_for=30)
    clock.advance(10)
    with pytest.raises(BreakerOpenError) as caught:
        breaker.check()
    assert isinstance(caught.value, TransientError)
    assert caught.value.not_applied
    assert caught.value.retry_after == pytest.approx(20)
    assert caught.value.provider == "cloudflare"


def test_our_own_refusals_do_not_count_as_provider_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("stripe", BreakerSettings(1), clock=clock)
    breaker.record_failure(BreakerOpenError("stripe", 5))
    assert breaker.state is BreakerState.CLOSED


def test_state_changes_are_reported_to_the_listener() -> None:
    clock = FakeClock()
    seen: list[tuple[str, BreakerState]] = []
    breaker = CircuitBreaker(
        "whatsapp",
        BreakerSettings(1, open_for=5),
        clock=clock,
        on_change=lambda name, state: seen.append((name, state)),
    )
    breaker.record_failure(transient("whatsapp"))
    clock.advance(5)
    assert breaker.allow()
    breaker.record_success()
    assert seen == [
        ("whatsapp", BreakerState.OPEN),
        ("whatsapp", BreakerState.HALF_OPEN),
        ("whatsapp", BreakerState.CLOSED),
    ]


def test_exported_state_values_are_zero_one_two() -> None:
    assert [int(s) for s in (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN)] == [
        0,
        1,
        2,
    ]
    assert BreakerState.HALF_OPEN.label == "half_open"


def test_breakers_isolate_providers_so_healthy_ones_keep_working() -> None:
    clock = FakeClock()
    breakers = Breakers(settings=BreakerSettings(2), clock=clock)
    for _ in range(2):
        breakers.record_failure(transient("cloudflare"))
    assert not breakers["cloudflare"].allow()
    assert breakers["stripe"].allow()
    assert breakers["d1"].allow()
    assert breakers["whatsapp"].allow()
    assert breakers.states() == {
        "cloudflare": BreakerState.OPEN,
        "d1": BreakerState.CLOSED,
        "stripe": BreakerState.CLOSED,
        "whatsapp": BreakerState.CLOSED,
    }


def test_the_evolution_adapter_names_the_whatsapp_breaker_and_no_alias_exists() -> None:
    # One rule: the gateway is Provider.WHATSAPP everywhere, the adapter's errors included.
    breakers = Breakers(settings=BreakerSettings(1), clock=FakeClock())
    assert "evolution" not in breakers
    assert [b.name for b in breakers] == [p.value for p in Provider]
    breakers.record_failure(transient(EVOLUTION))
    assert breakers[Provider.WHATSAPP].state is BreakerState.OPEN


def test_failures_of_unguarded_providers_are_ignored() -> None:
    breakers = Breakers(settings=BreakerSettings(1), clock=FakeClock())
    breakers.record_failure(transient("git"))
    breakers.record_failure(RuntimeError("boom"))
    assert set(breakers.states().values()) == {BreakerState.CLOSED}
    assert "git" not in breakers


def test_every_subscriber_hears_each_change_and_a_read_turns_open_into_half_open() -> None:
    """The gauge tells the truth: reading the states (as each /metrics scrape does) moves an
    open breaker whose period is over to half-open, and every listener hears it."""
    clock = FakeClock()
    gauge: list[tuple[str, BreakerState]] = []
    loop: list[tuple[str, BreakerState]] = []
    breakers = Breakers(
        settings=BreakerSettings(open_for=30),
        clock=clock,
        on_change=lambda n, s: gauge.append((n, s)),
    )
    breakers.subscribe(lambda n, s: loop.append((n, s)))
    for _ in range(5):
        breakers.record_failure(transient())
    assert gauge == loop == [("cloudflare", BreakerState.OPEN)]
    clock.advance(31)
    assert breakers.states()["cloudflare"] is BreakerState.HALF_OPEN
    assert gauge[-1] == loop[-1] == ("cloudflare", BreakerState.HALF_OPEN)
    breakers["cloudflare"].record_success()
    assert gauge[-1] == loop[-1] == ("cloudflare", BreakerState.CLOSED)


def test_settings_no_breaker_could_follow_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerSettings(failure_threshold=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerSettings(window=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerSettings(open_for=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerSettings(probe_timeout=0)
    with pytest.raises(ValueError, match="max_open_for"):
        BreakerSettings(open_for=60, max_open_for=30)
