"""Loading specs from a Git commit: blobs of the commit's tree, never the working tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest

from reconciler.errors import LoadError, SpecError
from reconciler.spec.load import Limits, load_git
from reconciler.spec.models import Kind

from support.spec import EXAMPLE_SPECS, site, write


def _commit(repo: git.Repo, message: str) -> str:
    repo.git.add("-A")
    repo.git.commit("-q", "-m", message, author="Test <test@example.invalid>")
    return repo.head.commit.hexsha


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    repository = git.Repo.init(tmp_path / "fleet")
    with repository.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.invalid")
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "fleet" / "specs")
    _commit(repository, "example fleet")
    return repository


def _root(repo: git.Repo) -> Path:
    return Path(repo.working_tree_dir or ".")


def test_specs_load_from_a_commit_with_its_revision(repo: git.Repo) -> None:
    specs = load_git(_root(repo))
    assert specs.summary() == "3 tenants, 2 policies, 5 sites, 8 domains"
    assert specs.revision == repo.head.commit.hexsha
    where = specs.location(Kind.SITE, "acme-home", "spec.production.version")
    assert str(where) == "specs/sites/acme-home.yaml:9:16"


def test_uncommitted_edits_do_not_count(repo: git.Repo) -> None:
    write(_root(repo) / "specs", "sites/broken.yaml", "x: [\n")
    assert load_git(_root(repo)).summary() == "3 tenants, 2 policies, 5 sites, 8 domains"


def test_an_older_commit_can_be_loaded_by_ref(repo: git.Repo) -> None:
    first = repo.head.commit.hexsha
    write(_root(repo) / "specs", "sites/x.yaml", site("x", "x.example.com"))
    _commit(repo, "add x")
    repo.create_tag("with-x")
    assert "x" in load_git(_root(repo), "with-x").sites
    assert "x" not in load_git(_root(repo), first).sites
    assert load_git(_root(repo), "HEAD~1").revision == first


def test_problems_in_a_commit_are_located_by_repository_path(repo: git.Repo) -> None:
    write(_root(repo) / "specs", "sites/x.yaml", site("x", "x.example.com", tenant="nobody"))
    write(_root(repo) / "specs", "sites/empty.yaml", "")
    _commit(repo, "break it")
    with pytest.raises(SpecError) as caught:
        load_git(_root(repo))
    assert [p.render() for p in caught.value.problems] == [
        "specs/sites/empty.yaml:1:1: file is empty; a spec file holds at least one document",
        "specs/sites/x.yaml:6:3: Site/x: spec.tenant: Tenant 'nobody' is not defined",
    ]


def test_a_subdirectory_other_than_specs_can_be_read(repo: git.Repo) -> None:
    shutil.copytree(_root(repo) / "specs", _root(repo) / "deploy" / "fleet")
    _commit(repo, "copy")
    specs = load_git(_root(repo), subdir="deploy/fleet")
    assert str(specs.location(Kind.TENANT, "acme")) == "deploy/fleet/tenants/acme.yaml:2:1"


def test_an_unknown_ref_is_a_load_error(repo: git.Repo) -> None:
    with pytest.raises(LoadError, match="unknown Git ref 'nope'"):
        load_git(_root(repo), "nope")


def test_a_missing_subdirectory_is_a_load_error(repo: git.Repo) -> None:
    with pytest.raises(LoadError, match="no nothing/ directory at HEAD"):
        load_git(_root(repo), subdir="nothing")


def test_a_directory_that_is_not_a_repository_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="is not a Git repository"):
        load_git(tmp_path)


def test_oversized_blobs_are_rejected_and_hidden_or_foreign_files_ignored(repo: git.Repo) -> None:
    specs_dir = _root(repo) / "specs"
    write(specs_dir, "sites/big.yaml", "# " + "x" * 5000 + "\n")
    write(specs_dir, ".github/ci.yaml", "broken: [\n")
    write(specs_dir, "README.md", "not yaml: [\n")
    write(_root(repo), "other/x.yaml", "broken: [\n")
    _commit(repo, "noise")
    with pytest.raises(SpecError) as caught:
        load_git(_root(repo), limits=Limits(max_file_bytes=4096))
    assert [p.render() for p in caught.value.problems] == [
        "specs/sites/big.yaml: file is larger than the limit of 4,096 bytes per file"
    ]
