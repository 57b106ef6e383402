"""GitFollower against a local bare remote: fetches, change sets, nudges and fetch failures."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import git
import pytest

from reconciler.errors import PermanentError, TransientError
from reconciler.runtime.gitfollow import ChangeSet, GitFollower, mask_url

POLICY = """\
apiVersion: sitebuilder/v1
kind: BillingPolicy
metadata:
  name: {name}
spec:
  grace_days: 7
  hard_lock_days: 21
  performance_budget: {{max_js_kb: 300, max_css_kb: 100, max_third_party_scripts: 3}}
  suspension_origin: suspended.sitebuilder.app
"""
TENANT = """\
apiVersion: sitebuilder/v1
kind: Tenant
metadata:
  name: {name}
spec:
  display_name: {name} inc
  policy: {policy}
  stripe: {{customer: cus_{name}, subscription: sub_{name}}}
  whatsapp: "+5511912345678"
"""
SITE = """\
apiVersion: sitebuilder/v1
kind: Site
metadata:
  name: {name}
spec:
  tenant: {tenant}
  pages_project: {name}
  production: {{version: 12}}
  domains:
    - hostname: {name}.example.com
"""
FILES = {
    "specs/policies/standard.yaml": POLICY.format(name="standard"),
    "specs/policies/pro.yaml": POLICY.format(name="pro"),
    "specs/tenants/acme.yaml": TENANT.format(name="acme", policy="standard"),
    "specs/tenants/bistro.yaml": TENANT.format(name="bistro", policy="pro"),
    "specs/tenants/lumen.yaml": TENANT.format(name="lumen", policy="standard"),
    "specs/sites/acme-home.yaml": SITE.format(name="acme-home", tenant="acme"),
    "specs/sites/acme-shop.yaml": SITE.format(name="acme-shop", tenant="acme"),
    "specs/sites/bistro-menu.yaml": SITE.format(name="bistro-menu", tenant="bistro"),
    "specs/sites/lumen.yaml": SITE.format(name="lumen-portfolio", tenant="lumen")
    + "---\n"
    + SITE.format(name="lumen-blog", tenant="lumen"),
}
SPECS_SITES = {"acme-home", "acme-shop", "bistro-menu", "lumen-portfolio", "lumen-blog"}


class Fleet:
    """A working repository pushing to a bare remote, like an operator's checkout."""

    def __init__(self, root: Path) -> None:
        self.remote = root / "remote.git"
        git.Repo.init(self.remote, bare=True, initial_branch="main")
        self.work = root / "work"
        self.repo = git.Repo.init(self.work, initial_branch="main")
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Test")
            config.set_value("user", "email", "test@example.invalid")
        self.repo.create_remote("origin", str(self.remote))
        for relative, text in FILES.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        self.commit("example fleet")

    @property
    def url(self) -> str:
        return self.remote.as_uri()

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.work / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "-m", message)
        self.repo.git.push("-q", "origin", "main")
        return self.repo.head.commit.hexsha


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


@pytest.fixture
def follower(fleet: Fleet, tmp_path: Path) -> GitFollower:
    return GitFollower(tmp_path / "follow", fleet.url, "main")


def test_the_example_fleet_has_the_sites_these_tests_expect(fleet: Fleet) -> None:
    follower = GitFollower(fleet.work, fleet.url, "main")
    assert set(follower.specs_at(fleet.repo.head.commit.hexsha).sites) == SPECS_SITES


async def test_a_fetch_after_a_push_sees_the_new_head(fleet: Fleet, follower: GitFollower) -> None:
    first = await follower.fetch()
    assert first == fleet.repo.head.commit.hexsha
    fleet.edit("specs/sites/acme-home.yaml", "version: 12", "version: 13")
    second = fleet.commit("bump acme-home")
    assert await follower.fetch() == second
    assert follower.head == second
    assert follower.fetched_at is not None
    assert follower.specs_at(second).revision == second
    assert follower.specs_at(second).sites["acme-home"].spec.production.version == 13
    assert follower.specs_at(first).sites["acme-home"].spec.production.version == 12


async def test_the_remote_url_is_not_stored_in_the_follower_repository(
    follower: GitFollower, tmp_path: Path
) -> None:
    await follower.fetch()
    config = (tmp_path / "follow" / "config").read_text(encoding="utf-8")
    assert "remote.git" not in config


async def test_a_version_bump_changes_only_that_site(fleet: Fleet, follower: GitFollower) -> None:
    old = await follower.fetch()
    fleet.edit("specs/sites/acme-home.yaml", "version: 12", "version: 13")
    new = fleet.commit("bump")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change == ChangeSet(
        sites=frozenset({"acme-home"}), files=("specs/sites/acme-home.yaml",)
    )
    assert change.keys() == ["Site/acme-home"]


async def test_a_tenant_change_marks_the_tenant_and_all_its_sites(
    fleet: Fleet, follower: GitFollower
) -> None:
    old = await follower.fetch()
    fleet.edit("specs/tenants/acme.yaml", "acme inc", "Acme Bakery & Co")
    new = fleet.commit("rename acme")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change.tenants == {"acme"}
    assert change.sites == {"acme-home", "acme-shop"}
    assert change.policies == frozenset()
    assert not change.all
    assert change.keys() == ["Tenant/acme", "Site/acme-home", "Site/acme-shop"]


async def test_a_policy_change_marks_its_tenants_and_their_sites(
    fleet: Fleet, follower: GitFollower
) -> None:
    old = await follower.fetch()
    fleet.edit("specs/policies/standard.yaml", "grace_days: 7", "grace_days: 10")
    new = fleet.commit("longer grace")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change.policies == {"standard"}
    assert change.tenants == {"acme", "lumen"}
    assert change.sites == {"acme-home", "acme-shop", "lumen-portfolio", "lumen-blog"}


async def test_a_deleted_file_marks_its_documents(fleet: Fleet, follower: GitFollower) -> None:
    old = await follower.fetch()
    (fleet.work / "specs/sites/lumen.yaml").unlink()
    new = fleet.commit("drop lumen sites")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change.sites == {"lumen-portfolio", "lumen-blog"}
    assert change.files == ("specs/sites/lumen.yaml",)
    assert change.tenants == frozenset()


async def test_moving_a_document_to_another_file_changes_nothing(
    fleet: Fleet, follower: GitFollower
) -> None:
    old = await follower.fetch()
    (fleet.work / "specs/sites/acme-home.yaml").rename(fleet.work / "specs/sites/home.yml")
    new = fleet.commit("rename file")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change.is_empty
    assert change.files == ("specs/sites/acme-home.yaml", "specs/sites/home.yml")


async def test_a_commit_outside_the_specs_changes_nothing(
    fleet: Fleet, follower: GitFollower
) -> None:
    old = await follower.fetch()
    (fleet.work / "README.md").write_text("hello\n", encoding="utf-8")
    new = fleet.commit("docs")
    await follower.fetch()
    assert follower.changed(old, new) == ChangeSet()
    assert follower.changed(new, new).is_empty


async def test_no_previous_commit_means_everything_changed(follower: GitFollower) -> None:
    head = await follower.fetch()
    assert follower.changed(None, head).all


async def test_invalid_specs_fall_back_to_everything_with_the_documents_named(
    fleet: Fleet, follower: GitFollower
) -> None:
    old = await follower.fetch()
    fleet.edit("specs/sites/acme-shop.yaml", "tenant: acme", "tenant: nobody")
    new = fleet.commit("break it")
    await follower.fetch()
    change = follower.changed(old, new)
    assert change.all
    assert change.sites == {"acme-shop"}


async def test_an_unknown_old_commit_after_a_force_push_means_everything(
    follower: GitFollower,
) -> None:
    head = await follower.fetch()
    assert follower.changed("0" * 40, head).all


async def test_an_unreachable_remote_is_a_transient_error_with_credentials_masked(
    tmp_path: Path,
) -> None:
    url = "https://user:s3cret-token@127.0.0.1:1/fleet.git"
    follower = GitFollower(tmp_path / "follow", url, "main")
    with pytest.raises(TransientError) as caught:
        await follower.fetch()
    assert "s3cret-token" not in str(caught.value)
    assert "***@127.0.0.1:1" in str(caught.value)
    assert follower.last_error is caught.value
    assert follower.head is None


async def test_a_missing_branch_is_a_permanent_error(fleet: Fleet, tmp_path: Path) -> None:
    follower = GitFollower(tmp_path / "follow", fleet.url, "release")
    with pytest.raises(PermanentError, match="branch 'release' does not exist"):
        await follower.fetch()


def test_mask_url_hides_user_and_password() -> None:
    assert mask_url("fetch https://x-access-token:ghp_abc@github.com/o/r.git failed") == (
        "fetch https://***@github.com/o/r.git failed"
    )
    assert mask_url("file:///tmp/remote.git") == "file:///tmp/remote.git"


async def test_watch_reports_each_new_head_once_with_the_previous_one(
    fleet: Fleet, follower: GitFollower
) -> None:
    first = fleet.repo.head.commit.hexsha
    seen: list[tuple[str | None, str]] = []
    arrived = asyncio.Event()

    async def on_new_commit(old: str | None, new: str) -> None:
        seen.append((old, new))
        arrived.set()

    watcher = asyncio.create_task(follower.watch(3_600, on_new_commit, since="f" * 40))
    try:
        await asyncio.wait_for(arrived.wait(), timeout=60)
        arrived.clear()
        follower.nudge()  # nothing new: no report
        fleet.edit("specs/sites/acme-home.yaml", "version: 12", "version: 13")
        second = fleet.commit("bump")
        follower.nudge()
        await asyncio.wait_for(arrived.wait(), timeout=60)
    finally:
        watcher.cancel()
    assert seen == [("f" * 40, first), (first, second)]


async def never(seconds: float) -> None:
    """A poll interval that never elapses: only nudges cause fetches."""
    await asyncio.Event().wait()


async def test_nudges_during_a_fetch_collapse_into_one_more_fetch(
    fleet: Fleet, tmp_path: Path
) -> None:
    follower = GitFollower(tmp_path / "follow", fleet.url, "main", sleep=never)
    release = threading.Event()
    started = threading.Event()
    calls = 0
    real_fetch = follower.fetch_blocking

    def slow_fetch() -> str:
        nonlocal calls
        calls += 1
        started.set()
        if calls == 1:
            assert release.wait(timeout=60)
        return real_fetch()

    follower.fetch_blocking = slow_fetch  # type: ignore[method-assign]
    heads: list[str] = []
    second_fetch = asyncio.Event()

    async def on_new_commit(old: str | None, new: str) -> None:
        heads.append(new)

    watcher = asyncio.create_task(follower.watch(3_600, on_new_commit))
    try:
        await asyncio.to_thread(started.wait, 60)
        for _ in range(5):
            follower.nudge()
        release.set()
        for _ in range(600):
            await asyncio.sleep(0.05)
            if calls >= 2 and follower.fetches == 2 and not follower._nudged.is_set():
                second_fetch.set()
                break
        assert second_fetch.is_set()
        for _ in range(20):  # give a wrong third fetch every chance to start
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
    assert calls == 2
    assert len(heads) == 1


async def test_watch_survives_fetch_failures_and_keeps_going(tmp_path: Path) -> None:
    waits = 0
    done = asyncio.Event()

    async def counting_sleep(seconds: float) -> None:
        nonlocal waits
        waits += 1
        if waits >= 2:
            done.set()
        await asyncio.sleep(0)

    async def on_new_commit(old: str | None, new: str) -> None:
        raise AssertionError("no commit can be fetched")

    absent = (tmp_path / "absent.git").as_uri()
    follower = GitFollower(tmp_path / "follow", absent, "main", sleep=counting_sleep)
    watcher = asyncio.create_task(follower.watch(1.0, on_new_commit))
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        watcher.cancel()
    assert follower.fetches >= 2
    assert isinstance(follower.last_error, TransientError)
