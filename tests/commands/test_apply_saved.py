"""``apply --plan``: signed saved plans, re-checked against a fresh plan (core/plan_json.py 5-6).

The sandbox is converged to the example fleet and one hostname deleted, so a plan has one
action (create ``shop.acmebakery.com``). Handlers are fakes that record their calls
(``WriterWorld.handlers``), so "nothing ran" is ``fake.calls == []``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.core.plan import OWNER_MARKER, ActionKind, action_identity
from reconciler.core.plan_json import SIGNATURE_FIELD, signed_json
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.wiring import WriterWorld

from support.execute import FakeHandler, handlers_for, rows
from support.plan import EXAMPLE_SPECS, converged, example_specs

KEY = "test-plan-key-0123456789"
ATTACKER = "evil-origin.attackers.com"
FOREIGN = "shop.theirbakery.com"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A converged sandbox with one hostname deleted; the plan key in the environment."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        for name, value in sandbox.settings_env().items():
            monkeypatch.setenv(name, value)
        for name in ("STRIPE_API_KEY", "STRIPE_API_BASE", "RECONCILER_CRASH_AT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("RECONCILER_PLAN_KEY", KEY)
        converged.converge(sandbox.cloudflare, sandbox.cloudflare.d1_path, example_specs())
        sim = sandbox.cloudflare
        sim.hostnames.delete(sim.hostnames.by_name["shop.acmebakery.com"])
        sim.hostnames.create({"hostname": FOREIGN}, 0.0)  # someone else's: no ownership marker
        yield sandbox


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHandler:
    handler = FakeHandler("cloudflare")
    monkeypatch.setattr(WriterWorld, "handlers", lambda self: handlers_for(handler))
    return handler


def save(world: Sandbox, path: Path) -> int:
    return main(["plan", "--now", str(world.clock.now()), "--specs", str(EXAMPLE_SPECS),
                 "--format", "json", "--out", str(path)])  # fmt: skip


def apply_saved(world: Sandbox, path: Path) -> int:
    return main(["apply", "--now", str(world.clock.now()), "--specs", str(EXAMPLE_SPECS),
                 "--plan", str(path), "--yes"])  # fmt: skip


def intents(world: Sandbox) -> list[dict[str, object]]:
    return rows(world.cloudflare.d1_path, "SELECT * FROM intents")


def saved_plan(world: Sandbox, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "plan.json"
    assert save(world, path) == 2
    return path, json.loads(path.read_text())


def forge(document: dict[str, Any], item: dict[str, Any]) -> None:
    """What an attacker does: fix the id to match the edit and list it in ``order``."""
    old = item.get("id")
    item["id"] = action_identity(ActionKind(item["kind"]), item["target"], item["after"])
    document["order"] = [item["id"] if i == old else i for i in document["order"]]
    if old is None:
        document["order"].append(item["id"])


def hostname_edit(document: dict[str, Any]) -> dict[str, Any]:
    [item] = document["changes"] + document["drift"]
    item["after"]["origin"] = ATTACKER
    forge(document, item)
    return document


def foreign_delete(world: Sandbox, document: dict[str, Any]) -> dict[str, Any]:
    """A forged delete of the hostname someone else made (no ownership marker)."""
    hostname_id = world.cloudflare.hostnames.by_name[FOREIGN]
    item = {
        "kind": "delete_hostname",
        "target": f"Hostname/{FOREIGN}",
        "tenant": None,
        "site": None,
        "before": {},
        "after": {"id": hostname_id, "hostname": FOREIGN, "site": None},
        "reason": f"it carries our ownership marker ({OWNER_MARKER})",
        "source": None,
        "cause": "change",
        "lane": "change",
        "depends_on": [],
        "predicted_calls": {},
    }
    document["changes"].append(item)
    forge(document, item)
    return document


def test_a_signed_saved_plan_is_applied_when_the_world_is_unchanged(
    world: Sandbox, fake: FakeHandler, tmp_path: Path
) -> None:
    path, planned = saved_plan(world, tmp_path)
    assert planned[SIGNATURE_FIELD].startswith("hmac-sha256:")
    assert apply_saved(world, path) == 0
    assert [action_id for action_id, _ in fake.calls] == planned["order"]


def test_without_a_key_a_plan_is_not_saved_and_no_saved_plan_is_applied(
    world: Sandbox,
    fake: FakeHandler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = saved_plan(world, tmp_path)
    monkeypatch.delenv("RECONCILER_PLAN_KEY")
    assert save(world, tmp_path / "unsigned.json") == 1
    assert "refusing to save an unsigned plan: set RECONCILER_PLAN_KEY" in capsys.readouterr().err
    assert not (tmp_path / "unsigned.json").exists()
    assert apply_saved(world, path) == 1
    assert "apply --plan needs RECONCILER_PLAN_KEY" in capsys.readouterr().err
    assert fake.calls == []


def test_an_unsigned_plan_and_one_signed_with_another_key_are_refused(
    world: Sandbox, fake: FakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, document = saved_plan(world, tmp_path)
    del document[SIGNATURE_FIELD]
    path.write_text(json.dumps(document))
    assert apply_saved(world, path) == 1
    assert "the saved plan is not signed" in capsys.readouterr().err
    path.write_text(signed_json(document, "another-key"))
    assert apply_saved(world, path) == 1
    assert "signature does not match" in capsys.readouterr().err
    assert fake.calls == []


def test_a_stale_saved_plan_is_refused_and_nothing_runs(
    world: Sandbox, fake: FakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = saved_plan(world, tmp_path)
    sim = world.cloudflare
    sim.hostnames.delete(sim.hostnames.by_name["www.acmebakery.com"])  # the world moves on
    assert apply_saved(world, path) == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert "run `reconciler plan` again" in err
    assert fake.calls == []
    assert intents(world) == []


def test_the_forgery_with_ids_recomputed_is_refused_by_its_signature(
    world: Sandbox, fake: FakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's forgery: ids recomputed, origin pointed at an attacker, a foreign delete."""
    path, document = saved_plan(world, tmp_path)
    path.write_text(json.dumps(foreign_delete(world, hostname_edit(document))))
    assert apply_saved(world, path) == 1
    assert "signature does not match" in capsys.readouterr().err
    assert fake.calls == []
    assert intents(world) == []


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda world, doc: hostname_edit(doc), "with other values instead"),
        (foreign_delete, "does not call for it (no spec asks for it, or the object is not ours)"),
    ],
    ids=["origin-to-attacker", "delete-a-hostname-we-do-not-own"],
)
def test_a_forged_action_signed_with_the_key_is_refused_by_the_fresh_plan(
    world: Sandbox,
    fake: FakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Any,
    reason: str,
) -> None:
    """Even with the key (a leaked key, an insider), only what a fresh plan allows runs."""
    path, document = saved_plan(world, tmp_path)
    forged = edit(world, document)
    forged.pop(SIGNATURE_FIELD)
    path.write_text(signed_json(forged, KEY))
    assert apply_saved(world, path) == 1
    err = capsys.readouterr().err
    assert "is refused" in err
    assert reason in err
    assert "nothing was applied" in err
    assert ATTACKER not in str(fake.calls)
    assert fake.calls == []
    assert intents(world) == []
