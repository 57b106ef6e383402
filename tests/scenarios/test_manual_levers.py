"""The runbooks' manual endpoints, as verbs through the CLI against the sandbox.

Each verb (``publish``, ``purge``, ``retry-validation``, ``recreate``, ``send-dunning``,
``retry-dunning``, ``sync-billing``, ``enforce``, ``clear-stuck``) and ``apply --target``
shows its plan and applies it through the same journal and executor as ``apply``, or is
refused with a reason (exit 3) when the specs forbid it. docs/runbooks.md maps each runbook
endpoint to its verb.
"""

from __future__ import annotations

from reconciler.sandbox.cloudflare_pages import Behaviour

from support.scenario import DAY, Scenario, purges, snapshot, uploads

HOST = "www.acme.test"


def test_publish_redeploys_the_live_version_and_is_refused_for_a_hard_locked_tenant(
    world: Scenario,
) -> None:
    world.tenant_with_site(domains=[HOST])
    world.settle()
    before = world.publishes("acme-home")[-1]
    mark = world.cf_seq()

    run = world.lever("publish", "acme-home")
    assert run.code == 0, run.out + run.err
    assert "asked by hand (reconciler publish)" in run.out
    assert "publish acme-home production v1 ... applied" in run.err
    after = world.publishes("acme-home")[-1]
    assert after["status"] == "live" and after["deployment_id"] != before["deployment_id"]
    assert len(uploads(world.cf_calls(mark))) == 1
    assert {"hosts": [HOST]} in [p["request_json"] for p in purges(world.cf_calls(mark))]
    assert "nothing to do" in world.apply().out  # the redeploy left nothing behind

    world.fleet.tenants["acme"].update(access="hard_locked", access_reason="chargeback OPS-9")
    assert world.apply().code == 0
    mark = world.cf_seq()
    run = world.lever("publish", "acme-home")
    assert run.code == 3, run.out
    assert "blocked (tenant hard-locked)" in run.out
    assert uploads(world.cf_calls(mark)) == []


def test_purge_purges_the_sites_hosts_and_nothing_else(world: Scenario) -> None:
    world.tenant_with_site(domains=[HOST, "acme.test"])
    world.settle()
    world.put_content("acme-home", 2, snapshot(title="Pending change"))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}  # not the lever's business
    mark = world.cf_seq()

    run = world.lever("purge", "acme-home")
    assert run.code == 0, run.out + run.err
    assert "Plan: 1 to purge." in run.out
    [purge] = purges(world.cf_calls(mark))
    assert sorted(purge["request_json"]["hosts"]) == ["acme.test", HOST]
    assert uploads(world.cf_calls(mark)) == []  # the pending publish was not part of it

    refused = world.lever("purge", "no-such-site")
    assert refused.code == 1 and "no Site 'no-such-site'" in refused.err


def test_retry_validation_and_recreate_act_on_a_pending_hostname_now(world: Scenario) -> None:
    world.sandbox.cloudflare.configure(validation_window=2 * DAY)
    world.tenant_with_site(domains=[HOST], pointed=False)
    assert world.apply().code == 0
    first_id = world.domain(HOST)["custom_hostname_id"]
    world.advance(2 * 3600)  # well within the 24 h validation timeout
    assert "nothing to do" in world.apply().out

    run = world.lever("retry-validation", HOST)
    assert run.code == 0, run.out + run.err
    assert f"retry validation {HOST} ... applied" in run.err
    assert world.domain(HOST)["retry_count"] == 1

    run = world.lever("recreate", HOST)
    assert run.code == 0, run.out + run.err
    assert f"recreate hostname {HOST} ... applied" in run.err
    row = world.domain(HOST)
    assert row["recreate_count"] == 1 and row["custom_hostname_id"] != first_id
    assert world.hostnames() == [HOST]

    world.sandbox.cloudflare.point_dns(HOST)
    world.advance(600)
    world.converge()
    run = world.lever("recreate", HOST)
    assert run.code == 3, run.out
    assert "active and serving" in run.out
    assert world.domain(HOST)["recreate_count"] == 1


def test_a_publish_stuck_on_cloudflares_side_waits_a_cool_down_or_clear_stuck(
    world: Scenario,
) -> None:
    world.tenant_with_site(version=1)
    world.settle()
    world.put_content("acme-home", 2, snapshot(title="Version two"))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    world.sandbox.cloudflare.set_deployment_behaviour(
        Behaviour(mode="fail", stage="deploy"), project="acme-home", times=4
    )
    for _ in range(3):
        assert world.apply().code == 1
    run = world.apply()
    assert run.code == 3
    assert "on Cloudflare's side" in run.out and "clear-stuck Site/acme-home:production" in run.out

    run = world.lever("clear-stuck", "Site/acme-home:production")
    assert run.code == 1, run.out  # attempt 4 still meets the fault
    assert world.publishes("acme-home")[-1]["attempts"] == 4

    world.advance(6 * 3600 + 60)  # Pages recovered meanwhile: the cool-down retries by itself
    run = world.apply()
    assert run.code == 0, run.out + run.err
    assert "cool-down of 6 h" in run.out
    assert world.publishes("acme-home")[-1]["status"] == "live"


def test_send_dunning_sends_a_chosen_step_once_and_refuses_it_twice(world: Scenario) -> None:
    billing = world.tenant_with_site(domains=[HOST])
    world.settle()
    billing = world.fail_payment(billing)
    assert world.apply().code == 0  # D0 goes out by itself

    run = world.lever("send-dunning", "acme", "--step", "D3")
    assert run.code == 0, run.out + run.err
    assert "asked by hand (reconciler send-dunning)" in run.out
    steps = {row["step_code"]: row["status"] for row in world.dunning_logs()}
    assert steps == {"D0": "sent", "D3": "sent"}
    assert len(world.messages()) == 2

    run = world.lever("send-dunning", billing.subscription, "--step", "D3")
    assert run.code == 3, run.out
    assert "was already sent: a step is never sent twice" in run.out
    run = world.lever("retry-dunning", str(billing.invoice), "--step", "D0")
    assert run.code == 3 and "already sent" in run.out
    assert len(world.messages()) == 2


def test_a_step_failed_on_a_bad_number_is_resent_once_the_number_is_fixed(
    world: Scenario,
) -> None:
    wrong = "+5511900000000"
    billing = world.tenant_with_site(domains=[HOST], phone=wrong)
    world.settle()
    world.sandbox.evolution.set_on_whatsapp([wrong], exists=False)
    billing = world.fail_payment(billing)
    assert world.apply().code == 1
    [log] = world.dunning_logs()
    assert log["status"] == "failed" and log["phone"] == wrong
    assert "nothing to do" in world.apply().out  # the same number: never retried

    world.fleet.tenants["acme"]["whatsapp"] = "+5511912345678"
    run = world.apply()
    assert run.code == 0, run.out + run.err
    assert "the number was corrected in the tenant spec" in run.out
    [log] = world.dunning_logs()
    assert (log["status"], log["phone"]) == ("sent", "+5511912345678")
    [message] = world.messages()
    assert billing.invoice in message["text"]
    assert "nothing to do" in world.apply().out


def test_sync_billing_mirrors_a_missed_payment_and_enforce_unlocks(world: Scenario) -> None:
    billing = world.tenant_with_site(domains=[HOST])
    world.settle()
    billing = world.fail_payment(billing)
    world.advance(8 * DAY)
    assert world.apply().code == 0
    assert world.tenant_status("acme") == "soft_locked"

    world.pay(billing)  # no webhook reaches anyone
    run = world.lever("sync-billing", "--invoice", str(billing.invoice))
    assert run.code == 0, run.out + run.err
    [invoice] = world.rows("SELECT status FROM invoices WHERE id = ?", billing.invoice)
    assert invoice["status"] == "paid"
    assert world.tenant_status("acme") == "soft_locked"  # a sync is only a sync

    run = world.lever("enforce", "acme")
    assert run.code == 0, run.out + run.err
    assert "unlock tenant (soft_locked -> active)" in run.out
    assert world.tenant_status("acme") == "active"
    run = world.lever("enforce")
    assert run.code == 0 and "nothing to enforce" in run.out
    run = world.lever("sync-billing", "--subscription", billing.subscription)
    assert run.code == 0 and "looks current" in run.out


def test_apply_target_changes_only_that_resource(world: Scenario) -> None:
    world.tenant_with_site(domains=[HOST])
    world.settle()
    world.put_content("acme-home", 2, snapshot(title="Version two"))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    world.fleet.sites["acme-home"]["domains"].append({"hostname": "shop.acme.test"})

    plan = world.plan("--target", "Hostname/shop.acme.test")
    assert plan.code == 2 and "publish" not in plan.out.split("\n", 1)[0]
    run = world.apply("--target", "Hostname/SHOP.acme.test")
    assert run.code == 0, run.out + run.err
    assert "shop.acme.test" in world.hostnames()
    assert world.publishes("acme-home")[-1]["version_number"] == 1


def test_retry_dunning_resends_a_failed_step_once_the_gateway_knows_the_number(
    world: Scenario,
) -> None:
    phone = "+5511912345678"
    billing = world.tenant_with_site(domains=[HOST], phone=phone)
    world.settle()
    world.sandbox.evolution.set_on_whatsapp([phone], exists=False)
    billing = world.fail_payment(billing)
    assert world.apply().code == 1
    [log] = world.dunning_logs()
    assert log["status"] == "failed"

    world.sandbox.evolution.set_on_whatsapp([phone], exists=True)  # the customer registered it
    assert "nothing to do" in world.apply().out  # the same number: not retried by itself
    run = world.lever("retry-dunning", str(billing.invoice), "--step", "D0")
    assert run.code == 0, run.out + run.err
    assert "it was failed: invalid number" in run.out
    [log] = world.dunning_logs()
    assert log["status"] == "sent"
    assert len(world.messages()) == 1
    again = world.lever("retry-dunning", str(billing.invoice), "--step", "D0")
    assert again.code == 3 and "never sent twice" in again.out
