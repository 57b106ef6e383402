"""core/observe_scope: the planner's rules the observer asks what to build and look up."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.desired import derive
from reconciler.core.observe_scope import dns_check_due, hostnames_to_check, needs_build

from support.core import DAY, NOW, deployment, hostname, ledger, project, specs


def test_a_live_version_needs_no_build() -> None:
    assert not needs_build("acme-home", (), "production", 2, ledger(live=2), None, "")


def test_a_version_without_a_snapshot_needs_no_build() -> None:
    have = ledger(live=1, versions=frozenset({1}))
    assert not needs_build("acme-home", (), "production", 2, have, None, "")


def test_a_new_version_is_built_unless_production_can_roll_back_to_it() -> None:
    have = ledger(live=1, versions=frozenset({1, 2}))
    bare = project()
    built = project(deployments=(deployment("d2", version=2),))
    assert needs_build("acme-home", (), "production", 2, have, bare, "")
    assert needs_build("acme-home", (), "production", 2, have, None, "")
    assert not needs_build("acme-home", (), "production", 2, have, built, "")
    assert needs_build("acme-home", (), "preview", 2, have, built, "")  # no rollback there


def test_a_deployment_of_another_build_is_no_rollback_target() -> None:
    have = ledger(live=1, versions=frozenset({1, 2}))
    other = replace(deployment("d2", version=2), build="0123456789ab")
    have = replace(have, content_digests={2: "sha256:" + "c" * 64})
    assert needs_build("acme-home", (), "production", 2, have, project(deployments=(other,)), "b")


def test_dns_is_checked_when_stuck_or_late_only() -> None:
    fleet = specs(sites={"acme-home": {"domains": ["www.acme-home.com"]}})
    want = derive(fleet, {}, now=NOW).sites["acme-home"].hostnames[0]
    name = "www.acme-home.com"
    pending = hostname(name, status="pending", ssl_status="pending_validation", since=NOW - DAY)
    fresh = replace(pending, status_since=NOW - 60)
    failed = hostname(name, status="active", ssl_status="validation_timed_out", recreates=2)
    retrying = replace(failed, recreate_count=1)
    assert dns_check_due(want, pending, NOW)
    assert not dns_check_due(want, fresh, NOW)
    assert dns_check_due(want, failed, NOW)
    assert not dns_check_due(want, retrying, NOW)
    assert not dns_check_due(want, hostname(name), NOW)
    found = {name: pending}
    assert hostnames_to_check(fleet, ["acme-home"], found, NOW, 20) == [name]
    assert hostnames_to_check(fleet, ["acme-home"], found, NOW, 0) == []
    unowned = {name: replace(pending, owned=False)}
    assert hostnames_to_check(fleet, ["acme-home"], unowned, NOW, 20) == []
