"""Integration tests: ``CloudflareClient`` against the Cloudflare simulator over real HTTP.

Every adapter method is driven against the ``cf`` fixture of ``tests/conftest.py`` (a reset
simulator on loopback, virtual clock): the deployment lifecycle with clock advances, retry and
rollback, custom hostname CRUD, pagination of 120, the hostname filter, purge, D1 queries, and
injected faults (a 5xx retried, a 429 burst waited out, a create whose answer is lost).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare import (
    CloudflareClient,
    DeploymentTag,
    new_publish_id,
    ownership_metadata,
)
from reconciler.providers.d1 import D1HttpDatabase, SqlError
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.cloudflare_pages import Behaviour
from reconciler.settings import CloudflareSettings, Secret

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)
PROJECT = "acme-home"


def settings_for(cf: Any, *, token: str | None = None) -> CloudflareSettings:
    return CloudflareSettings(
        base_url=cf.base_url,
        token=Secret(token if token is not None else cf.token),
        account_id=cf.account_id,
        zone_id=cf.zone_id,
    )


def roomy_bucket() -> TokenBucket:
    return TokenBucket(capacity=100_000, period=300)


@pytest.fixture
async def client(cf: Any) -> AsyncIterator[CloudflareClient]:
    async with CloudflareClient(
        settings_for(cf), bucket=roomy_bucket(), retry=FAST, rng=random.Random(3)
    ) as made:
        yield made


def tag(version: int) -> DeploymentTag:
    return DeploymentTag(site=PROJECT, version=version, publish=new_publish_id(), commit="c0ffee")


async def publish(client: CloudflareClient, version: int, *, branch: str = "main") -> Any:
    t = tag(version)
    return await client.create_deployment(
        PROJECT,
        files={"index.html": f"<h1>v{version}</h1>".encode(), "_headers": b"/*\n  X: y\n"},
        branch=branch,
        commit_hash=t.commit,
        commit_message=t.commit_message(),
    )


# --------------------------------------------------------------------------- Pages


async def test_a_direct_upload_deployment_goes_live_and_keeps_its_tag(
    cf: Any, client: CloudflareClient
) -> None:
    created = await publish(client, 12)
    assert created.state == "in_progress"
    assert created.environment == "production"
    cf.clock.advance(10 * cf.config.stage_seconds)
    seen = await client.get_deployment(PROJECT, created.id)
    assert seen.state == "live"
    assert seen.tag is not None and (seen.tag.site, seen.tag.version) == (PROJECT, 12)
    assert seen.tag.commit == "c0ffee" and seen.tag.branch == "main"
    project = await client.get_project(PROJECT)
    assert project.canonical_deployment is not None
    assert project.canonical_deployment.id == created.id
    deployment = cf.sim.pages.projects[PROJECT].deployments[created.id]
    assert deployment.missing_assets == []
    assert deployment.files == ["_headers"]


async def test_deployments_are_listed_across_pages_and_by_environment(
    cf: Any, client: CloudflareClient
) -> None:
    project = cf.sim.pages.projects[PROJECT]
    with cf.sim.lock:  # seed 26 deployments directly; the API is exercised by the rest
        for v in range(1, 27):
            form = {"manifest": "{}", "branch": "main", "commit_message": tag(v).commit_message()}
            cf.sim.pages.create_deployment(project, form, [], cf.clock.now())
    ids = [d.id for d in project.deployments.values()]
    ids.append((await publish(client, 27)).id)
    preview = await publish(client, 99, branch="preview-v99")
    everything = await client.list_deployments(PROJECT)
    assert {d.id for d in everything} == {*ids, preview.id}
    previews = await client.list_deployments(PROJECT, env="preview")
    assert [d.id for d in previews] == [preview.id]
    pages = client.calls["GET /accounts/{account_id}/pages/projects/{project_name}/deployments"]
    assert pages == 3  # two pages of the simulator's 25, one short page; then one for previews


async def test_a_failed_deployment_is_retried_and_production_rolled_back(
    cf: Any, client: CloudflareClient
) -> None:
    first = await publish(client, 1)
    cf.clock.advance(10 * cf.config.stage_seconds)
    cf.sim.set_deployment_behaviour(Behaviour(mode="fail", stage="build"), project=PROJECT)
    broken = await publish(client, 2)
    cf.clock.advance(10 * cf.config.stage_seconds)
    failed = await client.get_deployment(PROJECT, broken.id)
    assert failed.state == "failed"
    assert failed.failed_stage is not None and failed.failed_stage.name == "build"

    retried = await client.retry_deployment(PROJECT, broken.id)
    cf.clock.advance(10 * cf.config.stage_seconds)
    assert (await client.get_deployment(PROJECT, retried.id)).state == "live"
    assert (await client.get_project(PROJECT)).canonical_deployment.id == retried.id  # type: ignore[union-attr]

    await client.rollback_deployment(PROJECT, first.id)
    project = await client.get_project(PROJECT)
    assert project.canonical_deployment is not None
    assert project.canonical_deployment.id == first.id


async def test_unknown_projects_and_deployments_are_not_found(client: CloudflareClient) -> None:
    with pytest.raises(NotFoundError, match="8000007"):
        await client.get_project("no-such-site")
    with pytest.raises(NotFoundError):
        await client.get_deployment(PROJECT, "00000000-0000-4000-8000-000000000000")


async def test_rolling_back_to_a_deployment_that_never_succeeded_is_permanent(
    cf: Any, client: CloudflareClient
) -> None:
    pending = await publish(client, 3)
    with pytest.raises(PermanentError) as caught:
        await client.rollback_deployment(PROJECT, pending.id)
    assert not isinstance(caught.value, NotFoundError)
    assert caught.value.status == 400


# --------------------------------------------------------------------------- custom hostnames


def entitled(cf: Any) -> None:
    """An account with custom metadata and custom origins (the ``cf`` fixture resets it)."""
    cf.sim.configure(
        entitled_custom_metadata=True, entitled_custom_origin=True, custom_origin_outside_zone=True
    )


async def test_custom_hostname_create_get_edit_delete(cf: Any, client: CloudflareClient) -> None:
    entitled(cf)  # the adapter can still send both fields where the account allows them
    marker = ownership_metadata(site=PROJECT, tenant="acme")
    created = await client.create_custom_hostname(
        "www.acmebakery.test",
        ssl_method="txt",
        custom_origin_server="acme-home.pages.dev",
        custom_metadata=marker,
    )
    assert created.status == "pending" and created.ssl_method == "txt"
    assert created.owner is not None and created.owner.tenant == "acme"

    cf.sim.point_dns("www.acmebakery.test")
    cf.clock.advance(3600)
    active = await client.get_custom_hostname(created.id)
    assert active.status == "active" and active.ssl_status == "active" and active.is_active

    edited = await client.edit_custom_hostname(
        created.id, ssl_method="txt", custom_origin_server="suspended.sitebuilder.test"
    )
    assert edited.custom_origin_server == "suspended.sitebuilder.test"
    assert edited.owner is not None  # metadata untouched when not sent

    await client.delete_custom_hostname(created.id)
    with pytest.raises(NotFoundError, match="1436"):
        await client.get_custom_hostname(created.id)
    await client.delete_custom_hostname(created.id)  # already gone: success


async def test_a_bare_delete_body_from_the_server_is_accepted(
    cf: Any, client: CloudflareClient
) -> None:
    cf.sim.configure(hostname_delete_body="bare")
    made = cf.sim.add_hostname("bare.customer.test")
    await client.delete_custom_hostname(made["id"])
    assert await client.list_custom_hostnames(hostname="bare.customer.test") == []


async def test_one_hundred_twenty_hostnames_are_listed_in_three_pages(
    cf: Any, client: CloudflareClient
) -> None:
    for i in range(120):
        cf.sim.add_hostname(f"shop{i:03d}.customer.test")
    found = await client.list_custom_hostnames()
    assert len(found) == 120
    assert len({h.id for h in found}) == 120
    assert client.calls["GET /zones/{zone_id}/custom_hostnames"] == 3


async def test_the_hostname_filter_returns_just_that_hostname(
    cf: Any, client: CloudflareClient
) -> None:
    for i in range(30):
        cf.sim.add_hostname(f"shop{i:03d}.customer.test")
    found = await client.list_custom_hostnames(hostname="shop017.customer.test")
    assert [h.hostname for h in found] == ["shop017.customer.test"]
    assert await client.list_custom_hostnames(hostname="nobody.customer.test") == []


async def test_the_status_filters_list_only_that_status_and_page_to_the_end(
    cf: Any, client: CloudflareClient
) -> None:
    for i in range(60):
        cf.sim.add_hostname(f"shop{i:03d}.customer.test")
    cf.sim.point_dns("shop007.customer.test")
    cf.clock.advance(600)  # the pointed one validated; the others still pending
    pending = await client.list_custom_hostnames(hostname_status="pending")
    active = await client.list_custom_hostnames(hostname_status="active")
    assert len(pending) == 59 and "shop007.customer.test" not in {h.hostname for h in pending}
    assert [h.hostname for h in active] == ["shop007.customer.test"]
    # total_count counts the zone, not the filtered result: two pages, then the short one ends it
    assert client.calls["GET /zones/{zone_id}/custom_hostnames"] == 3


async def test_a_duplicate_create_adopts_ours_and_refuses_someone_elses(
    cf: Any, client: CloudflareClient
) -> None:
    entitled(cf)
    marker = ownership_metadata(site=PROJECT, tenant="acme")
    ours = cf.sim.add_hostname("ours.customer.test", custom_metadata=marker)
    cf.sim.add_hostname("theirs.customer.test", custom_metadata={"customer_id": "7"})
    adopted = await client.create_custom_hostname(
        "ours.customer.test", ssl_method="http", custom_metadata=marker
    )
    assert adopted.id == ours["id"]
    with pytest.raises(PermanentError, match="our records do not say we created it"):
        await client.create_custom_hostname(
            "theirs.customer.test", ssl_method="http", custom_metadata=marker
        )


async def test_an_invalid_hostname_is_a_permanent_validation_error(
    client: CloudflareClient,
) -> None:
    with pytest.raises(PermanentError, match="1407") as caught:
        await client.create_custom_hostname("192.0.2.1", ssl_method="http")
    assert caught.value.status == 400


# --------------------------------------------------------------------------- purge, D1


async def test_purge_sends_each_kind_in_chunks_the_simulator_accepts(
    cf: Any, client: CloudflareClient
) -> None:
    hosts = [f"h{i}.customer.test" for i in range(205)]
    await client.purge_cache(
        hosts=hosts, prefixes=["www.acme.test/menu"], files=["https://www.acme.test/a.css"]
    )
    kinds = [(p["kind"], len(p["items"])) for p in cf.sim.purges]
    # 100 items a request: the simulator's limit and the contract's (§2.5)
    assert kinds == [("hosts", 100), ("hosts", 100), ("hosts", 5), ("prefixes", 1), ("files", 1)]


async def test_d1_queries_round_trip_values_and_report_sql_errors(
    cf: Any, client: CloudflareClient
) -> None:
    created = await client.d1_query(
        cf.database_id,
        "CREATE TABLE t (a INTEGER, b TEXT, c BLOB); INSERT INTO t VALUES (?, ?, ?)",
        [7, None, b"\x00\xff"],
    )
    assert len(created) == 2 and created[1].changes == 1
    rows = await client.d1_query(cf.database_id, "SELECT a, b FROM t WHERE a = ?", ["7"])
    assert rows[0].results == ({"a": 7, "b": None},)
    with pytest.raises(PermanentError, match="no such table") as caught:
        await client.d1_query(cf.database_id, "SELECT * FROM nope")
    assert caught.value.status == 400
    with pytest.raises(NotFoundError, match="7404"):
        await client.d1_query("00000000-0000-4000-8000-000000000000", "SELECT 1")


async def test_the_d1_rest_backend_runs_through_the_client(
    cf: Any, client: CloudflareClient
) -> None:
    database = D1HttpDatabase(client, cf.database_id)
    await database.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
    await database.execute("INSERT INTO kv VALUES (?, ?)", ["a", 1])
    assert await database.query("SELECT v FROM kv WHERE k = ?", ["a"]) == [{"v": 1}]
    with pytest.raises(SqlError):
        await database.query("SELECT * FROM missing")


# --------------------------------------------------------------------------- faults, auth


async def test_injected_5xx_answers_are_retried_on_reads(cf: Any, client: CloudflareClient) -> None:
    # seed 1: the first draw is below 0.5 (an error), the second above (an answer)
    cf.control(
        "POST",
        "/faults",
        json={"seed": 1, "rules": [{"path_prefix": "/accounts", "error_rate": 0.5}]},
    )
    project = await client.get_project(PROJECT)
    assert project.name == PROJECT
    statuses = [call["status"] for call in cf.calls()]
    assert statuses[0] >= 500 and statuses[-1] == 200
    assert client.calls["GET /accounts/{account_id}/pages/projects/{project_name}"] == 2


async def test_a_429_burst_is_waited_out_on_the_shared_bucket(
    cf: Any, client: CloudflareClient
) -> None:
    cf.control(
        "POST",
        "/faults",
        json={"rules": [{"path_prefix": "/zones", "burst_429": 2, "retry_after": 1}]},
    )
    before = client.bucket.paused_until
    assert await client.list_custom_hostnames() == []
    calls = cf.calls()
    assert [c["status"] for c in calls] == [429, 429, 200]
    assert calls[0]["response_headers"]["retry-after"] == "1"
    assert client.bucket.paused_until > before
    assert calls[1]["at"] - calls[0]["at"] >= 1.0  # waited, not hot
    assert calls[2]["at"] - calls[1]["at"] >= 1.0


async def test_a_create_whose_answer_was_lost_is_found_and_not_sent_twice(cf: Any) -> None:
    cf.control(
        "POST",
        "/faults",
        json={
            "rules": [
                {
                    "path_prefix": "/zones",
                    "methods": ["POST"],
                    "timeout_rate": 1.0,
                    "hold_seconds": 3.0,
                    "process_on_timeout": True,
                }
            ]
        },
    )
    entitled(cf)
    marker = ownership_metadata(site=PROJECT, tenant="acme")
    async with CloudflareClient(
        settings_for(cf), bucket=roomy_bucket(), retry=FAST, timeout=0.5
    ) as impatient:
        created = await impatient.create_custom_hostname(
            "late.customer.test", ssl_method="http", custom_metadata=marker
        )
    assert created.hostname == "late.customer.test"
    posts = [c for c in cf.calls() if c["method"] == "POST"]
    assert len(posts) == 1
    assert len(cf.sim.hostnames.by_id) == 1


async def test_a_wrong_token_is_a_permanent_auth_error_that_never_shows_the_token(cf: Any) -> None:
    wrong = "wrong-token-5e5e5e5e5e5e"
    async with CloudflareClient(
        settings_for(cf, token=wrong), bucket=roomy_bucket(), retry=FAST
    ) as stranger:
        with pytest.raises(PermanentError, match="authentication failed") as caught:
            await stranger.get_project(PROJECT)
        assert wrong not in repr(stranger)
    assert caught.value.status == 401
    assert wrong not in str(caught.value)
    assert len(cf.calls()) == 1  # an auth failure is not retried


async def test_a_bucket_driven_at_the_simulators_own_limit_never_meets_a_429(cf: Any) -> None:
    # The simulator counts 120 requests per 30 s of its (frozen) clock; the client's bucket has
    # the same budget and its waits advance that clock, so the run takes no real time.
    cf.sim.configure(rate_limit_requests=120, rate_limit_period=30.0, rate_limit_block=30.0)
    cf.clock.freeze()

    async def sleep(seconds: float) -> None:
        cf.clock.advance(seconds)

    bucket = TokenBucket(capacity=120, period=30.0, clock=cf.clock.now, sleep=sleep)
    async with CloudflareClient(
        settings_for(cf), bucket=bucket, retry=FAST, rng=random.Random(3), sleep=sleep
    ) as edge:
        for _ in range(360):  # three budgets worth
            await edge.get_project(PROJECT)
    statuses = [call["status"] for call in cf.calls()]
    assert statuses.count(429) == 0
    assert len(statuses) == 360
    stamps = sorted(call["at"] for call in cf.calls())
    last_window = [s for s in stamps if s > stamps[-1] - 30.0]
    assert len(last_window) >= 0.95 * 120  # the edge, not a cautious 90 %
