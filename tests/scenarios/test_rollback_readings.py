"""A revert rolls back and stays converged under both readings of ``canonical_deployment``.

After a rollback, Cloudflare's project ``canonical_deployment`` is either the deployment now
serving production (the rollback target) or the most recent production deployment, which a
rollback does not change: unconfirmed (CONTRACT.md §9 item 3). The simulator plays each
reading (``canonical_after_rollback``); the rollback completes, the site serves the old version,
and the next plan has nothing to do, so no reading makes the reconciler roll back forever.
"""

from __future__ import annotations

import pytest

from reconciler.providers.cloudflare_models import DeploymentTag

from support.scenario import Scenario


def _serving(world: Scenario) -> int | None:
    """The version of the deployment the Pages simulator serves production from."""
    tag = DeploymentTag.parse(world.live_deployment("acme-home").commit_message)
    return tag.version if tag is not None else None


@pytest.mark.parametrize("reading", ["live", "latest"])
def test_a_revert_rolls_back_and_converges_under_either_reading(
    world: Scenario, reading: str
) -> None:
    world.sandbox.cloudflare.configure(canonical_after_rollback=reading)
    world.tenant_with_site(version=1, domains=())
    assert world.settle().code == 0
    assert _serving(world) == 1
    world.fleet.sites["acme-home"]["production"] = {"version": 2}
    assert world.apply().code == 0
    assert _serving(world) == 2

    world.advance(60)  # the revert comes a minute later
    world.fleet.sites["acme-home"]["production"] = {"version": 1}  # the revert
    run = world.apply()
    assert run.code == 0, run.out + run.err
    assert "roll production back to version 1" in run.out
    assert _serving(world) == 1
    [live] = world.rows(
        "SELECT version_number FROM publish_versions WHERE site_id = 'acme-home' "
        "AND environment = 'production' AND status = 'live'"
    )
    assert live["version_number"] == 1
    again = world.apply()
    assert again.code == 0 and "nothing to do" in again.out, again.out
    assert world.plan().out.startswith("No changes"), world.plan().out
