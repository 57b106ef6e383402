"""Nothing outside the specs root is read, and a fleet is bounded as a whole (spec/load.py 7-8).

The issue's defect: a symbolic link under ``specs/`` was followed and its target's content
printed in the error, so a checked-out pull request could read ``/etc/passwd`` into CI logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.errors import LoadError
from reconciler.spec.load import Limits, load_directory

from support.spec import problems, site, write

SECRET_LINE = "root-password-line: hunter2-not-for-ci-logs"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the specs, whose content must never be printed."""
    target = tmp_path / "outside" / "passwd"
    target.parent.mkdir()
    target.write_text(f"{SECRET_LINE}\nnot: [valid yaml\n")
    return target


def test_a_symlinked_spec_file_is_refused_naming_the_link_not_the_target(
    specs: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (specs / "sites" / "evil.yaml").symlink_to(outside)
    assert main(["validate", str(specs)]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "specs/sites/evil.yaml: is a symbolic link" in text
    assert SECRET_LINE not in text
    assert "hunter2" not in text
    assert str(outside) not in text


def test_a_symlinked_directory_and_a_link_with_any_name_are_refused(
    specs: Path, outside: Path
) -> None:
    (specs / "more").symlink_to(outside.parent, target_is_directory=True)
    (specs / "notes.txt").symlink_to(outside)
    found = problems(specs)
    assert any(p.startswith("specs/more: is a symbolic link") for p in found), found
    assert any(p.startswith("specs/notes.txt: is a symbolic link") for p in found), found
    assert not any("hunter2" in p for p in found)


def test_a_specs_root_that_is_a_symlink_is_refused(specs: Path, tmp_path: Path) -> None:
    link = tmp_path / "linked-specs"
    link.symlink_to(specs, target_is_directory=True)
    with pytest.raises(LoadError, match="is a symbolic link"):
        load_directory(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_spec_is_not_read(specs: Path) -> None:
    os.mkfifo(specs / "sites" / "pipe.yaml")
    with pytest.raises(LoadError, match=r"pipe\.yaml: is not a regular file"):
        load_directory(specs)


def test_a_fleet_over_the_file_cap_is_refused(specs: Path) -> None:
    for index in range(3):
        write(specs, f"sites/extra-{index}.yaml", site(f"extra-{index}", f"x{index}.example.com"))
    count = sum(1 for _ in specs.rglob("*.yaml"))
    found = problems(specs, Limits(max_files=count - 1))
    assert any("the fleet is too large: more than" in p for p in found), found
    assert len(load_directory(specs, limits=Limits(max_files=count)).sites) >= 3


def test_a_fleet_over_the_byte_cap_is_refused(specs: Path) -> None:
    total = sum(path.stat().st_size for path in specs.rglob("*.yaml"))
    found = problems(specs, Limits(max_total_bytes=total - 1))
    assert any("the fleet is too large" in p for p in found), found
    assert load_directory(specs, limits=Limits(max_total_bytes=total)).sites
