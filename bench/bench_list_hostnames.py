"""Benchmark: list 5,000 custom hostnames through ``CloudflareClient`` from the simulator.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_list_hostnames [--count N]``.
Starts the Cloudflare simulator on loopback (``reconciler.sandbox.world.Sandbox``, without
localstripe or Evolution), creates N hostnames directly in the simulator's state (no API calls,
not counted), then lists them with the adapter at 50 per page through a token bucket with the
production budget (1,200 requests per 300 s). Prints:

- requests the adapter sent (must be ``ceil(N / 50)``: 100 for 5,000) and what the simulator
  logged, by route;
- wall time, requests per second, and seconds spent waiting on the bucket;
- what one GET per hostname would cost instead, and how long that takes under the
  1,200/300 s budget.

Returns 1 when the request count is not ``ceil(N / 50)``; otherwise 0. Nothing else is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from reconciler.core.lane import Lane
from reconciler.providers.cloudflare import HOSTNAMES_PER_PAGE, CloudflareClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.sandbox.world import Sandbox
from reconciler.settings import Settings

LIST_ROUTE = "GET /zones/{zone_id}/custom_hostnames"


async def run(count: int) -> int:
    """Start the simulator, seed ``count`` hostnames, list them, print the figures."""
    with Sandbox(with_stripe=False, with_evolution=False) as world:
        sim = world.cloudflare
        started = time.perf_counter()
        for i in range(count):  # as an ordinary account creates them: no metadata, no origin
            sim.add_hostname(f"shop{i:05d}.customer-{i % 97}.com")
        seeded = time.perf_counter() - started
        sim.clear_calls()

        settings = Settings.from_env(world.settings_env()).cloudflare
        budget = settings.rate
        bucket = TokenBucket(capacity=budget.requests, period=budget.period)
        async with CloudflareClient(settings, bucket=bucket, lane=Lane.SWEEP) as client:
            started = time.perf_counter()
            found = await client.list_custom_hostnames()
            wall = time.perf_counter() - started
            sent = sum(client.calls.values())
            listed = client.calls[LIST_ROUTE]
        logged = sim.summary()

    expected = math.ceil(count / HOSTNAMES_PER_PAGE)
    print(f"seeded {count} hostnames in the simulator state in {seeded:.2f} s (no API calls)")
    print(
        f"listed {len(found)} hostnames: {sent} requests sent ({listed} x {LIST_ROUTE}), "
        f"expected {expected}"
    )
    print(f"simulator logged {logged['calls']} calls: {logged['by_route']}")
    rate = sent / wall if wall > 0 else float("inf")
    print(
        f"wall time {wall:.3f} s, {rate:.1f} requests/s, {wall / max(sent, 1) * 1000:.1f} ms per "
        f"page, {bucket.waited:.3f} s waiting on the token bucket"
    )
    steady = budget.requests / budget.period
    print(
        f"one GET per hostname would be {count} requests: "
        f"{count / budget.requests:.1f}x the whole {budget.requests}/{budget.period:g} s budget, "
        f"{count / steady / 60:.1f} min at its steady {steady:g} requests/s; "
        f"the list costs {sent / budget.requests:.1%} of one window"
    )
    ok = sent == expected and len(found) == count
    if not ok:
        print(f"UNEXPECTED: {sent} requests for {len(found)} hostnames")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``--count`` and run the benchmark; 0 when the request count is as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="hostnames to seed and list")
    args = parser.parse_args(argv if argv is not None else [])
    return asyncio.run(run(args.count))


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
