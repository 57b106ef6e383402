"""Benchmark: hard-locking a tenant with 1,000 hostnames, one PATCH per hostname versus KV bulk.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_lock [--hostnames N]``.
Starts the Cloudflare simulator on loopback (no localstripe, no Evolution), writes a fleet of one
tenant whose sites declare N hostnames (10 per site), and seeds the converged state directly
(``bench/converged.py``: hostnames active, routing entries serving each site, D1 in sync). Then
the tenant's invoice is 25 days past due (a fake Stripe), and both ways of locking it run
against the same simulator, each counted from its call log:

- before: the call pattern of the reconciler before the dispatch Worker (kept here, bench-local,
  to measure it): per hostname one ``PATCH custom_hostnames/{id}`` setting
  ``custom_origin_server`` to the suspension origin and one purge of its host. The simulated
  account is made entitled to custom origins for this run only (an ordinary account refuses
  them, ROUTING.md section 1);
- after: today's pipeline in process: observe (read-only clients of the wiring), derive, plan,
  and execute with the wiring's handlers and journal: the plan's ``hard_lock`` and one
  ``write_routes`` (KV bulk writes of up to 10,000 keys).

Prints each run's Cloudflare requests by route and wall time (budget lifted, so the simulator's
cost shows; the time under the production budget of 1,200 requests per 300 s is computed), and
the ratio of requests. Returns 1 when the after run is not O(N / 10,000) KV writes or the routing
table does not end suspended; otherwise 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

from bench import converged
from reconciler.core.desired import derive
from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.plan import ActionKind, build_plan
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.runtime.execute import execute
from reconciler.runtime.journal import Journal
from reconciler.runtime.observe import observe
from reconciler.sandbox.world import Sandbox
from reconciler.settings import Settings
from reconciler.spec.load import Specs, load_directory
from reconciler.wiring import ReadOnlyWorld, WriterWorld, load_settings

REPO = Path(__file__).resolve().parents[1]
PER_SITE = 10
SUSPENSION = "suspended.sitebuilder.app"
BUDGET = (1200, 300.0)
UNBOUNDED = "1000000/1"
DAY = 86400.0


def write_fleet(root: Path, hostnames: int) -> Specs:
    """One policy, one tenant, ``hostnames / 10`` sites of 10 hostnames each."""
    (root / "policies").mkdir(parents=True)
    (root / "tenants").mkdir()
    (root / "sites").mkdir()
    policy = (REPO / "specs" / "policies" / "standard.yaml").read_text(encoding="utf-8")
    (root / "policies" / "standard.yaml").write_text(policy, encoding="utf-8")
    tenant = {
        "apiVersion": "sitebuilder/v1",
        "kind": "Tenant",
        "metadata": {"name": "bench"},
        "spec": {
            "display_name": "Bench Bakery",
            "policy": "standard",
            "stripe": {"customer": "cus_bench", "subscription": "sub_bench"},
            "whatsapp": "+5511912345678",
        },
    }
    (root / "tenants" / "bench.yaml").write_text(yaml.safe_dump(tenant), encoding="utf-8")
    for s in range(math.ceil(hostnames / PER_SITE)):
        names = [f"h{i:02d}.bench{s:04d}.com" for i in range(PER_SITE)]
        names = names[: max(0, hostnames - s * PER_SITE)]
        site = {
            "apiVersion": "sitebuilder/v1",
            "kind": "Site",
            "metadata": {"name": f"bench-{s:04d}"},
            "spec": {
                "tenant": "bench",
                "pages_project": f"bench-{s:04d}",
                "production": {"version": 1},
                "domains": [{"hostname": name} for name in names],
                "deletion_policy": "retain",
            },
        }
        (root / "sites" / f"bench-{s:04d}.yaml").write_text(yaml.safe_dump(site), "utf-8")
    return load_directory(root)


def overdue(now: float) -> CustomerBilling:
    """The tenant's customer with one open invoice 25 days past due."""
    invoice = Invoice(
        id="in_bench",
        customer="cus_bench",
        subscription="sub_bench",
        status="open",
        amount_due=2900,
        currency="usd",
        created=now - 25 * DAY,
        finalized_at=now - 25 * DAY,
        due_date=now - 25 * DAY,
    )
    return CustomerBilling(customer="cus_bench", open_invoices=(invoice,))


async def before(world: Sandbox, ids: dict[str, str]) -> tuple[int, float]:
    """The old pattern: one origin PATCH and one purge per hostname (entitled account)."""
    sim = world.cloudflare
    sim.configure(entitled_custom_origin=True, custom_origin_outside_zone=True)
    settings = Settings.from_env({**world.settings_env(), "CLOUDFLARE_RATE_LIMIT": UNBOUNDED})
    bucket = TokenBucket(capacity=settings.cloudflare.rate.requests, period=1.0)
    started = time.perf_counter()
    async with CloudflareClient(settings.cloudflare, bucket=bucket) as client:
        for name, ident in sorted(ids.items()):
            await client.edit_custom_hostname(ident, custom_origin_server=SUSPENSION)
            await client.purge_cache(hosts=[name])
    wall = time.perf_counter() - started
    sim.configure(entitled_custom_origin=False, custom_origin_outside_zone=False)
    with sim.lock:  # back to the converged zone for the second run (not an API call)
        for hostname in sim.hostnames.by_id.values():
            hostname.custom_origin_server = None
    return sum(client.calls.values()), wall


async def after(world: Sandbox, specs: Specs) -> tuple[int, int, float, int]:
    """Today's pipeline: observe, derive, plan, execute.

    Returns the requests observing, the requests acting, the wall time and the KV writes.
    """
    env = {**world.settings_env(), "CLOUDFLARE_RATE_LIMIT": UNBOUNDED}
    settings = load_settings(env)
    now = world.clock.now()
    stripe = converged.FakeStripe(["cus_bench"], invoices={"cus_bench": overdue(now)})
    started = time.perf_counter()
    async with ReadOnlyWorld(settings) as readers:
        clients = replace(readers.clients, stripe=stripe, gaps={})
        observed = await observe(specs, clients=clients, now=now)
        plan = build_plan(
            derive(specs, observed.billing, now=now), observed, readers.plan_settings()
        )
        read = readers.requests().get("cloudflare", 0)
    kinds = sorted({a.kind.value for a in plan.actions})
    if ActionKind.HARD_LOCK.value not in kinds:
        reasons = sorted({a.reason for a in plan.actions})[:3]
        raise RuntimeError(f"the plan does not hard-lock the tenant: {kinds} {reasons}")
    # The billing mirror and the dunning message need Stripe and WhatsApp, not Cloudflare: only
    # the lock and the routing write run here.
    lock = (ActionKind.HARD_LOCK, ActionKind.WRITE_ROUTES)
    plan = replace(
        plan,
        actions=tuple(
            replace(a, depends_on=tuple(d for d in a.depends_on if d in kept))
            for kept in [{a.id for a in plan.actions if a.kind in lock}]
            for a in plan.actions
            if a.kind in lock
        ),
    )
    async with WriterWorld(settings) as writers:
        report = await execute(
            plan,
            handlers=writers.handlers(),
            journal=Journal(writers.database, now=world.clock.now),
            now=world.clock.now,
        )
        written = writers.requests().get("cloudflare", 0)
    wall = time.perf_counter() - started
    failed = [o for o in report.outcomes if o.status.value.startswith("failed")]
    if failed:
        raise RuntimeError(f"the lock failed: {failed}")
    writes = sum(
        1
        for c in world.cloudflare.calls_since(0)
        if c["method"] == "PUT" and c["route"].endswith("/bulk")
    )
    print(
        f"  after: the plan holds {', '.join(kinds)}; ran {len(plan.actions)} of them "
        f"(hard_lock, write_routes); {read} requests observing, {written} acting"
    )
    return read, written, wall, writes


def soft_lock(path: Path) -> None:
    """The tenant soft-locked in D1, as the passes before the hard lock left it."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("UPDATE tenants SET status = 'soft_locked' WHERE id = 'bench'")
    finally:
        connection.close()


def minimum_wall(requests: int) -> float:
    """Seconds ``requests`` need at least under the 1,200/300 s budget (a full window free)."""
    limit, period = BUDGET
    return 0.0 if requests <= limit else math.ceil(requests / limit - 1) * period


def run(hostnames: int) -> int:
    """Seed, lock both ways, print the figures; 0 when the after run is as expected."""
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp:
        specs = write_fleet(Path(tmp) / "specs", hostnames)
        with Sandbox(
            with_stripe=False, with_evolution=False, state_dir=Path(tmp) / "sandbox"
        ) as world:
            sim = world.cloudflare
            converged.converge(sim, sim.d1_path, specs)
            soft_lock(sim.d1_path)  # dunned and soft-locked already: the next step is the lock
            sim.configure(rate_limit_requests=1_000_000)  # measure calls, not the sim's 429s
            ids = {h.hostname: h.id for h in sim.hostnames.by_id.values()}
            print(f"tenant bench: {len(specs.sites)} sites, {len(ids)} hostnames, converged")
            sim.clear_calls()
            old_requests, old_wall = asyncio.run(before(world, ids))
            old_routes = sim.summary()["by_route"]
            print(
                f"before (PATCH custom_origin_server + purge per hostname): {old_requests} "
                f"Cloudflare requests {old_routes}; wall {old_wall:.1f} s with the budget "
                f"lifted, at least {minimum_wall(old_requests):.0f} s under 1200/300 s"
            )
            sim.clear_calls()
            read, acting, new_wall, writes = asyncio.run(after(world, specs))
            new_requests = read + acting
            print(
                f"after (observe + plan + hard_lock + write_routes): {new_requests} Cloudflare "
                f"requests {sim.summary()['by_route']}; wall {new_wall:.1f} s with the budget "
                f"lifted, at least {minimum_wall(new_requests):.0f} s under 1200/300 s"
            )
            table = next(ns for ns in sim.kv.namespaces.values())
            suspended = sum(1 for e in table.entries.values() if b'"suspend"' in e.value)
    pages = math.ceil(len(ids) / 50)  # the hostname listing the old pipeline read too
    print(
        f"lock of {len(ids)} hostnames, acting: {old_requests} -> {acting} requests "
        f"({old_requests / max(acting, 1):.0f}x fewer); with the observation: "
        f"{old_requests + pages} -> {new_requests} ({(old_requests + pages) / new_requests:.0f}x "
        f"fewer); {writes} KV bulk write(s) (expected {math.ceil(len(ids) / 10_000)}); "
        f"{suspended} entries now suspend"
    )
    ok = writes == math.ceil(len(ids) / 10_000) and suspended == len(ids)
    if not ok:
        print("UNEXPECTED: the lock did not take one bulk write per 10,000 hostnames")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``--hostnames`` and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostnames", type=int, default=1000)
    args = parser.parse_args(argv)
    return run(args.hostnames)


if __name__ == "__main__":
    raise SystemExit(main())
