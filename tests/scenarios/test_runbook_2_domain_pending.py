"""Runbook 2, domain stuck in pending: the customer's DNS does not point at the SaaS target.

``apply`` creates the hostname, retries validation after ``validation_timeout``, recreates it
when its certificate validation times out (``recreate_count`` grows) up to ``max_recreates``,
then stops with a Stuck condition naming the DNS record the customer must set. Once the
customer points the DNS, the next re-check brings it to ``active`` with no other human step.
The simulator's validation window is shortened to two days so each timeout is one jump.
"""

from __future__ import annotations

from reconciler.core.observed import domain_status

from support.scenario import DAY, Scenario

HOST = "www.acme.test"


def _status(world: Scenario) -> tuple[str, str]:
    shown = world.hostname(HOST)
    assert shown is not None
    return str(shown["status"]), str(shown["ssl"]["status"])


def _mirrored(world: Scenario) -> bool:
    """Whether the domains row reads what Cloudflare shows (runbook 2's query)."""
    status, ssl_status = _status(world)
    return world.domain(HOST)["status"] == domain_status(status, ssl_status)


def test_an_unpointed_domain_is_retried_recreated_then_stuck_and_recovers_once_pointed(
    world: Scenario,
) -> None:
    world.sandbox.cloudflare.configure(validation_window=2 * DAY)
    world.tenant_with_site(domains=[HOST], pointed=False)

    run = world.apply()
    assert run.code == 0, run.out
    assert _status(world)[0] == "pending"
    first_id = world.domain(HOST)["custom_hostname_id"]
    assert world.domain(HOST)["status"] == "pending_validation"

    world.advance(2 * 3600)  # pending, but within the 24 h validation timeout
    assert "nothing to do" in world.apply().out

    world.advance(23 * 3600)
    run = world.apply()
    assert "retry validation www.acme.test ... applied" in run.err
    assert world.domain(HOST)["retry_count"] == 1
    assert world.domain(HOST)["custom_hostname_id"] == first_id

    for count in (1, 2):
        world.advance(2 * DAY + 3600)
        assert _status(world) == ("moved", "validation_timed_out")
        run = world.apply()
        assert f"(recreation {count} of 2)" in run.out
        assert f"recreate hostname {HOST} ... applied" in run.err
        row = world.domain(HOST)
        assert row["recreate_count"] == count
        assert row["custom_hostname_id"] != first_id
        assert world.hostnames() == [HOST]  # deleted and created again, never duplicated

    world.advance(2 * DAY + 3600)
    assert _status(world) == ("moved", "validation_timed_out")
    mark = world.cf_seq()
    run = world.apply("--format", "json")
    assert run.code == 3
    [blocked] = run.json()["plan"]["blocked"]
    assert blocked["gate"] == "stuck"
    assert blocked["target"] == f"Hostname/{HOST}"
    assert "after 2 recreations (max 2)" in blocked["reason"]
    target = world.sandbox.cloudflare_config.cname_target
    assert f"a CNAME record for {HOST} to {target}" in blocked["reason"]
    # The sandbox DNS was looked up (DNS_RESOLVER=sandbox): the reason says what is wrong.
    assert f"DNS check: {HOST} has no CNAME (expected a CNAME to {target})" in blocked["reason"]
    assert "does not CNAME to this zone" in blocked["reason"]
    deletes = [c for c in world.cf_calls(mark) if c["method"] in ("DELETE", "POST")]
    assert [c for c in deletes if "custom_hostnames" in c["path"]] == []  # no more recreations
    assert world.domain(HOST)["recreate_count"] == 2
    # While stuck, validation is re-triggered once per timeout (a PATCH; nothing deleted).
    assert f"retry validation {HOST} ... applied" in run.err
    # Between re-checks the domains row keeps mirroring what Cloudflare shows.
    world.advance(2 * 3600)
    world.apply()
    assert _mirrored(world), (world.domain(HOST), _status(world))

    # The customer fixes the DNS the Stuck condition names; a re-check validates it.
    world.sandbox.cloudflare.point_dns(HOST)
    world.advance(DAY + 3600)
    assert world.apply().code in (0, 3)
    world.advance(60)
    assert _status(world) == ("active", "active")
    assert "nothing to do" in world.converge().out
    row = world.domain(HOST)
    assert (row["status"], row["ssl_status"]) == ("active", "active")
    assert row["custom_hostname_id"] == world.hostname(HOST)["id"]  # type: ignore[index]
    assert row["recreate_count"] == 2
    assert world.hostnames() == [HOST]


def test_a_pointed_domain_validates_without_any_retry(world: Scenario) -> None:
    world.tenant_with_site(domains=[HOST], pointed=True)
    assert world.apply().code == 0
    assert world.domain(HOST)["status"] != "active"  # recorded as Cloudflare answered the create
    world.advance(600)
    assert _status(world) == ("active", "active")
    run = world.apply()
    assert f"record hostname {HOST} ... applied" in run.err, run.out
    row = world.domain(HOST)
    assert (row["status"], row["ssl_status"]) == ("active", "active")
    assert "nothing to do" in world.apply().out
    assert world.domain(HOST)["retry_count"] == 0
    assert world.domain(HOST)["recreate_count"] == 0


def test_the_dcv_txt_record_an_operator_digs_for_is_stored_in_domains(world: Scenario) -> None:
    world.sandbox.cloudflare.configure(validation_window=2 * DAY)
    world.tenant_with_site(domains=[HOST], pointed=False)
    world.fleet.sites["acme-home"]["domains"] = [{"hostname": HOST, "ssl": {"method": "txt"}}]
    assert world.apply().code == 0
    world.advance(600)
    world.apply()
    shown = world.hostname(HOST)
    assert shown is not None
    [record] = shown["ssl"]["validation_records"]
    row = world.domain(HOST)
    # runbook 2: `dig _acme-challenge.<host> TXT` is compared with what domains records
    assert row["dcv_txt_name"] == record["txt_name"] == f"_acme-challenge.{HOST}"
    assert row["dcv_txt_value"] == record["txt_value"]
    assert row["verification_token"] == shown["ownership_verification"]["value"]
