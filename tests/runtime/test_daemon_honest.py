"""The daemon says what is true (issue 12): a blocked deletion is not Synced, shows in the
metrics and the log, keeps its commit from being reported converged, and goes ahead once a
commit approves it in Git; an invalid head is a condition of the source."""

from __future__ import annotations

import logging

import pytest

from support.daemon import DaemonFactory, Fleet, Running, wait_for

SITE_FILE = "specs/sites/acme-home.yaml"
DOMAINS = """  domains:
    - hostname: www.acmebakery.com
    - hostname: acmebakery.com
      ssl: {method: txt}
"""
GONE = ("Hostname/www.acmebakery.com", "Hostname/acmebakery.com")


async def converged_start(running: Running, fleet: Fleet) -> None:
    await wait_for(fleet.converged, within=90.0, what="the first full pass to converge")
    await wait_for(lambda: not running.daemon.queue.processing, what="the passes to finish")


def synced(fleet: Fleet, resource: str) -> dict[str, object] | None:
    rows = fleet.rows(
        "SELECT status, reason, message FROM resource_status "
        "WHERE resource = ? AND condition_type = 'Synced'",
        resource,
    )
    return rows[0] if rows else None


def hostnames(fleet: Fleet) -> set[str]:
    sim = fleet.sandbox.cloudflare
    with sim.lock:
        return set(sim.hostnames.by_name)


async def test_a_blocked_deletion_is_not_synced_then_approved_in_git_and_applied(
    fleet: Fleet, start_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.runtime.loop")
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        # Two of the tenant's three hostnames, from a site it keeps: over the cap.
        fleet.edit(SITE_FILE, "deletion_policy: retain", "deletion_policy: delete")
        fleet.edit(SITE_FILE, DOMAINS, "  domains: []\n")
        removal = fleet.commit("acme-home: drop its domains")
        assert (await running.push_webhook(fleet)).status_code == 202

        def blocked() -> bool:
            return all(
                (row := synced(fleet, key)) is not None and row["status"] == "False"
                for key in (*GONE, "Site/acme-home")
            )

        await wait_for(blocked, within=30.0, what="Synced=False on the blocked deletions")
        for key in (*GONE, "Site/acme-home"):
            row = synced(fleet, key)
            assert row is not None and row["reason"] == "BlastRadius", row
            assert "Approve-Deletion: Site/acme-home" in str(row["message"])
        counted = 'reconciler_blocked_resources{reason="BlastRadius"} 3.0'
        # The gauges follow the rows within the same pass: wait for the pass to publish them.
        await wait_for(
            lambda: counted in running.world.metrics.render().decode(), what="the gauges"
        )
        warnings = [r for r in caplog.records if r.getMessage() == "resources not synced"]
        assert warnings and "BlastRadius" in str(getattr(warnings[-1], "resources", ""))
        await wait_for(lambda: not running.daemon.queue.processing, what="the passes to finish")
        assert removal not in running.daemon.converged  # blocked is not converged
        assert {"www.acmebakery.com", "acmebakery.com"} <= hostnames(fleet)

        fleet.repo.git.commit(
            "--allow-empty",
            "-q",
            "-m",
            "Approve removing acme-home's domains\n\nApprove-Deletion: Site/acme-home",
        )
        approval = fleet.push()
        assert (await running.push_webhook(fleet)).status_code == 202
        await wait_for(
            lambda: not {"www.acmebakery.com", "acmebakery.com"} & hostnames(fleet),
            within=30.0,
            what="the approved deletions",
        )
        await wait_for(lambda: approval in running.daemon.converged, what="convergence")
        for key in GONE:
            assert synced(fleet, key) is None  # gone from the specs and the world
        site = synced(fleet, "Site/acme-home")
        assert site is not None and site["status"] == "True", site
        await wait_for(
            lambda: (
                'blocked_resources{reason="BlastRadius"}'
                not in running.world.metrics.render().decode()
            ),
            what="the gauges to drop the deletions",
        )


async def test_an_invalid_head_is_a_condition_of_the_source_and_the_last_good_commit_stays(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        good = fleet.repo.head.commit.hexsha
        fleet.edit(SITE_FILE, "tenant: acme", "tenant: nobody")
        bad = fleet.commit("acme-home: a typo")
        assert (await running.push_webhook(fleet)).status_code == 202

        def refused() -> bool:
            rows = fleet.rows(
                "SELECT status FROM resource_status WHERE resource = 'Source/main' "
                "AND condition_type = 'SpecsValid'"
            )
            return bool(rows) and rows[0]["status"] == "False"

        await wait_for(refused, within=30.0, what="SpecsValid=False on the source")
        [row] = fleet.rows(
            "SELECT reason, message, last_error, observed_commit FROM resource_status "
            "WHERE resource = 'Source/main'"
        )
        assert row["reason"] == "InvalidSpecs"
        assert row["observed_commit"] == bad
        assert f"still serving {good[:12]}" in row["message"]
        assert "specs/sites/acme-home.yaml:" in row["last_error"]  # file:line problems
        ready = await running.http.get("/readyz")
        assert ready.status_code == 200  # the last good commit is still served
        source = ready.json()["details"]["source"]
        assert source["valid"] is False and source["serving"] == good
        assert source["refused"] == bad
        assert any("acme-home.yaml:" in problem for problem in source["problems"])
        metrics = running.world.metrics.render().decode()
        assert "reconciler_specs_valid 0.0" in metrics
        assert running.daemon.specs is not None and running.daemon.specs.revision == good


def _converged_sum(running: Running) -> float:
    for line in running.world.metrics.render().decode().splitlines():
        if line.startswith("reconciler_commit_to_converged_seconds_sum"):
            return float(line.split()[-1])
    return 0.0


async def test_commit_to_converged_counts_from_the_commits_own_time(
    fleet: Fleet, start_daemon: DaemonFactory
) -> None:
    async with start_daemon(interval=3600.0) as running:
        await converged_start(running, fleet)
        await wait_for(lambda: _converged_sum(running) > 0, what="the first commit's figure")
        before = _converged_sum(running)
        fleet.edit(SITE_FILE, "production: {version: 12}", "production: {version: 13}")
        fleet.repo.git.add("-A")
        # Committed ten minutes before the daemon hears of it (a slow CI, a missed webhook).
        stamp = f"@{int(fleet.sandbox.clock.now()) - 600} +0000"
        fleet.repo.git.commit(
            "-q", "-m", "acme-home: publish version 13", env={"GIT_COMMITTER_DATE": stamp}
        )
        commit = fleet.push()
        assert (await running.push_webhook(fleet)).status_code == 202
        await wait_for(lambda: commit in running.daemon.converged, within=60.0, what="v13")
        assert running.daemon.converged[commit] < 60.0  # seconds since it was seen
        assert _converged_sum(running) - before >= 600.0  # seconds since it was committed
