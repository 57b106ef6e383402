"""Runbook 8, WhatsApp gateway failure: a disconnected instance, and a number not on WhatsApp.

While the Evolution instance is disconnected, due dunning steps wait (no send; the plan says
why) and every other action goes on; once it is connected again the step is sent exactly once.
A number that is not on WhatsApp fails its step once with a clear reason, never retried.
"""

from __future__ import annotations

from support.scenario import PHONE, Scenario, snapshot


def _sends(world: Scenario) -> list[dict[str, object]]:
    calls = world.sandbox.evolution.calls_since(0)
    return [c for c in calls if c["method"] == "POST" and "sendText" in str(c["path"])]


def test_a_disconnected_gateway_leaves_steps_pending_and_sends_them_once_reconnected(
    world: Scenario,
) -> None:
    billing = world.tenant_with_site(domains=["www.acme.test"])
    world.settle()
    billing = world.fail_payment(billing)
    world.sandbox.evolution.disconnect()
    world.put_content("acme-home", 2, snapshot({"type": "hero", "heading": "New menu"}))
    world.fleet.sites["acme-home"]["production"] = {"version": 2}

    run = world.apply()
    assert run.code == 0, run.out
    assert "dunning step D0 is due but waits" in run.out
    assert "instance sitebuilder is close" in run.out
    assert world.messages() == []
    assert _sends(world) == []
    assert "sync billing acme ... applied" in run.err  # other work proceeds
    assert "publish acme-home production v2 ... applied" in run.err
    assert world.dunning_logs() == []

    assert "dunning step D0 is due but waits" in world.apply().out  # still waiting
    assert world.messages() == []

    world.sandbox.evolution.connect()
    run = world.apply()
    assert run.code == 0, run.out
    [message] = world.messages()
    assert billing.invoice in message["text"]
    [log] = world.dunning_logs()
    assert (log["step_code"], log["status"]) == ("D0", "sent")
    assert "nothing to do" in world.apply().out
    assert len(world.messages()) == 1
    assert len(_sends(world)) == 1


def test_a_number_not_on_whatsapp_fails_its_step_once_and_is_never_retried(
    world: Scenario,
) -> None:
    billing = world.tenant_with_site(domains=["www.acme.test"])
    world.settle()
    world.fail_payment(billing)
    world.sandbox.evolution.set_on_whatsapp([PHONE], exists=False)

    run = world.apply()
    assert run.code == 1
    [log] = world.dunning_logs()
    assert (log["step_code"], log["status"]) == ("D0", "failed")
    assert log["error_message"].startswith("invalid number:")
    assert "5511912345678 is not on WhatsApp" in log["error_message"]
    assert "55119••••5678 is not on WhatsApp" in run.out  # the report masks the number
    assert len(_sends(world)) == 1

    for _ in range(2):
        assert "nothing to do" in world.apply().out
    assert len(_sends(world)) == 1
    assert world.messages() == []
    [log] = world.dunning_logs()
    assert log["status"] == "failed"
