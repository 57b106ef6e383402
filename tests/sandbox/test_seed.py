"""``reconciler.sandbox.seed``: a sandbox seeded for the example fleet, before any apply.

Starts one :class:`Sandbox` without localstripe per test (the Stripe part is covered by
``test_seeding_creates_a_paying_customer_per_tenant_and_the_specs_can_point_at_them``, which
starts localstripe and skips when it cannot).
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.build.content import parse_snapshot
from reconciler.sandbox.localstripe import LocalStripeError
from reconciler.sandbox.seed import StripeIds, seed_world, with_stripe_ids, write_stripe_ids
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs, load_directory

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "specs"


@pytest.fixture
def specs() -> Specs:
    return load_directory(EXAMPLE)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(with_stripe=False) as world:
        yield world


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_every_site_gets_its_row_and_valid_snapshots_up_to_two_past_its_highest_version(
    sandbox: Sandbox, specs: Specs
) -> None:
    seeded = seed_world(sandbox, specs)
    path = sandbox.cloudflare.d1_path
    assert {r[0] for r in rows(path, "SELECT id FROM sites")} == set(specs.sites)
    assert {r[0] for r in rows(path, "SELECT id FROM tenants")} == set(specs.tenants)
    for name, site in specs.sites.items():
        preview = site.spec.preview.version if site.spec.preview else 0
        top = max(site.spec.production.version, preview) + 2
        assert seeded.versions[name] == top
        found = rows(
            path,
            f"SELECT version_number, content_json FROM site_versions WHERE site_id = '{name}' "
            "ORDER BY version_number",
        )
        assert [r[0] for r in found] == list(range(1, top + 1))
        for _, content in found:
            assert parse_snapshot(str(content)).assets == ()
    assert rows(path, "SELECT COUNT(*) FROM publish_versions") == [(0,)]


def test_projects_exist_and_dns_points_everywhere_but_the_unpointed_hostnames(
    sandbox: Sandbox, specs: Specs
) -> None:
    seeded = seed_world(sandbox, specs, unpointed=["Shop.AcmeBakery.com."])
    assert set(seeded.projects) <= set(sandbox.cloudflare.pages.projects)
    assert seeded.unpointed == ("shop.acmebakery.com",)
    assert sandbox.dns.get("shop.acmebakery.com") is None
    for hostname in seeded.pointed:
        record = sandbox.dns.get(hostname)
        assert record is not None and record.cname == sandbox.cloudflare_config.cname_target
    assert sandbox.cloudflare.calls_since(0) == []  # seeding goes around the API


def test_seeding_twice_adds_nothing(sandbox: Sandbox, specs: Specs) -> None:
    seed_world(sandbox, specs)
    path = sandbox.cloudflare.d1_path
    before = rows(path, "SELECT COUNT(*) FROM site_versions")
    seed_world(sandbox, specs)
    assert rows(path, "SELECT COUNT(*) FROM site_versions") == before


def test_an_unpointed_hostname_no_site_declares_is_refused(sandbox: Sandbox, specs: Specs) -> None:
    with pytest.raises(ValueError, match=r"nobody\.example"):
        seed_world(sandbox, specs, unpointed=["nobody.example"])


def test_the_stripe_ids_are_rewritten_in_a_working_copy_and_in_memory(
    specs: Specs, tmp_path: Path
) -> None:
    copy = tmp_path / "specs"
    shutil.copytree(EXAMPLE, copy)
    ids = {"acme": StripeIds(customer="cus_New1", subscription="sub_New1", invoice=None)}
    changed = write_stripe_ids(copy, specs, ids)
    assert [p.name for p in changed] == ["acme.yaml"]
    reloaded = load_directory(copy)
    assert reloaded.tenants["acme"].spec.stripe.customer == "cus_New1"
    assert reloaded.tenants["acme"].spec.stripe.subscription == "sub_New1"
    assert reloaded.tenants["lumen"].spec.stripe == specs.tenants["lumen"].spec.stripe
    in_memory = with_stripe_ids(specs, ids)
    assert in_memory.tenants["acme"].spec.stripe.customer == "cus_New1"
    assert in_memory.sites == specs.sites


def test_seeding_creates_a_paying_customer_per_tenant_and_the_specs_can_point_at_them(
    specs: Specs,
) -> None:
    try:
        world = Sandbox().start()
    except LocalStripeError as exc:
        pytest.skip(f"localstripe could not start: {exc}")
    try:
        seeded = seed_world(world, specs)
        assert set(seeded.stripe) == set(specs.tenants)
        client = world.stripe.client()
        for name, found in seeded.stripe.items():
            subscription = client.v1.subscriptions.retrieve(found.subscription)
            assert subscription.status == "active"
            assert subscription.customer == found.customer
            assert client.v1.customers.retrieve(found.customer).metadata["tenant"] == name
    finally:
        world.stop()


def test_sandbox_up_with_seed_prints_what_it_seeded(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "reconciler", "sandbox", "up", "--seed", "--no-stripe"]
    command += ["--state-dir", str(tmp_path / "state"), "--specs", str(EXAMPLE)]
    command += ["--unpointed", "shop.acmebakery.com"]
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if line.startswith("# seeded"):
                    break
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert lines[-1].startswith("# seeded: 5 sites with content snapshots, 7 hostnames pointed, 1")
    path = tmp_path / "state" / "d1"
    [database] = list(path.glob("*.sqlite"))
    assert rows(database, "SELECT COUNT(*) FROM sites") == [(5,)]
