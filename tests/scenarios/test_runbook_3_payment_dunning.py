"""Runbook 3, payment failed and dunning: from a declined payment to a hard lock and back.

A tenant's renewal is declined in localstripe. Every ``apply`` mirrors the billing from Stripe,
sends the dunning step due (through the Evolution simulator) exactly once, soft-locks after
``grace_days``, hard-locks after ``hard_lock_days`` (the routing table sends the hostname to the
suspension page; the hostname itself is never touched), and unlocks as soon as the invoice is
paid (the site is routed again).
"""

from __future__ import annotations

from typing import Any

from support.scenario import DAY, Scenario

HOST = "www.acme.test"
SUSPENDED = {"action": "suspend", "tenant": "acme"}
ORIGIN = {"action": "serve", "project": "acme-home", "site": "acme-home", "tenant": "acme"}


def _origin(world: Scenario) -> dict[str, Any] | None:
    shown = world.hostname(HOST)
    assert shown is not None and not shown.get("custom_origin_server")
    return world.route(HOST)


def _hostname_calls(world: Scenario, mark: int) -> list[str]:
    return [
        f"{c['method']} {c['route']}"
        for c in world.cf_calls(mark)
        if "/custom_hostnames/" in c["route"] and c["method"] != "GET"
    ]


def _sent(world: Scenario) -> list[tuple[str, str]]:
    return [
        (row["step_code"], row["status"])
        for row in world.dunning_logs()
        if row["status"] != "skipped"
    ]


def test_a_declined_payment_is_dunned_once_per_step_locked_then_unlocked_when_paid(
    world: Scenario,
) -> None:
    billing = world.tenant_with_site(domains=[HOST])
    world.settle()
    assert _origin(world) == ORIGIN
    billing = world.fail_payment(billing)

    # Day 0: the billing mirror is copied and the first step goes out.
    run = world.apply()
    assert run.code == 0, run.out
    [invoice] = world.rows("SELECT * FROM invoices WHERE provider_invoice_id = ?", billing.invoice)
    assert invoice["status"] == "open"
    # due_at is filled (the runbook's query orders by it): a charged invoice is due when it
    # is finalised, day 0 of the dunning schedule.
    assert invoice["due_at"] is not None and invoice["due_at"] == invoice["first_failed_at"]
    assert _sent(world) == [("D0", "sent")]
    [message] = world.messages()
    assert billing.invoice in message["text"]
    assert message["number"].lstrip("+") == "5511912345678"
    [log] = world.dunning_logs()
    assert log["provider_message_id"] == message["id"]
    assert world.tenant_status("acme") == "active"

    # A second pass the same day sends nothing again.
    assert "nothing to do" in world.apply().out
    assert len(world.messages()) == 1

    world.advance(3 * DAY)
    assert world.apply().code == 0
    assert _sent(world) == [("D0", "sent"), ("D3", "sent")]
    assert world.tenant_status("acme") == "active"  # within the 7 grace days

    world.advance(4 * DAY)  # day 7: grace is over
    run = world.apply()
    assert run.code == 0, run.out
    assert world.tenant_status("acme") == "soft_locked"
    assert _sent(world)[-1] == ("D7", "sent")
    assert _origin(world) == ORIGIN  # a soft lock keeps the site online

    world.advance(14 * DAY)  # day 21: hard lock
    mark = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out
    assert world.tenant_status("acme") == "hard_locked"
    assert _origin(world) == SUSPENDED
    assert world.domain(HOST)["status"] == "suspended"
    assert _hostname_calls(world, mark) == []  # a lock writes the table, not the hostname
    assert _sent(world) == [("D0", "sent"), ("D3", "sent"), ("D7", "sent"), ("D21", "sent")]

    for _ in range(2):  # repeated passes: no step twice
        assert "nothing to do" in world.apply().out
    assert len(world.messages()) == 4

    # The customer pays; the next pass reads it from Stripe and unlocks.
    world.pay(billing)
    mark = world.cf_seq()
    run = world.apply()
    assert run.code == 0, run.out
    assert world.tenant_status("acme") == "active"
    assert _origin(world) == ORIGIN
    assert _hostname_calls(world, mark) == []
    assert world.domain(HOST)["status"] == "active"
    [invoice] = world.rows(
        "SELECT status FROM invoices WHERE provider_invoice_id = ?", billing.invoice
    )
    assert invoice["status"] == "paid"
    assert "nothing to do" in world.apply().out
    assert len(world.messages()) == 4


def test_a_tenant_already_late_gets_one_message_not_the_whole_backlog(world: Scenario) -> None:
    billing = world.tenant_with_site(domains=[HOST])
    world.settle()
    billing = world.fail_payment(billing)
    world.advance(8 * DAY)  # first seen 8 days late (the reconciler was down)

    run = world.apply()
    assert run.code == 0, run.out
    assert world.tenant_status("acme") == "soft_locked"
    assert len(world.messages()) == 1
    steps = {row["step_code"]: row["status"] for row in world.dunning_logs()}
    assert steps == {"D0": "skipped", "D3": "skipped", "D7": "sent"}
