"""Stuck and late hostnames: the plan's reason says what the customer's DNS is missing.

The observer looks DNS up for hostnames that are stuck or past their validation timeout and
records what it found on ``ObservedHostname`` (``dns_checked``, ``dns_cname``, ``dns_txt``);
``Observed.cname_target`` is the zone's SaaS target it compared with. Literal inputs only.
"""

from __future__ import annotations

from dataclasses import replace

from test_plan import converged_world, plan_for

from reconciler.core.plan import ActionKind, Plan

from support.core import DAY, NOW, hostname

HOST = "www.acme-home.com"
TARGET = "customers.saas.test"
TXT_DOMAIN = [HOST + "\n      ssl: {method: txt}"]  # the builder writes one YAML line per domain


def stuck(**changes: object) -> dict[str, object]:
    have = replace(
        hostname(HOST, status="moved", ssl_status="validation_timed_out", recreates=3),
        status_since=NOW - 3600,  # re-checked an hour ago: no retry this pass
        recorded_status="failed",
        recorded_ssl_status="validation_timed_out",
        **changes,
    )
    return {"hostnames": {HOST: have}, "cname_target": TARGET}


def stuck_reason(plan: Plan) -> str:
    [blocked] = plan.blocked
    assert blocked.gate == "stuck"
    return blocked.reason


def test_a_stuck_hostname_without_a_cname_is_told_which_record_to_add() -> None:
    plan = plan_for(converged_world(**stuck(dns_checked=True, dns_cname=None)))
    reason = stuck_reason(plan)
    assert f"{HOST} has no CNAME (expected a CNAME to {TARGET})" in reason
    assert f"a CNAME record for {HOST} to {TARGET}" in reason


def test_a_cname_to_another_host_is_named_with_the_expected_target() -> None:
    plan = plan_for(converged_world(**stuck(dns_checked=True, dns_cname="other.host")))
    assert f"CNAME points to other.host, expected {TARGET}" in stuck_reason(plan)


def test_a_right_cname_is_reported_as_right() -> None:
    plan = plan_for(converged_world(**stuck(dns_checked=True, dns_cname=TARGET)))
    assert f"{HOST}'s CNAME points to {TARGET} as expected" in stuck_reason(plan)


def test_without_a_dns_check_the_instructions_stay_generic() -> None:
    world = converged_world(**stuck())
    reason = stuck_reason(plan_for(world))
    assert "DNS check" not in reason and "has no CNAME" not in reason
    assert f"a CNAME record for {HOST} to {TARGET}" in reason
    unknown = replace(world, cname_target=None)
    assert "to the zone's SaaS target" in stuck_reason(plan_for(unknown))


def test_a_cname_without_a_known_target_is_reported_as_found() -> None:
    world = replace(
        converged_world(**stuck(dns_checked=True, dns_cname="other.host")), cname_target=None
    )
    reason = stuck_reason(plan_for(world))
    assert f"{HOST}'s CNAME points to other.host" in reason


def test_txt_validation_names_the_exact_txt_record_and_what_dns_holds() -> None:
    txt = {"txt_name": f"_cf-custom-hostname.{HOST}", "txt_value": "0e9a-token"}
    missing = plan_for(
        converged_world(**stuck(dns_checked=True, dns_cname=TARGET, **txt)),
        domains=TXT_DOMAIN,
    )
    reason = stuck_reason(missing)
    assert f'the TXT record _cf-custom-hostname.{HOST} = "0e9a-token"' in reason
    assert f"TXT _cf-custom-hostname.{HOST} is missing" in reason
    wrong = plan_for(
        converged_world(**stuck(dns_checked=True, dns_cname=TARGET, dns_txt=("old",), **txt)),
        domains=TXT_DOMAIN,
    )
    assert f'TXT _cf-custom-hostname.{HOST} holds "old", expected "0e9a-token"' in (
        stuck_reason(wrong)
    )
    right = plan_for(
        converged_world(
            **stuck(dns_checked=True, dns_cname=TARGET, dns_txt=("0e9a-token",), **txt)
        ),
        domains=TXT_DOMAIN,
    )
    assert f"TXT _cf-custom-hostname.{HOST} holds the expected value" in stuck_reason(right)


def test_a_late_pending_hostname_gets_the_dns_finding_in_its_retry_reason() -> None:
    world = converged_world(
        hostnames={
            HOST: replace(
                hostname(HOST, status="pending", ssl_status="pending_validation"),
                status_since=NOW - 2 * DAY,
                recorded_status="pending_validation",
                dns_checked=True,
                dns_cname=None,
            )
        },
        cname_target=TARGET,
    )
    [action] = plan_for(world).actions
    assert action.kind is ActionKind.RETRY_VALIDATION
    assert f"{HOST} has no CNAME (expected a CNAME to {TARGET})" in action.reason


def test_the_dns_finding_does_not_change_the_action_id() -> None:
    base = converged_world(
        hostnames={
            HOST: replace(
                hostname(HOST, status="pending", ssl_status="pending_validation"),
                status_since=NOW - 2 * DAY,
            )
        }
    )
    checked = replace(
        base,
        hostnames={HOST: replace(base.hostnames[HOST], dns_checked=True, dns_cname="x.test")},
        cname_target=TARGET,
    )
    assert [a.id for a in plan_for(base).actions] == [a.id for a in plan_for(checked).actions]
