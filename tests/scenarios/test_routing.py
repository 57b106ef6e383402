"""Routing through the dispatch Worker, end to end through the CLI against the sandbox.

On the simulated ordinary account (no custom metadata, no custom origins: the simulator refuses
both), a whole apply sends neither field; the routing table serves each site, the suspension
page on a hard lock, and loses the entry of a deleted hostname; a hostname someone else made in
the zone is never routed, changed or deleted, even when a spec names it (docs/routing.md).
"""

from __future__ import annotations

from typing import Any

from support.scenario import Scenario

HOST = "www.acmebakery.com"
APEX = "acmebakery.com"
SERVE = {"action": "serve", "project": "acme-home", "site": "acme-home", "tenant": "acme"}


def _sent_fields(calls: list[dict[str, Any]]) -> set[str]:
    """Every top-level field any JSON request body of ``calls`` carried."""
    found: set[str] = set()
    for call in calls:
        body = call.get("request_json")
        items = body if isinstance(body, list) else [body]
        for item in items:
            if isinstance(item, dict):
                found.update(item)
    return found


def test_a_whole_apply_on_an_ordinary_account_sends_no_metadata_and_no_origin(
    world: Scenario,
) -> None:
    config = world.sandbox.cloudflare.config
    assert not config.entitled_custom_metadata and not config.entitled_custom_origin
    world.tenant_with_site(domains=[HOST, APEX])
    run = world.settle()
    assert run.code == 0, run.out + run.err
    fields = _sent_fields(world.cf_calls(0))
    assert "hostname" in fields  # the creates were logged and looked at
    assert "custom_metadata" not in fields
    assert "custom_origin_server" not in fields
    assert world.route(HOST) == SERVE and world.route(APEX) == SERVE
    for name in (HOST, APEX):
        shown = world.hostname(name)
        assert shown is not None and not shown.get("custom_origin_server")
        assert world.domain(name)["custom_hostname_id"] == shown["id"]


def test_a_deleted_hostname_loses_its_routing_entry(world: Scenario) -> None:
    world.tenant_with_site(domains=[HOST, APEX])
    world.fleet.sites["acme-home"]["deletion_policy"] = "delete"
    assert world.settle().code == 0
    world.fleet.sites["acme-home"]["domains"] = [{"hostname": HOST}]
    run = world.apply()
    assert run.code == 0, run.out + run.err
    assert world.hostname(APEX) is None
    assert world.route(APEX) is None and world.route(HOST) == SERVE
    assert world.domain(APEX)["status"] == "deleted"


def test_someone_elses_hostname_is_never_routed_changed_or_deleted_even_when_named(
    world: Scenario,
) -> None:
    world.tenant_with_site(domains=[HOST])
    theirs = world.sandbox.cloudflare.add_hostname(APEX)  # made by hand in the zone
    world.fleet.sites["acme-home"]["domains"] = [{"hostname": HOST}, {"hostname": APEX}]
    world.fleet.sites["acme-home"]["deletion_policy"] = "delete"
    first = world.apply()
    assert "conflict" in world.plan().out
    assert first.code != 0 or "conflict" in first.out
    assert world.route(APEX) is None
    world.fleet.sites["acme-home"]["domains"] = [{"hostname": HOST}]  # and removed again
    world.apply()
    shown = world.hostname(APEX)
    assert shown is not None and shown["id"] == theirs["id"]
    assert world.route(APEX) is None
    deletes = [
        c for c in world.cf_calls(0) if c["method"] == "DELETE" and "custom_hostnames" in c["route"]
    ]
    assert deletes == []
