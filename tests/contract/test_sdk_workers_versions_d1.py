"""The simulator's Workers versions/deployments and D1 Time Travel, judged by the official SDK.

Each answer is validated strictly with the ``cloudflare`` SDK's own models (``sdk_strict``), and
the SDK client itself drives the endpoints, so the requests it sends are the ones served. The
sandbox seeds the API Worker ``site-builder-api-production`` with three versions, the second
deployed at 100 %.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from cloudflare import Cloudflare
from cloudflare.types.d1.database import (
    TimeTravelGetBookmarkResponse,
    TimeTravelRestoreResponse,
)
from cloudflare.types.workers.scripts import (
    Deployment,
    DeploymentListResponse,
    VersionGetResponse,
    VersionListResponse,
)
from cloudflare.types.workers.scripts.version_get_response import (
    Metadata,
    Resources,
    ResourcesScript,
    ResourcesScriptRuntime,
)

from support.contract.sdk_strict import strict

API_WORKER = "site-builder-api-production"


@pytest.fixture
def sdk(cf: Any) -> Any:
    client = Cloudflare(api_token=cf.token, base_url=cf.base_url, max_retries=0)
    yield client
    client.close()


def envelope(cf: Any, method: str, path: str, **kwargs: Any) -> Any:
    with cf.client() as http:
        answer = http.request(method, f"/accounts/{cf.account_id}{path}", **kwargs)
    body = answer.json()
    assert answer.status_code == 200 and body["success"] is True, body
    return body["result"]


def test_the_api_worker_has_three_versions_and_the_second_serves(cf: Any, sdk: Any) -> None:
    result = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/versions")
    items = [strict(VersionListResponse, item) for item in result["items"]]
    assert [item.number for item in items] == [3, 2, 1]  # newest first
    page = sdk.workers.scripts.versions.list(API_WORKER, account_id=cf.account_id)
    assert [v.id for v in page.result.items] == [item.id for item in items]

    deployments = strict(
        DeploymentListResponse,
        envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/deployments"),
    )
    serving = deployments.deployments[0]
    assert [(v.version_id, v.percentage) for v in serving.versions] == [(items[1].id, 100)]


def test_one_version_reads_in_the_sdk_shape(cf: Any) -> None:
    first = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/versions")["items"][-1]
    one = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/versions/{first['id']}")
    # VersionGetResponse cannot build a pydantic schema in SDK 5.9 (its ``bindings`` type is a
    # bare class), so neither it nor the SDK's ``versions.get`` can parse any answer: its parts
    # are judged one by one, the rest by its declared fields.
    assert set(one) <= set(VersionGetResponse.__annotations__)
    assert set(one["resources"]) <= set(Resources.__annotations__)
    assert strict(Metadata, one["metadata"]).created_on
    assert strict(ResourcesScript, one["resources"]["script"]).etag
    strict(ResourcesScriptRuntime, one["resources"]["script_runtime"])
    assert one["number"] == 1


def test_a_gradual_deployment_splits_between_two_versions(cf: Any, sdk: Any) -> None:
    items = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/versions")["items"]
    newest, previous = items[0]["id"], items[1]["id"]
    created = sdk.workers.scripts.deployments.create(
        API_WORKER,
        account_id=cf.account_id,
        strategy="percentage",
        versions=[
            {"version_id": newest, "percentage": 10},
            {"version_id": previous, "percentage": 90},
        ],
        annotations={"workers_message": "canary 10 %"},
    )
    assert created.strategy == "percentage"
    listed = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/deployments")
    serving = strict(Deployment, listed["deployments"][0])
    assert serving.id == created.id
    assert {(v.version_id, v.percentage) for v in serving.versions} == {
        (newest, 10),
        (previous, 90),
    }
    assert serving.annotations is not None and serving.annotations.workers_message == "canary 10 %"
    with cf.client() as http:
        answers = [
            http.get(cf.base_url.removesuffix("/client/v4") + f"/__workers/{API_WORKER}/healthz")
            for _ in range(100)
        ]
    served = [a.headers["x-worker-version"] for a in answers]
    assert served.count(newest) == 10 and served.count(previous) == 90
    assert {a.status_code for a in answers if a.headers["x-worker-version"] == newest} == {500}


@pytest.mark.parametrize(
    "versions",
    [
        [{"version_id": "00000000-0000-0000-0000-000000000000", "percentage": 100}],
        [],
        "three",
        "sum",
    ],
)
def test_a_deployment_of_an_unknown_version_or_a_bad_split_is_refused(
    cf: Any, versions: Any
) -> None:
    items = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/versions")["items"]
    if versions == "three":
        versions = [{"version_id": item["id"], "percentage": 100 / 3} for item in items]
    elif versions == "sum":
        versions = [{"version_id": items[0]["id"], "percentage": 50}]
    before = envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/deployments")
    with cf.client() as http:
        answer = http.post(
            f"/accounts/{cf.account_id}/workers/scripts/{API_WORKER}/deployments",
            json={"strategy": "percentage", "versions": versions},
        )
    assert answer.status_code in (400, 404)
    assert answer.json()["success"] is False
    assert envelope(cf, "GET", f"/workers/scripts/{API_WORKER}/deployments") == before


def test_time_travel_bookmark_and_restore_really_go_back(cf: Any, sdk: Any) -> None:
    database = f"/d1/database/{cf.database_id}"
    envelope(cf, "POST", database + "/query", json={"sql": "CREATE TABLE t (v TEXT)"})
    envelope(cf, "POST", database + "/query", json={"sql": "INSERT INTO t VALUES ('kept')"})
    mark = strict(
        TimeTravelGetBookmarkResponse, envelope(cf, "GET", database + "/time_travel/bookmark")
    )
    again = sdk.d1.database.time_travel.get_bookmark(cf.database_id, account_id=cf.account_id)
    assert again.bookmark == mark.bookmark  # nothing ran in between: the same state
    envelope(cf, "POST", database + "/query", json={"sql": "INSERT INTO t VALUES ('lost')"})

    restored = sdk.d1.database.time_travel.restore(
        cf.database_id, account_id=cf.account_id, bookmark=mark.bookmark
    )
    raw = strict(TimeTravelRestoreResponse, restored.model_dump())
    assert raw.previous_bookmark and raw.previous_bookmark != mark.bookmark
    connection = sqlite3.connect(cf.sim.d1_path)
    try:
        assert connection.execute("SELECT v FROM t").fetchall() == [("kept",)]
    finally:
        connection.close()
    sdk.d1.database.time_travel.restore(
        cf.database_id, account_id=cf.account_id, bookmark=raw.previous_bookmark
    )
    rows = envelope(cf, "POST", database + "/query", json={"sql": "SELECT v FROM t ORDER BY v"})
    assert rows[0]["results"] == [{"v": "kept"}, {"v": "lost"}]  # the restore undone


def test_a_bookmark_never_handed_out_is_refused(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(
            f"/accounts/{cf.account_id}/d1/database/{cf.database_id}/time_travel/restore",
            params={"bookmark": "00000001-00000000-00000000-" + "0" * 32},
        )
    assert answer.status_code == 400 and answer.json()["success"] is False
