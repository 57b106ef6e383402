"""``reconciler validate`` and ``reconciler schemas``: exit codes and output formats."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import git
import pytest

from reconciler.cli import main

from support.spec import EXAMPLE_SPECS, REPO_ROOT, site, write


def test_valid_specs_exit_0_with_a_one_line_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out == (
        "specs/ is valid: 3 tenants, 2 policies, 5 sites, 8 domains\n"
    )


def test_invalid_specs_exit_1_and_print_every_problem(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(specs, "sites/x.yaml", site("x", "acme..com", tenant="nobody"))
    write(specs, "bomb.yaml", "a: &a [1]\nb: [*a, *a]\nc: [\n")
    assert main(["validate", str(specs)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "specs/bomb.yaml:4:1: malformed YAML: did not find expected node content "
        "(while parsing a flow node on line 4)",
        "specs/sites/x.yaml:10:7: Site/x: spec.domains[0].hostname: 'acme..com' is not a valid "
        "hostname (empty label)",
    ]
    assert captured.err.endswith("is invalid: 2 problems\n")
    assert "Traceback" not in captured.err


def test_json_output_is_a_stable_object_with_a_problems_list(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(specs, "sites/x.yaml", site("x", "x.example.com", tenant="nobody"))
    assert main(["validate", str(specs), "--format", "json"]) == 1
    output = json.loads(capsys.readouterr().out)
    assert output["valid"] is False
    assert output["problems"] == [
        {
            "path": "specs/sites/x.yaml",
            "line": 6,
            "column": 3,
            "subject": "Site/x",
            "field": "spec.tenant",
            "message": "Tenant 'nobody' is not defined",
        }
    ]


def test_json_output_of_valid_specs_carries_the_counts(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(specs), "--format", "json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["valid"] is True
    assert output["problems"] == []
    assert output["summary"] == {"tenants": 3, "policies": 2, "sites": 5, "domains": 8}


def test_a_missing_directory_exits_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "none")]) == 1
    assert "is not a directory of specs" in capsys.readouterr().err


def test_validate_reads_a_git_commit_with_repo_and_ref(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = git.Repo.init(tmp_path)
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    repository.git.add("-A")
    repository.git.commit("-q", "-m", "fleet", author="T <t@example.invalid>")
    sha = repository.head.commit.hexsha
    assert main(["validate", "--repo", str(tmp_path), "--ref", sha[:10]]) == 0
    assert capsys.readouterr().out == (
        f"specs/ at {sha[:10]} is valid: 3 tenants, 2 policies, 5 sites, 8 domains\n"
    )
    assert main(["validate", "--repo", str(tmp_path), "--ref", "nope"]) == 1
    assert "unknown Git ref 'nope'" in capsys.readouterr().err


def test_the_installed_command_exits_1_on_bad_specs_without_a_traceback(specs: Path) -> None:
    write(specs, "sites/x.yaml", "\x00binary")
    command = REPO_ROOT / ".venv" / "bin" / "reconciler"
    if not command.exists():
        pytest.skip(f"{command} is not installed (run make install)")
    completed = subprocess.run(
        [str(command), "validate", str(specs)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 1
    assert completed.stdout.startswith("specs/sites/x.yaml: binary file")
    assert "Traceback" not in completed.stderr
    completed = subprocess.run(
        [str(command), "validate", "specs"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("specs/ is valid: ")


def test_schemas_writes_one_file_per_kind_and_the_content_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "billingpolicy.schema.json",
        "content.schema.json",
        "site.schema.json",
        "tenant.schema.json",
        "worker.schema.json",
    ]
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("unchanged") == 5


def test_the_file_size_limit_can_be_set_on_the_command_line(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(specs), "--max-file-bytes", "200"]) == 1
    out = capsys.readouterr().out
    assert "specs/policies/pro.yaml: file is larger than the limit of 200 bytes per file" in out
    assert main(["validate", str(specs), "--max-file-bytes", "0"]) == 1
    assert "max_file_bytes must be between" in capsys.readouterr().err
