"""Runbook 6, API down or high error rate: the loop degrades safely instead of failing hot.

With 30 % of Cloudflare requests answering 503 and 429 bursts on the zone, ``apply`` still
converges within a few passes: each call is tried a bounded number of times, a 429 is waited
out for at least its ``retry-after``, and no hostname or deployment is duplicated. With
Cloudflare fully down the plan marks the hostname listing incomplete and creates or deletes
nothing, while the D1 and billing work (mirror, dunning) still proceeds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from reconciler.sandbox.faults import FaultRule

from support.scenario import Scenario, snapshot

DOMAINS = {"acme-home": ["www.acme.test"], "acme-shop": ["shop.acme.test"]}
MAX_ATTEMPTS = 4  # providers/retry.py RetryPolicy.attempts


def _fleet(world: Scenario) -> None:
    world.fleet.tenant("acme", customer="cus_unseeded")
    for site, domains in DOMAINS.items():
        world.fleet.site(site, tenant="acme", version=1, domains=domains)


def _failure_streaks(calls: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Per (method, path): the longest run of consecutive failed answers."""
    longest: dict[tuple[str, str], int] = defaultdict(int)
    current: dict[tuple[str, str], int] = defaultdict(int)
    for call in calls:
        key = (str(call["method"]), str(call["path"]))
        if int(call["status"]) >= 429:
            current[key] += 1
            longest[key] = max(longest[key], current[key])
        else:
            current[key] = 0
    return dict(longest)


def test_a_flaky_cloudflare_still_converges_without_hot_loops_or_duplicates(
    world: Scenario,
) -> None:
    _fleet(world)
    world.seed()
    world.sandbox.cloudflare.faults.set([FaultRule(error_rate=0.3, error_status=503)], seed=7)

    codes = []
    runs: list[list[dict[str, Any]]] = []  # each apply's own calls: a streak never spans two
    for _ in range(8):
        mark = world.cf_seq()
        run = world.apply()
        runs.append(world.cf_calls(mark))
        codes.append(run.code)
        if "nothing to do" in run.out:
            break
        world.advance(600)
    assert "nothing to do" in run.out, codes
    calls = [call for calls_of_run in runs for call in calls_of_run]
    assert any(c["status"] == 503 for c in calls)

    # No duplicates: one hostname per domain, one deployment per site.
    assert world.hostnames() == sorted(d for ds in DOMAINS.values() for d in ds)
    for site in DOMAINS:
        [deployment] = world.deployments(site)
        assert world.live_deployment(site).id == deployment.id
    # Bounded attempts: within one apply, never more than the retry policy's tries in a row
    # per call (the next apply may try a call that the previous one gave up on).
    for calls_of_run in runs:
        streaks = _failure_streaks(calls_of_run)
        over = {k: v for k, v in streaks.items() if v > MAX_ATTEMPTS}
        assert max(streaks.values(), default=0) <= MAX_ATTEMPTS, over


def test_a_429_burst_is_waited_out_for_at_least_its_retry_after(world: Scenario) -> None:
    world.tenant_with_site(domains=["www.acme.test"])
    assert world.settle().code == 0
    world.put_content("acme-home", 2, snapshot({"type": "hero", "heading": "Two"}))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    world.sandbox.clock.thaw()  # the retry waits are real; the call log's times show them
    world.sandbox.cloudflare.faults.set(
        [FaultRule(path_prefix="/zones", burst_429=2, retry_after=1)], seed=1
    )
    mark = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out
    calls = world.cf_calls(mark)
    limited = [c for c in calls if c["status"] == 429]
    assert len(limited) == 2
    for call in limited:
        later = [
            c
            for c in calls
            if c["seq"] > call["seq"] and (c["method"], c["path"]) == (call["method"], call["path"])
        ]
        assert later, "a rate-limited call was never tried again"
        assert later[0]["at"] - call["at"] >= float(call["response_headers"]["retry-after"])
    streaks = _failure_streaks(calls)
    over = {k: v for k, v in streaks.items() if v > MAX_ATTEMPTS}
    assert max(streaks.values()) <= MAX_ATTEMPTS, over
    assert [r["version_number"] for r in world.publishes("acme-home") if r["status"] == "live"] == [
        2
    ]


def test_with_cloudflare_down_nothing_is_created_or_deleted_but_billing_proceeds(
    world: Scenario,
) -> None:
    _fleet(world)
    billing = world.seed()["acme"]
    assert world.settle().code == 0
    hostnames = world.hostnames()
    billing = world.fail_payment(billing)
    world.fleet.sites["acme-home"]["domains"].append({"hostname": "new.acme.test"})
    world.fleet.sites["acme-shop"]["domains"] = []  # removed (retain policy either way)
    world.sandbox.cloudflare.faults.set([FaultRule(error_rate=1.0, error_status=503)], seed=1)

    mark = world.cf_seq()
    run = world.apply("--format", "json")
    report = run.json()
    assert run.code == 1, run.err  # a provider could not be read: never "all is well"
    assert "error: cloudflare could not be read at http://127.0.0.1:" in run.err
    assert "hostnames" in report["plan"]["incomplete"]
    blocked = {(b["kind"], b["target"]): b for b in report["plan"]["blocked"]}
    create = blocked[("create_hostname", "Hostname/new.acme.test")]
    assert create["gate"] == "incomplete"
    assert "custom hostnames could not be listed" in create["reason"]
    assert all(c["status"] == 503 for c in world.cf_calls(mark))  # nothing got through
    assert world.hostnames() == hostnames

    # D1 and billing work went on without Cloudflare.
    statuses = {o["kind"]: o["status"] for o in report["outcomes"]}
    assert statuses == {"sync_billing": "applied", "send_dunning": "applied"}
    assert len(world.messages()) == 1
    assert world.rows(
        "SELECT status FROM invoices WHERE provider_invoice_id = ?", billing.invoice
    ) == [{"status": "open"}]

    world.sandbox.cloudflare.faults.clear()
    world.apply()
    world.advance(600)
    assert "new.acme.test" in world.hostnames()
    assert "shop.acme.test" in world.hostnames()  # retained: deletion_policy retain
    assert len(world.messages()) == 1
