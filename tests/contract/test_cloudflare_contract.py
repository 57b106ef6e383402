"""Contract tests: the Cloudflare simulator and ``CloudflareClient`` against the official OpenAPI.

Every exchange the simulator records (``GET /__sandbox/calls``: request and response) is
validated with the corrected ``cloudflare/openapi-subset.json``; the tests assert zero
violations and that every endpoint the reconciler uses was exercised (coverage). Two drivers:

- by hand, with plain httpx requests shaped as the contract says, so the simulator's answers are
  checked on their own (including 404, 400, 429 and 5xx bodies);
- through the real adapter, ``reconciler.providers.cloudflare.CloudflareClient``, so the
  requests *we* send are checked too.

Uses the ``cf`` fixture of ``tests/conftest.py`` (a reset simulator on loopback) and the
``cloudflare_checker`` fixture of ``tests/contract/conftest.py``. Skips when ``../shared`` is
absent.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare import (
    CloudflareClient,
    Deployment,
    DeploymentTag,
    new_publish_id,
    ownership_metadata,
)
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.cloudflare_pages import Behaviour
from reconciler.settings import CloudflareSettings, Secret

from support.contract.corrections import CLOUDFLARE_DOCUMENT
from support.contract.openapi_checker import OpenAPIChecker

if not CLOUDFLARE_DOCUMENT.is_file():
    pytest.skip(
        f"shared contract not found at {CLOUDFLARE_DOCUMENT} (../shared is absent beside the repo)",
        allow_module_level=True,
    )

_PAGES = "/accounts/{account_id}/pages/projects/{project_name}"
_DEPLOYMENT = _PAGES + "/deployments/{deployment_id}"
_HOSTNAMES = "/zones/{zone_id}/custom_hostnames"
_HOSTNAME = _HOSTNAMES + "/{custom_hostname_id}"

REQUIRED_OPERATIONS: frozenset[str] = frozenset(
    {
        f"GET {_PAGES}",
        f"GET {_PAGES}/deployments",
        f"GET {_DEPLOYMENT}",
        f"POST {_PAGES}/deployments",
        f"POST {_DEPLOYMENT}/retry",
        f"POST {_DEPLOYMENT}/rollback",
        f"GET {_HOSTNAMES}",
        f"GET {_HOSTNAME}",
        f"POST {_HOSTNAMES}",
        f"PATCH {_HOSTNAME}",
        f"DELETE {_HOSTNAME}",
        "POST /zones/{zone_id}/purge_cache",
        "POST /accounts/{account_id}/d1/database/{database_id}/query",
    }
)
"""Every endpoint the reconciler calls (DESIGN §3; issue 3 item 1)."""

REQUIRED_ERROR_STATUSES = frozenset({400, 404, 429})

ORDINARY_ACCOUNT = {
    "entitled_custom_metadata": False,
    "entitled_custom_origin": False,
    "custom_origin_outside_zone": False,
    "refuse_reserved_tlds": True,
}
"""The simulator's defaults, set explicitly: the exchanges are those of an ordinary account."""

UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


def exercised(checker: OpenAPIChecker, calls: Iterable[Mapping[str, Any]]) -> set[str]:
    """``METHOD template`` of every recorded call that maps to a contract operation."""
    labels = set()
    for call in calls:
        operation = checker.find_operation(str(call["method"]), str(call["path"]))
        if operation is not None:
            labels.add(operation.label)
    return labels


def purge_kinds(calls: Iterable[Mapping[str, Any]]) -> set[str]:
    """Which purge bodies (hosts, prefixes, files, ...) were sent."""
    kinds: set[str] = set()
    for call in calls:
        body = call.get("request_json")
        if str(call["path"]).endswith("/purge_cache") and isinstance(body, dict):
            kinds.update(body)
    return kinds


def assert_conforms(checker: OpenAPIChecker, calls: list[dict[str, Any]]) -> None:
    """Zero violations over every call, every required endpoint and error status seen."""
    assert calls, "the simulator recorded no calls"
    problems = checker.check_records(calls)
    assert problems == [], "contract violations:\n" + "\n".join(problems)
    missing = REQUIRED_OPERATIONS - exercised(checker, calls)
    assert not missing, f"endpoints never exercised: {sorted(missing)}"
    statuses = {int(call["status"]) for call in calls}
    assert statuses >= REQUIRED_ERROR_STATUSES, f"error statuses seen: {sorted(statuses)}"
    assert {"hosts", "prefixes", "files"} <= purge_kinds(calls)


# ---------------------------------------------------------------------------------------------
# The simulator on its own, driven by contract-shaped requests
# ---------------------------------------------------------------------------------------------


def drive_simulator_by_hand(cf: Any) -> None:
    """Call every endpoint once or more with valid requests, plus the documented failures."""
    cf.sim.configure(**ORDINARY_ACCOUNT)
    project = f"/accounts/{cf.account_id}/pages/projects/acme-home"
    zone = f"/zones/{cf.zone_id}"
    database = f"/accounts/{cf.account_id}/d1/database/{cf.database_id}"
    with cf.client() as http:
        assert http.get(project).status_code == 200
        assert http.get(f"/accounts/{cf.account_id}/pages/projects/no-such-site").status_code == 404
        jwt = http.get(project + "/upload-token").json()["result"]["jwt"]
        bearer = {"Authorization": f"Bearer {jwt}"}
        digest = "a" * 32
        http.post("/pages/assets/check-missing", json={"hashes": [digest]}, headers=bearer)
        http.post(
            "/pages/assets/upload",
            json=[
                {
                    "key": digest,
                    "value": "PGgxPmhpPC9oMT4=",
                    "metadata": {"contentType": "text/html"},
                    "base64": True,
                }
            ],
            headers=bearer,
        )
        http.post("/pages/assets/upsert-hashes", json={"hashes": [digest]}, headers=bearer)
        created = http.post(
            project + "/deployments",
            files={
                "manifest": (None, json.dumps({"/index.html": digest})),
                "branch": (None, "main"),
                "commit_hash": (None, "c0ffee"),
                "commit_message": (None, "acme-home v12"),
                "commit_dirty": (None, "false"),
                "_headers": ("_headers", b"/*\n  X-Frame-Options: DENY\n"),
            },
        )
        assert created.status_code == 200, created.text
        first = created.json()["result"]["id"]
        http.get(project + "/deployments", params={"env": "production", "page": 1, "per_page": 10})
        http.get(project + f"/deployments/{first}")
        cf.clock.advance(10 * cf.config.stage_seconds)
        http.get(project)
        http.post(project + f"/deployments/{first}/retry")
        cf.clock.advance(10 * cf.config.stage_seconds)
        http.post(project + f"/deployments/{first}/rollback")
        http.get(project + f"/deployments/{UNKNOWN_UUID}")

        made = http.post(
            zone + "/custom_hostnames",
            json={
                "hostname": "www.acmebakery.com",
                "ssl": {"method": "txt", "type": "dv"},
            },
        )
        assert made.status_code in (200, 201), made.text
        hostname_id = made.json()["result"]["id"]
        duplicate = http.post(
            zone + "/custom_hostnames",
            json={"hostname": "www.acmebakery.com", "ssl": {"method": "txt", "type": "dv"}},
        )
        assert duplicate.status_code >= 400
        invalid = http.post(
            zone + "/custom_hostnames",
            json={"hostname": "192.0.2.1", "ssl": {"method": "http", "type": "dv"}},
        )
        assert invalid.status_code == 400
        http.get(zone + "/custom_hostnames", params={"page": 1, "per_page": 50})
        http.get(zone + "/custom_hostnames", params={"hostname": "www.acmebakery.com"})
        http.get(zone + f"/custom_hostnames/{hostname_id}")
        cf.sim.point_dns("www.acmebakery.com")
        cf.clock.advance(3600)
        http.get(zone + f"/custom_hostnames/{hostname_id}")
        http.patch(
            zone + f"/custom_hostnames/{hostname_id}", json={"ssl": {"method": "txt", "type": "dv"}}
        )
        http.delete(zone + f"/custom_hostnames/{hostname_id}")
        assert http.get(zone + f"/custom_hostnames/{hostname_id}").status_code == 404

        http.post(zone + "/purge_cache", json={"hosts": ["www.acmebakery.com"]})
        http.post(zone + "/purge_cache", json={"prefixes": ["www.acmebakery.com/menu"]})
        http.post(zone + "/purge_cache", json={"files": ["https://www.acmebakery.com/a.css"]})

        http.post(
            database + "/query",
            json={
                "sql": "CREATE TABLE t (a TEXT, b TEXT); INSERT INTO t VALUES (?, ?)",
                "params": ["1", "x"],
            },
        )
        http.post(database + "/query", json={"sql": "SELECT * FROM t WHERE a = ?", "params": ["1"]})
        assert http.post(database + "/query", json={"sql": "SELECT * FROM nope"}).status_code == 400

        cf.control(
            "POST",
            "/faults",
            json={"rules": [{"path_prefix": "/zones", "burst_429": 1, "retry_after": 5}]},
        )
        assert http.get(zone + "/custom_hostnames").status_code == 429
        cf.control(
            "POST", "/faults", json={"rules": [{"path_prefix": "/accounts", "error_rate": 1.0}]}
        )
        assert http.get(project).status_code >= 500
        cf.control("DELETE", "/faults")


def test_every_simulator_answer_conforms_to_the_contract(
    cf: Any, cloudflare_checker: OpenAPIChecker
) -> None:
    drive_simulator_by_hand(cf)
    assert_conforms(cloudflare_checker, cf.calls())


def test_a_simulator_answer_with_a_wrong_field_would_be_caught(
    cf: Any, cloudflare_checker: OpenAPIChecker
) -> None:
    drive_simulator_by_hand(cf)
    calls = cf.calls()
    tampered = [dict(call) for call in calls]
    target = next(
        call
        for call in tampered
        if call["method"] == "GET"
        and "/custom_hostnames/" in call["path"]
        and call["status"] == 200
    )
    body = json.loads(json.dumps(target["response_json"]))
    body["result"]["ssl"]["status"] = "done"
    target["response_json"] = body
    problems = cloudflare_checker.check_records(tampered)
    assert len(problems) == 1
    assert f"#{target['seq']} " in problems[0]
    assert "response.result.ssl" in problems[0]


# ---------------------------------------------------------------------------------------------
# The adapter against the simulator: our requests and its answers
# ---------------------------------------------------------------------------------------------


def make_client(cf: Any, instant_time: Any) -> CloudflareClient:
    """A client for the simulator whose waits (429, backoff) cost no real time."""
    settings = CloudflareSettings(
        base_url=cf.base_url,
        token=Secret(cf.token),
        account_id=cf.account_id,
        zone_id=cf.zone_id,
    )
    bucket = TokenBucket(
        capacity=100_000, period=300, clock=instant_time.clock, sleep=instant_time.sleep
    )
    return CloudflareClient(
        settings,
        bucket=bucket,
        retry=RetryPolicy(attempts=4, base=0.01, cap=0.05),
        rng=random.Random(7),
        sleep=instant_time.sleep,
        purge_chunk=2,
    )


def site_files(version: int) -> dict[str, bytes]:
    return {
        "index.html": f"<h1>Acme bakery v{version}</h1>".encode(),
        "menu/index.html": f"<ul><li>bread v{version}</li></ul>".encode(),
        "style.css": b"body{font-family:serif}",
        "_headers": b"/*\n  X-Frame-Options: DENY\n",
    }


async def publish(client: CloudflareClient, version: int) -> Deployment:
    tag = DeploymentTag(
        site="acme-home", version=version, publish=new_publish_id(), commit="c0ffee"
    )
    return await client.create_deployment(
        "acme-home",
        files=site_files(version),
        branch="main",
        commit_hash=tag.commit,
        commit_message=tag.commit_message(),
    )


async def drive_adapter(cf: Any, client: CloudflareClient) -> None:
    """Every CloudflareClient method, plus the documented failures it must survive."""
    cf.sim.configure(**ORDINARY_ACCOUNT)
    project = "acme-home"
    stage_time = 10 * cf.config.stage_seconds

    # Pages: project, direct upload, list, get, rollback, retry, not found.
    await client.get_project(project)
    v12 = await publish(client, 12)
    cf.clock.advance(stage_time)
    assert (await client.get_deployment(project, v12.id)).id == v12.id
    v13 = await publish(client, 13)
    cf.clock.advance(stage_time)
    assert {d.id for d in await client.list_deployments(project)} >= {v12.id, v13.id}
    await client.list_deployments(project, env="production")
    await client.get_project(project)
    await client.rollback_deployment(project, v12.id)
    cf.sim.set_deployment_behaviour(Behaviour(mode="fail", stage="build"), project=project)
    failed = await publish(client, 14)
    cf.clock.advance(stage_time)
    await client.retry_deployment(project, failed.id)
    with pytest.raises(NotFoundError):
        await client.get_deployment(project, UNKNOWN_UUID)
    with pytest.raises(NotFoundError):
        await client.get_project("no-such-site")
    with pytest.raises(PermanentError):
        await client.rollback_deployment(project, failed.id)

    # Custom hostnames: create, paginated list, filter, get, edit (retrigger, origin), delete.
    for index in range(12):
        cf.sim.add_hostname(f"shop{index}.acme-customers.com")
    made = await client.create_custom_hostname("www.acmebakery.com", ssl_method="txt")
    listed = await client.list_custom_hostnames(per_page=5)
    assert len(listed) == 13
    found = await client.list_custom_hostnames(hostname="www.acmebakery.com")
    assert [h.id for h in found] == [made.id]
    await client.get_custom_hostname(made.id)
    cf.sim.point_dns("www.acmebakery.com")
    cf.clock.advance(3600)
    await client.get_custom_hostname(made.id)
    await client.edit_custom_hostname(made.id, ssl_method="txt")
    # Custom metadata, for an account entitled to it (an optional setting, never required).
    cf.sim.configure(entitled_custom_metadata=True)
    marker = ownership_metadata(site="acme-home", tenant="acme")
    tagged = await client.create_custom_hostname(
        "shop.acmebakery.com", ssl_method="http", custom_metadata=marker
    )
    await client.edit_custom_hostname(tagged.id, custom_metadata={**marker, "note": "kept"})
    cf.sim.configure(entitled_custom_metadata=False)
    await client.delete_custom_hostname(made.id)
    await client.delete_custom_hostname(made.id)  # already gone: 404, treated as done
    with pytest.raises(NotFoundError):
        await client.get_custom_hostname(made.id)
    with pytest.raises(PermanentError):
        await client.create_custom_hostname("192.0.2.1", ssl_method="http")

    # Cache purge by hosts, prefixes and files (chunked by 2).
    await client.purge_cache(
        hosts=["www.acmebakery.com", "acmebakery.com", "shop0.acme-customers.com"],
        prefixes=["www.acmebakery.com/menu"],
        files=["https://www.acmebakery.com/style.css"],
    )

    # D1: DDL, writes with string and non-string values, a read, invalid SQL.
    database = cf.database_id
    await client.d1_query(database, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    await client.d1_query(database, "INSERT INTO notes (body) VALUES (?)", ["hello"])
    await client.d1_query(database, "INSERT INTO notes (id, body) VALUES (?, ?)", [7, None])
    rows = await client.d1_query(database, "SELECT body FROM notes WHERE body = ?", ["hello"])
    assert list(rows[0].results) == [{"body": "hello"}]
    with pytest.raises(PermanentError):
        await client.d1_query(database, "SELECT * FROM no_such_table")

    # A 429 burst: waited out (on the fake clock), then the read succeeds.
    cf.control(
        "POST",
        "/faults",
        json={
            "rules": [
                {"path_prefix": "/zones", "burst_429": 1, "retry_after": 2},
            ]
        },
    )
    await client.list_custom_hostnames(hostname="shop0.acme-customers.com")
    cf.control("DELETE", "/faults")


async def test_every_adapter_exchange_conforms_to_the_contract(
    cf: Any, cloudflare_checker: OpenAPIChecker, instant_time: Any
) -> None:
    async with make_client(cf, instant_time) as client:
        await drive_adapter(cf, client)
    calls = cf.calls()
    assert_conforms(cloudflare_checker, calls)
    assert any(call["status"] == 429 for call in calls)
    assert instant_time.slept, "the 429 was not waited out"
    listings = [
        call["query"]
        for call in calls
        if call["method"] == "GET" and call["path"].endswith("/custom_hostnames")
    ]
    pages = {q.get("page") for q in listings if q.get("per_page") == "5"}
    assert {"1", "2", "3"} <= pages, f"hostname list pages asked: {sorted(map(str, pages))}"
    assert any(q.get("hostname") == "www.acmebakery.com" for q in listings)
