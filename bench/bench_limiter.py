"""Benchmark: how much of Cloudflare's budget the client's token bucket uses, and its 429s.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_limiter [--budgets N]``.
Starts the Cloudflare simulator on loopback with its own rate limit at the production figure
(1,200 requests per 300 s per token, a 429 and a block past it) and drives the real
:class:`~reconciler.providers.cloudflare.CloudflareClient` through one shared
:class:`~reconciler.providers.ratelimit.TokenBucket` as fast as the bucket lets it: eight
concurrent callers reading a Pages project, ``N`` budgets' worth of requests. The simulator's
clock is frozen and the bucket's waits advance it, so the run takes seconds, not
``N`` x 5 minutes, and the simulator judges every request at the instant the bucket sent it.

It runs twice in one process: with today's sizing (1.5 % margin, 2 % burst) and with the sizing
the bucket had before (no margin, a 10 % burst), and prints for each the share of the budget the
last full window used (the sustained share), the busiest window, and the 429s the simulator
answered; then the ratio of the two sustained shares. Targets: sustained >= 95 %, busiest
window <= the budget, 0 self-caused 429. Returns 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.cloudflare import API_ROOT, CloudflareConfig, CloudflareSim, create_app
from reconciler.sandbox.host import ServerHost
from reconciler.settings import CloudflareSettings, Secret

CAPACITY, PERIOD = 1200, 300.0
PROJECT = "acme-home"
CALLERS = 8
TARGET_SHARE = 0.95


@dataclass(frozen=True, slots=True)
class Run:
    """What one sizing of the bucket did against the simulator."""

    label: str
    requests: int
    sustained: float  # share of CAPACITY in the last full window
    busiest: int  # most requests in any window of PERIOD
    rejected: int  # 429s the simulator answered


def busiest_window(stamps: list[float]) -> int:
    """The most of ``stamps`` (sorted) that any window ``[t, t + PERIOD)`` holds."""
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - PERIOD:
            start += 1
        most = max(most, end - start + 1)
    return most


def advancing(clock: VirtualClock) -> Callable[[float], Awaitable[None]]:
    """A sleep that moves the frozen ``clock`` instead of waiting."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return sleep


async def drive(
    host: ServerHost, sim: CloudflareSim, bucket: TokenBucket, total: int, clock: VirtualClock
) -> None:
    """Send ``total`` reads through ``bucket`` from concurrent callers; waits move ``clock``."""
    config = sim.config
    settings = CloudflareSettings(
        base_url=host.base_url + API_ROOT,
        token=Secret(config.token),
        account_id=config.account_id,
        zone_id=config.zone_id,
    )

    retry = RetryPolicy(attempts=1)
    async with CloudflareClient(
        settings, bucket=bucket, retry=retry, rng=random.Random(1), sleep=advancing(clock)
    ) as client:
        remaining = [total]

        async def caller() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await client.get_project(PROJECT)

        await asyncio.gather(*(caller() for _ in range(CALLERS)))


def measure(
    label: str, make_bucket: Callable[[VirtualClock], TokenBucket], total: int, d1_dir: Path
) -> Run:
    """One run of ``total`` requests on a fresh simulator with the bucket ``make_bucket`` builds."""
    clock = VirtualClock()
    clock.freeze()
    config = CloudflareConfig.generate(seed=1, projects=(PROJECT,))
    app, sim = create_app(clock=clock, config=config, d1_dir=d1_dir)
    sim.configure(rate_limit_requests=CAPACITY, rate_limit_period=PERIOD, rate_limit_block=PERIOD)
    host = ServerHost(app, name="bench-limiter")
    host.start()
    try:
        bucket = make_bucket(clock)
        try:
            asyncio.run(drive(host, sim, bucket, total, clock))
        except Exception as exc:  # a 429 with no retry left ends the run; it is counted below
            print(f"  {label}: stopped by {type(exc).__name__}")
        calls = sim.calls_since(0)
    finally:
        host.stop()
        sim.close()
    stamps = sorted(float(c["at"]) for c in calls if c["status"] != 429)
    last = [s for s in stamps if s > stamps[-1] - PERIOD]
    return Run(
        label=label,
        requests=len(calls),
        sustained=len(last) / CAPACITY,
        busiest=busiest_window(stamps),
        rejected=sum(1 for c in calls if c["status"] == 429),
    )


def main(argv: list[str] | None = None) -> int:
    """Measure both sizings, print them beside the targets; 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=3, help="budgets' worth of requests")
    args = parser.parse_args(argv)
    total = args.budgets * CAPACITY
    print(f"load average {os.getloadavg()[0]:.2f}; {total} requests per run, {CALLERS} callers")
    with tempfile.TemporaryDirectory() as tmp:
        now = measure(
            "margin 1.5 %, burst 2 %",
            lambda c: TokenBucket(
                capacity=CAPACITY, period=PERIOD, clock=c.now, sleep=advancing(c)
            ),
            total,
            Path(tmp) / "a",
        )
        before = measure(
            "no margin, burst 10 % (before)",
            lambda c: TokenBucket(
                capacity=CAPACITY,
                period=PERIOD,
                burst=CAPACITY // 10,
                margin=0.0,
                clock=c.now,
                sleep=advancing(c),
            ),
            total,
            Path(tmp) / "b",
        )
    for run in (now, before):
        print(
            f"  {run.label}: sustained {run.sustained:.1%} of the budget (target >= 95 %), "
            f"busiest window {run.busiest} (target <= {CAPACITY}), "
            f"429s {run.rejected} (target 0), {run.requests} requests"
        )
    print(f"  sustained share, now / before: {now.sustained / before.sustained:.3f}")
    ok = now.sustained >= TARGET_SHARE and now.busiest <= CAPACITY and now.rejected == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
