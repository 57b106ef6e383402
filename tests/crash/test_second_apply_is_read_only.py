"""A second ``reconciler apply`` on a converged world makes no write call.

The crash world of ``conftest.py`` is converged by one ``apply`` (a subprocess, like every
run here) and, ten virtual minutes later when the new hostnames have validated, one more that
records their status in D1 ``domains``; a minute of virtual time later a second ``apply
--yes`` on the converged world runs. From the simulators'
call logs and a dump of D1 taken before and after it, the second run:

- sent only GETs to Cloudflare (D1 is the local SQLite file here, so no D1 query goes over
  the REST API; with ``D1_BACKEND=d1`` reads would be ``POST .../query`` and are not covered);
- called no ``sendText`` on the Evolution API;
- changed no row of the app tables (publish_versions, domains, dunning_step_logs, ...), and
  wrote nothing to the intent journal (``intents``) or its ``events``;
- printed the plan's "No changes." and exited 0.
"""

from __future__ import annotations

import pytest

from support.crash import APP_TABLES, CrashWorld, Run

LEDGER = ("intents", "events")


@pytest.fixture(scope="module")
def converged(crash_world: CrashWorld) -> CrashWorld:
    """The crash world after one successful apply (and a plan that agrees)."""
    crash_world.reset()
    first = crash_world.apply()
    assert first.code == 0, first.describe()
    # The hostnames it created validate within minutes; the next pass records their status
    # in D1 domains (record_hostname). Only then does D1 mirror the world.
    crash_world.sandbox.clock.advance(600)
    recorded = crash_world.apply()
    assert recorded.code == 0, recorded.describe()
    crash_world.sandbox.clock.advance(60)
    check = crash_world.plan()
    assert check.code == 0, check.describe()
    return crash_world


@pytest.fixture(scope="module")
def second(converged: CrashWorld) -> tuple[CrashWorld, Run, dict[str, object]]:
    """The second apply, with the call-log positions and D1 dump taken just before it."""
    world = converged
    sim = world.sandbox.cloudflare
    evolution = world.sandbox.evolution
    before: dict[str, object] = {
        "cloudflare_seq": max((c["seq"] for c in sim.calls_since(0)), default=0),
        "evolution_seq": max((c["seq"] for c in evolution.calls_since(0)), default=0),
        "messages": len(evolution.messages_since(0)),
        "d1": world.dump(APP_TABLES + LEDGER),
    }
    run = world.apply()
    return world, run, before


def test_the_second_apply_exits_0_saying_no_changes(
    second: tuple[CrashWorld, Run, dict[str, object]],
) -> None:
    _world, run, _before = second
    assert run.code == 0, run.describe()
    assert run.stdout.startswith("No changes."), run.describe()


def test_the_second_apply_sends_only_gets_to_cloudflare(
    second: tuple[CrashWorld, Run, dict[str, object]],
) -> None:
    world, run, before = second
    calls = world.sandbox.cloudflare.calls_since(int(str(before["cloudflare_seq"])))
    assert calls, "the second apply observed nothing (no Cloudflare call at all)"
    writes = [f"{c['method']} {c['path']}" for c in calls if c["method"] != "GET"]
    assert writes == [], run.describe()


def test_the_second_apply_sends_no_whatsapp_message(
    second: tuple[CrashWorld, Run, dict[str, object]],
) -> None:
    world, run, before = second
    evolution = world.sandbox.evolution
    calls = evolution.calls_since(int(str(before["evolution_seq"])))
    sends = [c for c in calls if "sendText" in c["path"]]
    assert sends == [], run.describe()
    assert len(evolution.messages_since(0)) == before["messages"]


def test_the_second_apply_changes_no_d1_row(
    second: tuple[CrashWorld, Run, dict[str, object]],
) -> None:
    world, run, before = second
    after = world.dump(APP_TABLES + LEDGER)
    dumped = before["d1"]
    assert isinstance(dumped, dict)
    for table in APP_TABLES + LEDGER:
        assert after[table] == dumped[table], f"{table} changed\n{run.describe()}"
