"""``reconciler plan`` end to end, in process: sandbox settings from the environment, exit codes,
the three formats, spec errors, an unmigrated database, and PR mode on a temporary Git repo."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reconciler.cli import main
from reconciler.core.render import GITHUB_COMMENT_LIMIT
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import load_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO_ROOT / "specs"


def _converged_module() -> ModuleType:
    name = "bench_converged"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "converged.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


converged = _converged_module()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox (no localstripe) whose settings are in the environment, D1 not migrated."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        for name, value in sandbox.settings_env().items():
            monkeypatch.setenv(name, value)
        for name in ("STRIPE_API_KEY", "STRIPE_API_BASE"):
            monkeypatch.delenv(name, raising=False)
        yield sandbox


def converge(world: Sandbox, specs_dir: Path = EXAMPLE_SPECS) -> None:
    converged.converge(world.cloudflare, world.cloudflare.d1_path, load_directory(specs_dir))
    world.cloudflare.clear_calls()


def plan(world: Sandbox, *args: str) -> int:
    return main(["plan", "--now", str(world.clock.now()), *args])


def routes(world: Sandbox) -> list[str]:
    return [f"{c['method']} {c['route']}" for c in world.cloudflare.calls_since(0)]


def test_a_converged_world_exits_0_with_no_changes(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    converge(world)
    assert plan(world, "--specs", str(EXAMPLE_SPECS)) == 0
    out = capsys.readouterr().out
    assert out.startswith("No changes.")
    assert world.cloudflare.config.token not in out


def test_a_missing_hostname_exits_2_and_the_json_is_versioned(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    converge(world)
    sim = world.cloudflare
    sim.hostnames.delete(sim.hostnames.by_name["shop.acmebakery.com"])
    assert plan(world, "--specs", str(EXAMPLE_SPECS), "--format", "json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["format_version"] == "1"
    assert [(a["kind"], a["target"]) for a in document["drift"] + document["changes"]] == [
        ("create_hostname", "Hostname/shop.acmebakery.com")
    ]


def test_blocked_by_policy_wins_over_changes_with_exit_3(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    converge(world)
    sim = world.cloudflare
    sim.hostnames.delete(sim.hostnames.by_name["shop.acmebakery.com"])  # a change
    sim.hostnames.delete(sim.hostnames.by_name["www.acmebakery.com"])
    sim.add_hostname("www.acmebakery.com")  # made by hand, no marker: a conflict
    assert plan(world, "--specs", str(EXAMPLE_SPECS), "--color", "never") == 3
    out = capsys.readouterr().out
    assert "1 blocked" in out
    assert "shop.acmebakery.com" in out


def test_markdown_fits_a_github_comment(
    world: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    converged.migrate_file(world.cloudflare.d1_path)  # empty world: everything to do
    out_file = tmp_path / "plan.md"
    code = plan(
        world, "--specs", str(EXAMPLE_SPECS), "--format", "markdown", "--out", str(out_file)
    )
    assert code == 2
    text = out_file.read_text(encoding="utf-8")
    assert text.startswith("### Reconciler plan")
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert capsys.readouterr().out == ""


def test_spec_errors_are_printed_like_validate_and_nothing_is_observed(
    world: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, specs)
    site = specs / "sites" / "acme-home.yaml"
    site.write_text(site.read_text().replace("tenant: acme", "tenant: nobody"))
    assert plan(world, "--specs", str(specs)) == 1
    captured = capsys.readouterr()
    assert "acme-home.yaml:" in captured.out
    assert "is invalid" in captured.err
    assert routes(world) == []


def test_an_unmigrated_database_exits_1_telling_to_migrate(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(world, "--specs", str(EXAMPLE_SPECS)) == 1
    assert "reconciler migrate" in capsys.readouterr().err


# --- PR mode -------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A Git repository holding the example fleet under specs/, one commit."""
    root = tmp_path / "fleet"
    shutil.copytree(EXAMPLE_SPECS, root / "specs")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "specs")
    git(root, "commit", "-q", "-m", "Example fleet")
    return root


def bump(repo: Path, version: int) -> str:
    site = repo / "specs" / "sites" / "acme-home.yaml"
    text = site.read_text()
    current = text.split("production: {version: ")[1].split("}")[0]
    site.write_text(
        text.replace(f"production: {{version: {current}}}", f"production: {{version: {version}}}")
    )
    git(repo, "commit", "-q", "-am", f"Bump acme-home to {version}")
    return git(repo, "rev-parse", "HEAD")


def test_pr_mode_observes_only_the_changed_site_and_separates_preexisting_drift(
    world: Sandbox, repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    converge(world, repo / "specs")
    sim = world.cloudflare
    # configured as docs/routing.md advises: no namespace lookup by title on each plan
    [table] = [ns.id for ns in sim.kv.namespaces.values() if ns.title == "sitebuilder-routes"]
    monkeypatch.setenv("ROUTING_KV_NAMESPACE_ID", table)
    sim.hostnames.delete(sim.hostnames.by_name["acmebakery.com"])  # drift before the PR
    base = git(repo, "rev-parse", "HEAD")
    head = bump(repo, 13)
    code = plan(world, "--repo", str(repo), "--base", base, "--head", head, "--format", "json")
    assert code == 2
    document = json.loads(capsys.readouterr().out)
    actions = {a["target"]: a for a in document["changes"] + document["drift"]}
    assert set(actions) == {"Site/acme-home:production", "Hostname/acmebakery.com"}
    assert actions["Hostname/acmebakery.com"]["preexisting"] is True
    assert actions["Site/acme-home:production"]["preexisting"] is False
    calls = routes(world)
    assert len(calls) <= 5  # the hostnames, their routing entries (one bulk get), Pages
    projects = {
        c["path"].split("/pages/projects/")[1].split("/")[0]
        for c in sim.calls_since(0)
        if "/pages/projects/" in c["path"]
    }
    assert projects == {"acme-home"}


def test_pr_mode_recognises_a_git_revert_of_a_version_bump(
    world: Sandbox, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bumped = bump(repo, 13)
    converge(world, repo / "specs")  # the bump was applied: 13 is live
    sim = world.cloudflare
    old = converged.seed_deployment(sim, "acme-home", site="acme-home", version=12)
    world.clock.advance(60)
    new = converged.seed_deployment(sim, "acme-home", site="acme-home", version=13)
    world.clock.advance(60)
    converged.set_live(sim.d1_path, "acme-home", version=13, deployment_id=new)
    sim.clear_calls()
    git(repo, "revert", "--no-edit", bumped)
    head = git(repo, "rev-parse", "HEAD")
    code = plan(world, "--repo", str(repo), "--base", bumped, "--head", head, "--format", "json")
    assert code == 2
    document = json.loads(capsys.readouterr().out)
    [action] = document["changes"]
    assert action["kind"] == "rollback"
    assert action["after"]["deployment_id"] == old
    assert action["annotation"] == f"reverts {bumped[:7]} (Bump acme-home to 13)"


def test_pr_mode_recognises_a_hand_made_revert_from_history(
    world: Sandbox, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bumped = bump(repo, 13)
    converge(world, repo / "specs")
    sim = world.cloudflare
    converged.seed_deployment(sim, "acme-home", site="acme-home", version=12)
    world.clock.advance(60)
    new = converged.seed_deployment(sim, "acme-home", site="acme-home", version=13)
    world.clock.advance(60)
    converged.set_live(sim.d1_path, "acme-home", version=13, deployment_id=new)
    head = bump(repo, 12)
    assert plan(world, "--repo", str(repo), "--base", bumped, "--head", head) == 2
    out = capsys.readouterr().out
    assert f"reverts {bumped[:7]} (Bump acme-home to 13)" in out


ACME_DOMAINS = """  domains:
    - hostname: www.acmebakery.com
    - hostname: acmebakery.com
      ssl: {method: txt}
"""


def test_pr_mode_names_the_commit_trailer_that_approves_a_deletion_over_the_cap(
    world: Sandbox, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    converge(world, repo / "specs")
    base = git(repo, "rev-parse", "HEAD")
    site = repo / "specs" / "sites" / "acme-home.yaml"
    text = site.read_text().replace("deletion_policy: retain", "deletion_policy: delete")
    site.write_text(text.replace(ACME_DOMAINS, "  domains: []\n"))
    git(repo, "commit", "-q", "-am", "acme-home: drop its domains")
    args = ("--repo", str(repo), "--base", base, "--head", "HEAD", "--format", "markdown")
    assert plan(world, *args) == 3  # two of the tenant's three hostnames: over the cap
    assert "`Approve-Deletion: Site/acme-home`" in capsys.readouterr().out
    git(
        repo,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Approve removing acme-home's domains\n\nApprove-Deletion: Site/acme-home",
    )
    approver = git(repo, "rev-parse", "HEAD")[:12]
    assert plan(world, *args) == 2
    comment = capsys.readouterr().out
    assert f"approved by commit {approver} (Approve removing acme-home's domains)" in comment
