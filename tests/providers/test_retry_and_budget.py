import asyncio
import random

import pytest

from reconciler.core.lane import Lane
from reconciler.errors import PermanentError, TransientError
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy, with_retries


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def failing(errors: list[Exception]):
    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return "ok"

    return call, calls


async def test_a_429_is_waited_out_for_at_least_its_retry_after() -> None:
    t = FakeTime()
    call, calls = failing(
        [TransientError("cf", "429", status=429, retry_after=7, not_applied=True)]
    )
    result = await with_retries(call, policy=RetryPolicy(), idempotent=False, sleep=t.sleep)
    assert result == "ok"
    assert calls["n"] == 2
    assert t.sleeps[0] >= 7


async def test_a_timeout_on_a_create_is_not_retried_blindly() -> None:
    t = FakeTime()
    call, calls = failing([TransientError("cf", "timeout")])
    with pytest.raises(TransientError):
        await with_retries(call, policy=RetryPolicy(), idempotent=False, sleep=t.sleep)
    assert calls["n"] == 1
    assert t.sleeps == []


async def test_idempotent_calls_back_off_with_growing_capped_jittered_delays() -> None:
    t = FakeTime()
    errors: list[Exception] = [TransientError("cf", "503", status=503) for _ in range(5)]
    call, calls = failing(errors)
    policy = RetryPolicy(attempts=6, base=1.0, cap=4.0)
    assert (
        await with_retries(
            call, policy=policy, idempotent=True, sleep=t.sleep, rng=random.Random(1)
        )
        == "ok"
    )
    assert calls["n"] == 6
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    for slept, ceiling in zip(t.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


async def test_permanent_errors_are_never_retried() -> None:
    t = FakeTime()
    call, calls = failing([PermanentError("cf", "bad request", status=400)])
    with pytest.raises(PermanentError):
        await with_retries(call, policy=RetryPolicy(), idempotent=True, sleep=t.sleep)
    assert calls["n"] == 1


async def test_retries_stop_after_the_attempt_budget() -> None:
    t = FakeTime()
    call, calls = failing([TransientError("cf", "503", status=503) for _ in range(10)])
    with pytest.raises(TransientError):
        await with_retries(call, policy=RetryPolicy(attempts=3), idempotent=True, sleep=t.sleep)
    assert calls["n"] == 3


async def test_bucket_never_lets_more_than_capacity_through_in_any_window() -> None:
    t = FakeTime()
    bucket = TokenBucket(capacity=10, period=10.0, clock=t.clock, sleep=t.sleep)
    stamps: list[float] = []
    for _ in range(40):
        await bucket.acquire()
        stamps.append(t.now)
    for i, start in enumerate(stamps):
        in_window = [s for s in stamps[i:] if s < start + 10.0]
        assert len(in_window) <= 10
    assert bucket.acquired == 40


async def test_bucket_serves_urgent_lane_before_sweeps() -> None:
    t = FakeTime()
    bucket = TokenBucket(capacity=1, period=1.0, burst=1, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()  # empty the bucket
    order: list[str] = []

    async def take(name: str, lane: Lane) -> None:
        await bucket.acquire(lane)
        order.append(name)

    await asyncio.gather(
        take("sweep-1", Lane.SWEEP), take("sweep-2", Lane.SWEEP), take("unlock", Lane.URGENT)
    )
    assert order[0] == "unlock"


async def test_bucket_pause_blocks_everyone_until_the_deadline() -> None:
    t = FakeTime()
    bucket = TokenBucket(capacity=100, period=1.0, clock=t.clock, sleep=t.sleep)
    bucket.pause_for(30.0)
    await bucket.acquire()
    assert t.now >= 30.0


def busiest_window(stamps: list[float], period: float) -> int:
    """The most stamps any window ``[t, t + period)`` holds (stamps sorted)."""
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - period:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_the_default_bucket_runs_cloudflare_budget_at_its_edge_with_a_margin() -> None:
    bucket = TokenBucket(capacity=1200, period=300)
    assert bucket.ceiling == 1182  # 18 requests (1.5 %) left to other users of the token
    assert bucket.burst == 24
    assert bucket.rate == pytest.approx((1182 - 24) / 300)
    assert bucket.sustained_share == pytest.approx(0.965)


async def test_a_long_run_uses_95_percent_and_no_window_exceeds_the_ceiling() -> None:
    t = FakeTime()
    bucket = TokenBucket(capacity=1200, period=300, clock=t.clock, sleep=t.sleep)
    stamps: list[float] = []
    for _ in range(6000):  # about 26 minutes of fake time at the edge
        await bucket.acquire()
        stamps.append(t.now)
    assert bucket.ceiling - 1 <= busiest_window(stamps, 300.0) <= bucket.ceiling
    steady = [s for s in stamps if s >= stamps[-1] - 300.0]
    assert len(steady) >= 0.95 * 1200


def test_the_margin_is_whole_requests_and_a_small_budget_keeps_them_all() -> None:
    assert TokenBucket(capacity=30, period=60).ceiling == 30  # int(30 * 0.015) == 0
    assert TokenBucket(capacity=1200, period=300, margin=0.0).ceiling == 1200
    assert TokenBucket(capacity=1200, period=300, margin=0.1).ceiling == 1080
    with pytest.raises(ValueError, match="margin"):
        TokenBucket(capacity=10, period=1, margin=1.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(capacity=1200, period=300, burst=1190)


async def test_the_pump_makes_progress_on_an_epoch_seconds_clock() -> None:
    # Float steps near 1.8e9 are ~0.24 us: a wait shorter than that would not move the clock,
    # and the pump used to spin there for ever.
    t = FakeTime()
    t.now = 1_796_431_652.0
    bucket = TokenBucket(capacity=120, period=30.0, clock=t.clock, sleep=t.sleep)
    for _ in range(300):
        await asyncio.wait_for(bucket.acquire(), timeout=5.0)
    assert bucket.acquired == 300
