"""The simulator judged by the official ``cloudflare`` SDK (5.9.0): its client and its models.

Every request here is made by the SDK's own client (``cloudflare.Cloudflare`` pointed at the
simulator), so the paths, methods and bodies are Cloudflare's, not ours; every answer is then
judged by the SDK type of that operation in strict mode, unknown fields included
(``sdk_judge.judge``). The simulator runs as an ordinary account (the config defaults).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest
from cloudflare.types.custom_hostnames import (
    CustomHostnameCreateResponse,
    CustomHostnameDeleteResponse,
    CustomHostnameEditResponse,
    CustomHostnameGetResponse,
    CustomHostnameListResponse,
    FallbackOriginDeleteResponse,
    FallbackOriginGetResponse,
    FallbackOriginUpdateResponse,
)
from cloudflare.types.d1 import QueryResult
from cloudflare.types.kv import (
    Namespace,
    NamespaceBulkDeleteResponse,
    NamespaceBulkGetResponse,
    NamespaceBulkUpdateResponse,
)
from cloudflare.types.kv.namespaces import Key
from cloudflare.types.pages import Deployment, Project
from cloudflare.types.workers import (
    RouteCreateResponse,
    RouteDeleteResponse,
    RouteGetResponse,
    RouteListResponse,
    RouteUpdateResponse,
    Script,
    ScriptUpdateResponse,
)
from cloudflare.types.workers.scripts import ScriptAndVersionSettingGetResponse

from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.runtime.daemon_sweep import MOVING_HOSTNAME_STATUSES, MOVING_SSL_STATUSES
from reconciler.sandbox.cloudflare_hostnames import HOSTNAME_STATUSES, SSL_STATUSES
from reconciler.sandbox.workerd import DISPATCH_WORKER
from reconciler.settings import CloudflareSettings, Secret

from support.contract.sdk_judge import SDK_CORRECTIONS, judge, judge_calls

ORDINARY = {
    "entitled_custom_metadata": False,
    "entitled_custom_origin": False,
    "custom_origin_outside_zone": False,
    "refuse_reserved_tlds": True,
}
WORKER = b"export default { async fetch() { return new Response('ok'); } };\n"


@pytest.fixture
def sdk(cf: Any) -> Iterator[cloudflare.Cloudflare]:
    """The official client against the simulator (an ordinary account), no retries."""
    cf.sim.configure(**ORDINARY, stage_seconds=0.0)
    client = cloudflare.Cloudflare(api_token=cf.token, base_url=cf.base_url, max_retries=0)
    try:
        yield client
    finally:
        client.close()


def _result(raw: Any) -> Any:
    """The ``result`` of an enveloped answer, after checking the envelope itself."""
    body = raw.http_response.json()
    assert body["success"] is True, body
    assert body["errors"] == [] and isinstance(body["messages"], list)
    return body["result"]


def _conforms(model: Any, data: Any) -> None:
    problems = judge(model, data)
    assert problems == [], f"{getattr(model, '__name__', model)}: {problems}"


# ---- custom hostnames and the fallback origin -------------------------------------------------


def test_custom_hostname_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    hostnames = sdk.custom_hostnames.with_raw_response
    made = _result(
        hostnames.create(
            zone_id=cf.zone_id, hostname="www.acmebakery.com", ssl={"method": "txt", "type": "dv"}
        )
    )
    got = _result(hostnames.get(made["id"], zone_id=cf.zone_id))
    listed = _result(hostnames.list(zone_id=cf.zone_id))
    edited = _result(
        hostnames.edit(made["id"], zone_id=cf.zone_id, ssl={"method": "txt", "type": "dv"})
    )
    cf.clock.advance(10)
    later = _result(hostnames.get(made["id"], zone_id=cf.zone_id))
    _conforms(CustomHostnameCreateResponse, made)
    _conforms(CustomHostnameGetResponse, got)
    _conforms(CustomHostnameGetResponse, later)
    for item in listed:
        _conforms(CustomHostnameListResponse, item)
    _conforms(CustomHostnameEditResponse, edited)


def test_an_active_hostname_with_its_certificate_conforms(
    cf: Any, sdk: cloudflare.Cloudflare
) -> None:
    cf.sim.point_dns("shop.acmebakery.com")
    made = sdk.custom_hostnames.with_raw_response.create(
        zone_id=cf.zone_id, hostname="shop.acmebakery.com", ssl={"method": "http", "type": "dv"}
    )
    cf.clock.advance(120)
    got = _result(
        sdk.custom_hostnames.with_raw_response.get(_result(made)["id"], zone_id=cf.zone_id)
    )
    assert got["status"] == "active" and got["ssl"]["status"] == "active"
    _conforms(CustomHostnameGetResponse, got)


def test_the_sdks_delete_reads_the_bare_answer(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    cf.sim.configure(hostname_delete_body="bare")
    made = sdk.custom_hostnames.create(
        zone_id=cf.zone_id, hostname="www.acmebakery.com", ssl={"method": "http", "type": "dv"}
    )
    raw = sdk.custom_hostnames.with_raw_response.delete(made.id, zone_id=cf.zone_id)
    body = raw.http_response.json()
    assert body == {"id": made.id}
    _conforms(CustomHostnameDeleteResponse, body)


def test_the_enveloped_delete_answer_carries_the_same_type(
    cf: Any, sdk: cloudflare.Cloudflare
) -> None:
    made = sdk.custom_hostnames.create(
        zone_id=cf.zone_id, hostname="www.acmebakery.com", ssl={"method": "http", "type": "dv"}
    )
    raw = sdk.custom_hostnames.with_raw_response.delete(made.id, zone_id=cf.zone_id)
    _conforms(CustomHostnameDeleteResponse, _result(raw))


def test_the_sdk_sees_a_refusal_as_an_api_error_with_cloudflares_code(
    cf: Any, sdk: cloudflare.Cloudflare
) -> None:
    with pytest.raises(cloudflare.BadRequestError) as caught:
        sdk.custom_hostnames.create(
            zone_id=cf.zone_id, hostname="www.acmebakery.test", ssl={"method": "http", "type": "dv"}
        )
    assert caught.value.body is not None
    assert json.loads(caught.value.response.text)["errors"][0]["code"] == 1409


def test_fallback_origin_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    fallback = sdk.custom_hostnames.fallback_origin.with_raw_response
    origin = f"service.{cf.config.zone_name}"
    updated = _result(fallback.update(zone_id=cf.zone_id, origin=origin))
    got = _result(fallback.get(zone_id=cf.zone_id))
    deleted = _result(fallback.delete(zone_id=cf.zone_id))
    assert got["origin"] == origin
    _conforms(FallbackOriginUpdateResponse, updated)
    _conforms(FallbackOriginGetResponse, got)
    _conforms(FallbackOriginDeleteResponse, deleted)


# ---- Workers KV -----------------------------------------------------------------------------


def test_kv_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    namespaces = sdk.kv.namespaces
    made = _result(namespaces.with_raw_response.create(account_id=cf.account_id, title="routing"))
    listed = _result(namespaces.with_raw_response.list(account_id=cf.account_id))
    raw = namespaces.with_raw_response
    wrote = _result(
        raw.bulk_update(
            made["id"],
            account_id=cf.account_id,
            body=[
                {"key": "www.acmebakery.com", "value": '{"action": "serve"}', "metadata": {"v": 1}},
                {"key": "acmebakery.com", "value": "plain"},
            ],
        )
    )
    got = _result(
        raw.bulk_get(made["id"], account_id=cf.account_id, keys=["www.acmebakery.com", "none"])
    )
    got_meta = _result(
        raw.bulk_get(
            made["id"], account_id=cf.account_id, keys=["www.acmebakery.com"], with_metadata=True
        )
    )
    key_list = _result(namespaces.keys.with_raw_response.list(made["id"], account_id=cf.account_id))
    deleted = _result(
        raw.bulk_delete(made["id"], account_id=cf.account_id, body=["acmebakery.com"])
    )
    _conforms(Namespace, made)
    for item in listed:
        _conforms(Namespace, item)
    _conforms(NamespaceBulkUpdateResponse, wrote)
    _conforms(NamespaceBulkGetResponse, got)
    _conforms(NamespaceBulkGetResponse, got_meta)
    for item in key_list:
        _conforms(Key, item)
    _conforms(NamespaceBulkDeleteResponse, deleted)


def test_the_sdk_pages_through_keys_with_the_cursor(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    made = sdk.kv.namespaces.create(account_id=cf.account_id, title="routing")
    assert made is not None
    pairs = [{"key": f"h{i:04d}.acmebakery.com", "value": "x"} for i in range(2500)]
    sdk.kv.namespaces.bulk_update(made.id, account_id=cf.account_id, body=pairs)
    names = [k.name for k in sdk.kv.namespaces.keys.list(made.id, account_id=cf.account_id)]
    assert names == sorted(p["key"] for p in pairs)


def test_single_values_through_the_sdk(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    made = sdk.kv.namespaces.create(account_id=cf.account_id, title="routing")
    assert made is not None
    values = sdk.kv.namespaces.values
    values.update(
        "__page__/suspended",
        account_id=cf.account_id,
        namespace_id=made.id,
        value=b"<p>paused</p>",
        metadata={"by": "test"},
    )
    got = values.get("__page__/suspended", account_id=cf.account_id, namespace_id=made.id)
    assert got.read() == b"<p>paused</p>"
    values.delete("__page__/suspended", account_id=cf.account_id, namespace_id=made.id)
    with pytest.raises(cloudflare.NotFoundError):
        values.get("__page__/suspended", account_id=cf.account_id, namespace_id=made.id)


# ---- Workers scripts and routes -------------------------------------------------------------


def _upload(cf: Any, sdk: cloudflare.Cloudflare, namespace_id: str) -> Any:
    return sdk.workers.scripts.with_raw_response.update(
        "dispatch",
        account_id=cf.account_id,
        metadata={
            "main_module": "index.js",
            "compatibility_date": "2024-09-23",
            "bindings": [
                {"type": "kv_namespace", "name": "ROUTES", "namespace_id": namespace_id},
                {
                    "type": "plain_text",
                    "name": "PAGES_ORIGIN",
                    "text": "https://{project}.pages.dev",
                },
            ],
        },
        files=[("index.js", WORKER, "application/javascript+module")],
    )


def test_worker_script_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    namespace = sdk.kv.namespaces.create(account_id=cf.account_id, title="routing")
    assert namespace is not None
    uploaded = _result(_upload(cf, sdk, namespace.id))
    listed = _result(sdk.workers.scripts.with_raw_response.list(account_id=cf.account_id))
    settings = _result(
        sdk.workers.scripts.script_and_version_settings.with_raw_response.get(
            "dispatch", account_id=cf.account_id
        )
    )
    content = sdk.workers.scripts.content.get("dispatch", account_id=cf.account_id)
    _conforms(ScriptUpdateResponse, uploaded)
    for item in listed:
        _conforms(Script, item)
    _conforms(ScriptAndVersionSettingGetResponse, settings)
    assert content.read() == WORKER
    assert [b["type"] for b in settings["bindings"]] == ["kv_namespace", "plain_text"]


def test_a_worker_bound_to_a_missing_namespace_is_refused_for_the_sdk(
    cf: Any, sdk: cloudflare.Cloudflare
) -> None:
    with pytest.raises(cloudflare.BadRequestError) as caught:
        _upload(cf, sdk, "0" * 32)
    assert json.loads(caught.value.response.text)["errors"][0]["code"] == 10041


def test_worker_route_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    namespace = sdk.kv.namespaces.create(account_id=cf.account_id, title="routing")
    assert namespace is not None
    _upload(cf, sdk, namespace.id)
    routes = sdk.workers.routes.with_raw_response
    made = _result(routes.create(zone_id=cf.zone_id, pattern="*/*", script="dispatch"))
    got = _result(routes.get(made["id"], zone_id=cf.zone_id))
    listed = _result(routes.list(zone_id=cf.zone_id))
    updated = _result(
        routes.update(made["id"], zone_id=cf.zone_id, pattern="*/*", script="dispatch")
    )
    deleted = _result(routes.delete(made["id"], zone_id=cf.zone_id))
    _conforms(RouteCreateResponse, made)
    _conforms(RouteGetResponse, got)
    for item in listed:
        _conforms(RouteListResponse, item)
    _conforms(RouteUpdateResponse, updated)
    _conforms(RouteDeleteResponse, deleted)


# ---- Pages and D1 ---------------------------------------------------------------------------


def _deploy(cf: Any) -> str:
    with cf.client() as http:
        made = http.post(
            f"/accounts/{cf.account_id}/pages/projects/acme-home/deployments",
            files={"manifest": (None, json.dumps({"/index.html": "0" * 32}))},
        )
    assert made.status_code == 200, made.text
    return str(made.json()["result"]["id"])


def test_pages_project_and_deployment_answers_conform(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    empty = _result(sdk.pages.projects.with_raw_response.get("acme-home", account_id=cf.account_id))
    first = _deploy(cf)
    cf.clock.advance(1)
    _deploy(cf)
    cf.clock.advance(1)
    sdk.pages.projects.deployments.rollback(
        first, account_id=cf.account_id, project_name="acme-home"
    )
    project = _result(
        sdk.pages.projects.with_raw_response.get("acme-home", account_id=cf.account_id)
    )
    projects = _result(sdk.pages.projects.with_raw_response.list(account_id=cf.account_id))
    deployments = _result(
        sdk.pages.projects.deployments.with_raw_response.list("acme-home", account_id=cf.account_id)
    )
    one = _result(
        sdk.pages.projects.deployments.with_raw_response.get(
            first, account_id=cf.account_id, project_name="acme-home"
        )
    )
    _conforms(Project, empty)
    _conforms(Project, project)
    for item in projects:
        _conforms(Project, item)
    for item in deployments:
        _conforms(Deployment, item)
    _conforms(Deployment, one)
    assert "production_branch" not in one


def test_d1_query_answers_conform_for_sql_and_batch(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    database = sdk.d1.database.with_raw_response
    plain = _result(
        database.query(cf.database_id, account_id=cf.account_id, sql="SELECT 1 AS one; SELECT 2")
    )
    batch = _result(
        database.query(
            cf.database_id,
            account_id=cf.account_id,
            batch=[{"sql": "SELECT ? AS a", "params": ["x"]}, {"sql": "SELECT 3 AS b"}],
        )
    )
    assert [r["results"] for r in batch] == [[{"a": "x"}], [{"b": 3}]]
    for item in [*plain, *batch]:
        _conforms(QueryResult, item)


# ---- the judge itself -------------------------------------------------------------------------


def test_the_judge_catches_a_wrong_type_a_missing_field_and_an_invented_one() -> None:
    good = {"id": "a" * 32, "pattern": "*/*", "script": "dispatch"}
    assert judge(RouteGetResponse, good) == []
    assert judge(RouteGetResponse, {**good, "pattern": 7})
    assert judge(RouteGetResponse, {"id": good["id"]})
    assert judge(RouteGetResponse, {**good, "zone": "x"}) == [
        "$.zone: not a field of RouteGetResponse"
    ]


def test_every_sdk_correction_is_still_needed(cf: Any, sdk: cloudflare.Cloudflare) -> None:
    deployment_id = _deploy(cf)
    one = _result(
        sdk.pages.projects.deployments.with_raw_response.get(
            deployment_id, account_id=cf.account_id, project_name="acme-home"
        )
    )
    assert [c.name for c in SDK_CORRECTIONS] == ["Deployment.source"]
    assert any("source" in p for p in judge(Deployment, one, corrections=False))
    assert judge(Deployment, one) == []


# ---- what is sent: requests judged by the SDK's params types ---------------------------------


def _ids(cf: Any) -> dict[str, str]:
    return {"account_id": cf.account_id, "zone_id": cf.zone_id}


def _adapter(cf: Any, instant_time: Any) -> CloudflareClient:
    """The reconciler's own Cloudflare adapter against the simulator, waits costing no time."""
    settings = CloudflareSettings(
        base_url=cf.base_url, token=Secret(cf.token), account_id=cf.account_id, zone_id=cf.zone_id
    )
    bucket = TokenBucket(
        capacity=100_000, period=300, clock=instant_time.clock, sleep=instant_time.sleep
    )
    return CloudflareClient(
        settings,
        bucket=bucket,
        retry=RetryPolicy(attempts=2, base=0.01, cap=0.05),
        sleep=instant_time.sleep,
    )


async def test_the_adapters_hostname_and_d1_requests_match_the_sdks_params(
    cf: Any, sdk: cloudflare.Cloudflare, instant_time: Any
) -> None:
    cf.sim.point_dns("www.acmebakery.com")
    async with _adapter(cf, instant_time) as client:
        made = await client.create_custom_hostname("www.acmebakery.com", ssl_method="http")
        await client.edit_custom_hostname(made.id, ssl_method="txt")
        await client.list_custom_hostnames(hostname="www.acmebakery.com")
        await client.delete_custom_hostname(made.id)
        await client.d1_query(cf.database_id, "SELECT ? AS a", ["x"])
        await client.d1_query(cf.database_id, "SELECT ? AS a, ? AS b", ["x", 7])
    judged, problems = judge_calls(cf.calls(), _ids(cf))
    assert judged == 4
    assert problems == []


async def test_the_adapters_kv_and_workers_requests_match_the_sdks_params(
    cf: Any, sdk: cloudflare.Cloudflare, instant_time: Any
) -> None:
    kv = pytest.importorskip(
        "reconciler.providers.cloudflare_kv", reason="the KV adapter arrives with issue 11's client"
    )
    workers = pytest.importorskip("reconciler.providers.cloudflare_workers")
    async with _adapter(cf, instant_time) as client:
        table = kv.KvClient(client)
        namespace = await table.create_namespace("sitebuilder-routing")
        await table.bulk_put(
            namespace,
            [kv.KvPair("www.acmebakery.com", json.dumps({"action": "serve", "project": "a"}))],
        )
        await table.bulk_get(namespace, ["www.acmebakery.com"])
        await table.list_keys(namespace)
        await table.bulk_delete(namespace, ["www.acmebakery.com"])
        platform = workers.WorkersClient(client)
        await platform.deploy_script(
            "dispatch", source=DISPATCH_WORKER.read_bytes(), namespace_id=namespace, version="v1"
        )
        route = await platform.create_route("*/*", "dispatch")
        await platform.update_route(route.id, "*/*", "dispatch")
        await platform.set_fallback_origin(f"service.{cf.config.zone_name}")
    judged, problems = judge_calls(cf.calls(), _ids(cf))
    assert judged >= 8
    assert problems == []


def test_requests_the_sdk_itself_sends_are_judged_clean(
    cf: Any, sdk: cloudflare.Cloudflare
) -> None:
    namespace = sdk.kv.namespaces.create(account_id=cf.account_id, title="routing")
    assert namespace is not None
    sdk.kv.namespaces.bulk_update(
        namespace.id, account_id=cf.account_id, body=[{"key": "a.com", "value": "x"}]
    )
    sdk.kv.namespaces.bulk_get(
        namespace.id, account_id=cf.account_id, keys=["a.com"], with_metadata=True
    )
    sdk.kv.namespaces.bulk_delete(namespace.id, account_id=cf.account_id, body=["a.com"])
    _upload(cf, sdk, namespace.id)
    route = sdk.workers.routes.create(zone_id=cf.zone_id, pattern="*/*", script="dispatch")
    sdk.workers.routes.update(route.id, zone_id=cf.zone_id, pattern="*/*", script="dispatch")
    sdk.custom_hostnames.fallback_origin.update(
        zone_id=cf.zone_id, origin=f"fb.{cf.config.zone_name}"
    )
    judged, problems = judge_calls(cf.calls(), _ids(cf))
    assert (judged, problems) == (8, [])


def test_the_request_judge_catches_what_cloudflare_would_not_take(cf: Any) -> None:
    with cf.client() as http:
        namespace = http.post(
            f"/accounts/{cf.account_id}/storage/kv/namespaces", json={"title": "rt"}
        ).json()["result"]["id"]
        http.put(
            f"/accounts/{cf.account_id}/storage/kv/namespaces/{namespace}/bulk",
            json=[{"key": "a.com", "value": {"action": "serve"}, "ttl": 60}],
        )
        http.post(
            f"/zones/{cf.zone_id}/custom_hostnames",
            json={"hostname": "a.com", "ssl": {"method": "http", "type": "dv"}, "origin": "x"},
        )
    _, problems = judge_calls(cf.calls(), _ids(cf))
    assert any("value" in p and "string" in p for p in problems), problems
    assert any("ttl: not a field" in p for p in problems), problems
    assert any("origin: not a field" in p for p in problems), problems


def test_the_moving_sweeps_status_filters_are_the_sdks_list_params() -> None:
    from cloudflare.types.custom_hostnames import custom_hostname_list_params as params

    hints = typing.get_type_hints(params.CustomHostnameListParams)
    statuses = set(typing.get_args(hints["hostname_status"]))
    ssl_statuses = set(typing.get_args(hints["ssl_status"]))
    assert set(MOVING_HOSTNAME_STATUSES) <= statuses
    assert set(MOVING_SSL_STATUSES) <= ssl_statuses
    assert "active" not in set(MOVING_HOSTNAME_STATUSES) | set(MOVING_SSL_STATUSES)
    # The simulator refuses what the SDK's enums do not hold, and accepts all they hold.
    assert statuses == set(HOSTNAME_STATUSES) and ssl_statuses == set(SSL_STATUSES)
