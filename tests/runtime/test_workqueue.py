"""WorkQueue: de-duplication, lanes, exclusivity, backoff, stuck keys, timers (virtual time)."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.ratelimit import Lane
from reconciler.runtime.workqueue import QueueShutDown, WorkQueue, as_lane


class VirtualTime:
    """A clock that only moves when the queue sleeps: every sleep jumps to its deadline."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # let other tasks run first, as a real sleep would
        self.now = max(self.now, deadline)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_queue(vt: VirtualTime, *, rng: float = 0.5, max_failures: int = 5) -> WorkQueue:
    return WorkQueue(clock=vt.clock, sleep=vt.sleep, rng=lambda: rng, max_failures=max_failures)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_key_added_twice_is_queued_once() -> None:
    queue = make_queue(VirtualTime())
    queue.add("Site/acme-home", Lane.SWEEP)
    queue.add("Site/acme-home", Lane.SWEEP)
    assert len(queue) == 1
    assert await queue.get() == "Site/acme-home"
    assert queue.get_nowait() is None


async def test_a_duplicate_add_keeps_the_higher_lane_and_the_earlier_time() -> None:
    vt = VirtualTime()
    queue = make_queue(vt)
    queue.add("Site/a", Lane.SWEEP, after=5)
    queue.add("Site/a", Lane.URGENT, after=60)
    assert queue.lane_of("Site/a") is Lane.URGENT
    assert queue.ready_at("Site/a") == vt.now + 5
    assert queue.depth(Lane.URGENT) == 1
    assert queue.depth(Lane.SWEEP) == 0
    queue.add("Site/a", "change", after=1)
    assert queue.lane_of("Site/a") is Lane.URGENT
    assert queue.ready_at("Site/a") == vt.now + 1


async def test_lanes_are_served_urgent_then_change_then_sweep() -> None:
    queue = make_queue(VirtualTime())
    queue.add("Sweep/hostnames", Lane.SWEEP)
    queue.add("Site/b", Lane.CHANGE)
    queue.add("Tenant/acme", Lane.URGENT)
    queue.add("Site/a", Lane.CHANGE)
    order = [await queue.get() for _ in range(4)]
    assert order == ["Tenant/acme", "Site/b", "Site/a", "Sweep/hostnames"]


async def test_a_ready_sweep_goes_before_a_change_that_is_not_ready_yet() -> None:
    vt = VirtualTime()
    queue = make_queue(vt)
    queue.add("Site/later", Lane.URGENT, after=30)
    queue.add("Sweep/hostnames", Lane.SWEEP)
    assert await queue.get() == "Sweep/hostnames"
    assert await queue.get() == "Site/later"
    assert vt.now == pytest.approx(1_030.0)


async def test_within_a_lane_the_earliest_ready_key_goes_first() -> None:
    vt = VirtualTime()
    queue = make_queue(vt)
    queue.add("Site/b", Lane.CHANGE, after=2)
    queue.add("Site/a", Lane.CHANGE, after=1)
    vt.advance(5)
    assert [await queue.get(), await queue.get()] == ["Site/a", "Site/b"]


async def test_lane_names_are_accepted_and_unknown_ones_refused() -> None:
    assert as_lane("urgent") is Lane.URGENT
    assert as_lane(Lane.SWEEP) is Lane.SWEEP
    with pytest.raises(ValueError, match="unknown lane"):
        as_lane("whenever")


async def test_a_key_being_processed_is_never_handed_out_twice() -> None:
    queue = make_queue(VirtualTime())
    queue.add("Site/a")
    assert await queue.get() == "Site/a"
    queue.add("Site/a", Lane.URGENT)
    second = asyncio.create_task(queue.get())
    await settle()
    assert not second.done()
    assert queue.get_nowait() is None
    assert queue.is_processing("Site/a")
    queue.done("Site/a")
    assert await asyncio.wait_for(second, timeout=30) == "Site/a"
    assert queue.is_processing("Site/a")


async def test_an_add_during_processing_is_requeued_once_on_done() -> None:
    queue = make_queue(VirtualTime())
    queue.add("Site/a", Lane.SWEEP)
    assert await queue.get() == "Site/a"
    queue.add("Site/a", Lane.SWEEP)
    queue.add("Site/a", Lane.CHANGE)
    assert not queue.is_queued("Site/a")
    queue.done("Site/a")
    assert queue.is_queued("Site/a")
    assert queue.lane_of("Site/a") is Lane.CHANGE
    assert len(queue) == 1


async def test_done_without_an_add_leaves_nothing_queued() -> None:
    queue = make_queue(VirtualTime())
    queue.add("Site/a")
    await queue.get()
    queue.done("Site/a")
    queue.done("Site/a")  # a second done is harmless
    assert len(queue) == 0
    assert queue.processing == frozenset()


async def test_two_workers_never_get_the_same_key() -> None:
    queue = make_queue(VirtualTime())
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await settle()
    queue.add("Site/a")
    await settle()
    finished = [task for task in (first, second) if task.done()]
    assert len(finished) == 1
    assert finished[0].result() == "Site/a"
    queue.add("Site/b")
    results = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)
    assert sorted(results) == ["Site/a", "Site/b"]


async def test_depth_counts_queued_keys_per_lane() -> None:
    queue = make_queue(VirtualTime())
    queue.add("a", Lane.URGENT)
    queue.add("b", Lane.SWEEP, after=100)
    queue.add("c", Lane.SWEEP)
    assert (queue.depth("urgent"), queue.depth("change"), queue.depth("sweep")) == (1, 0, 2)
    await queue.get()
    assert queue.depth(Lane.URGENT) == 0


async def test_backoff_grows_exponentially_within_its_jitter_window_up_to_the_cap() -> None:
    vt = VirtualTime()
    high = make_queue(vt, rng=0.999999, max_failures=100)
    low = make_queue(vt, rng=0.0, max_failures=100)
    windows = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    for attempt, window in enumerate(windows, start=1):
        assert high.backoff(attempt) == pytest.approx(window, rel=1e-5)
        assert high.backoff(attempt) < window
        assert low.backoff(attempt) == 0.0


async def test_a_transient_failure_requeues_the_key_after_the_jittered_delay() -> None:
    vt = VirtualTime()
    queue = make_queue(vt, rng=0.5)
    queue.add("Site/a")
    await queue.get()
    delays = []
    for _ in range(3):
        delays.append(queue.failure("Site/a", TransientError("cloudflare", "503")))
        queue.done("Site/a")
        assert queue.ready_at("Site/a") == pytest.approx(vt.now + delays[-1])
        assert await queue.get() == "Site/a"
    assert delays == [0.5, 1.0, 2.0]
    assert queue.failures("Site/a") == 3
    queue.success("Site/a")
    queue.done("Site/a")
    assert queue.failures("Site/a") == 0
    assert queue.last_error("Site/a") is None
    assert not queue.is_queued("Site/a")


async def test_retry_after_is_never_cut_short_even_beyond_the_cap() -> None:
    vt = VirtualTime()
    queue = make_queue(vt, rng=0.999)
    queue.add("Site/a")
    await queue.get()
    hint = TransientError("cloudflare", "429", status=429, retry_after=600.0)
    assert queue.failure("Site/a", hint, now=vt.now) == 600.0
    small_hint = TransientError("cloudflare", "429", status=429, retry_after=0.1)
    assert queue.failure("Site/a", small_hint) == pytest.approx(2 * 0.999)
    queue.done("Site/a")
    assert queue.ready_at("Site/a") == pytest.approx(vt.now + 2 * 0.999)


async def test_a_permanent_failure_waits_for_the_next_change_or_sweep() -> None:
    vt = VirtualTime()
    queue = make_queue(vt)
    queue.add("Hostname/x")
    await queue.get()
    error = PermanentError("cloudflare", "invalid hostname", status=400)
    assert queue.failure("Hostname/x", error) is None
    queue.done("Hostname/x")
    assert len(queue) == 0
    assert queue.last_error("Hostname/x") is error
    assert queue.stuck("Hostname/x") is None
    queue.add("Hostname/x", Lane.SWEEP)
    assert await queue.get() == "Hostname/x"


async def test_a_key_is_stuck_after_max_failures_until_a_change_arrives() -> None:
    vt = VirtualTime()
    queue = make_queue(vt, rng=0.0, max_failures=3)
    errors = [TransientError("cloudflare", f"503 #{n}") for n in range(3)]
    queue.add("Site/a")
    for n, error in enumerate(errors):
        assert await queue.get() == "Site/a"
        delay = queue.failure("Site/a", error)
        queue.done("Site/a")
        if n < 2:
            assert delay == 0.0
    assert delay is None
    assert queue.stuck("Site/a") is errors[-1]
    assert queue.stuck_keys() == ["Site/a"]
    assert len(queue) == 0
    queue.add("Site/a", Lane.SWEEP)
    assert len(queue) == 0
    assert queue.dropped == 1
    queue.add("Site/a", Lane.CHANGE)
    assert queue.stuck("Site/a") is None
    assert queue.failures("Site/a") == 0
    assert await queue.get() == "Site/a"


async def test_permanent_failures_also_count_towards_stuck() -> None:
    queue = make_queue(VirtualTime(), max_failures=2)
    for _ in range(2):
        queue.add("Site/a", Lane.SWEEP)
        await queue.get()
        queue.failure("Site/a", PermanentError("d1", "no such table"))
        queue.done("Site/a")
    assert queue.stuck("Site/a") is not None


async def test_a_change_that_arrives_while_the_last_attempt_fails_releases_the_key() -> None:
    queue = make_queue(VirtualTime(), max_failures=1)
    queue.add("Site/a")
    await queue.get()
    queue.add("Site/a", Lane.CHANGE)  # a new commit lands mid-reconcile
    assert queue.failure("Site/a", TransientError("cloudflare", "503")) is None
    queue.done("Site/a")
    assert queue.stuck("Site/a") is None
    assert queue.is_queued("Site/a")


async def test_timers_fire_in_deadline_order_in_virtual_time() -> None:
    vt = VirtualTime(start=0.0)
    queue = make_queue(vt)
    queue.wake_at("Hostname/late", 86_400.0)
    queue.wake_at("Tenant/dunning", 3_600.0, Lane.URGENT)
    queue.wake_at("Hostname/soon", 60.0, "sweep")
    fired = []
    for _ in range(3):
        key = await asyncio.wait_for(queue.get(), timeout=30)
        fired.append((key, vt.now))
        queue.done(key)
    assert fired == [
        ("Hostname/soon", 60.0),
        ("Tenant/dunning", 3_600.0),
        ("Hostname/late", 86_400.0),
    ]


async def test_an_add_wakes_a_getter_that_waits_for_a_far_timer() -> None:
    vt = VirtualTime(start=0.0)

    async def never(seconds: float) -> None:  # a timer that never fires on its own
        await asyncio.Event().wait()

    queue = WorkQueue(clock=vt.clock, sleep=never)
    queue.wake_at("Tenant/dunning", 86_400.0)
    getter = asyncio.create_task(queue.get())
    await settle()
    assert not getter.done()
    queue.add("Site/now")
    assert await asyncio.wait_for(getter, timeout=30) == "Site/now"
    assert vt.now == 0.0


async def test_ten_thousand_timers_fire_in_order() -> None:
    vt = VirtualTime(start=0.0)
    queue = make_queue(vt)
    deadlines = [float((i * 7919) % 10_000) + 1 for i in range(10_000)]
    for i, when in enumerate(deadlines):
        queue.wake_at(f"Hostname/h{i}", when)
    seen = []
    while len(queue):
        key = await queue.get()
        seen.append(vt.now)
        queue.done(key)
    assert seen == sorted(deadlines)


async def test_shutdown_wakes_waiting_getters_and_refuses_new_work() -> None:
    queue = make_queue(VirtualTime())
    getter = asyncio.create_task(queue.get())
    await settle()
    queue.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, timeout=30)
    queue.add("Site/a")
    assert len(queue) == 0
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_timers_never_release_a_stuck_key() -> None:
    vt = VirtualTime()
    queue = make_queue(vt, max_failures=1)
    queue.add("Hostname/x")
    await queue.get()
    queue.wake_at("Hostname/x", vt.now + 3_600)  # the reconcile set its validation deadline
    assert queue.failure("Hostname/x", PermanentError("cloudflare", "blocked")) is None
    queue.done("Hostname/x")
    assert queue.stuck("Hostname/x") is not None
    assert not queue.is_queued("Hostname/x")
    queue.wake_at("Hostname/x", vt.now + 60)
    assert not queue.is_queued("Hostname/x")
    assert queue.dropped == 2
