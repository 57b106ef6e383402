"""Unit tests of the Cloudflare adapter at the httpx seam (``httpx.MockTransport``).

Envelope parsing, pagination, error mapping, 429 handling on the shared bucket, retries of
idempotent calls only, creates that look before being sent again, purge chunking, D1 parameter
encoding, Direct Upload sequencing, and the token never showing up anywhere. Time is fake: the
bucket and the retries share one ``FakeTime``, so waits are recorded, not slept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.providers.cloudflare import (
    CloudflareClient,
    DeploymentTag,
    DuplicateHostnameError,
    ProjectMemo,
    deployment_poll_delays,
    ownership_metadata,
)
from reconciler.providers.cloudflare_errors import ApiMessage, classify
from reconciler.providers.cloudflare_models import Deployment, owner_of
from reconciler.providers.http import retry_after_seconds
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.settings import CloudflareSettings, Secret

TOKEN = "cf-test-token-4b1d9e77c0ffee"
BASE = "https://api.cloudflare.test/client/v4"
ZONE = "zone0000000000000000000000000001"
ACCOUNT = "acct0000000000000000000000000001"
HOSTNAMES_PATH = f"/client/v4/zones/{ZONE}/custom_hostnames"
DEPLOYMENTS_PATH = f"/client/v4/accounts/{ACCOUNT}/pages/projects/acme-home/deployments"

POLICY = RetryPolicy(attempts=4, base=0.5, cap=8.0)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class FakeTime:
    """A clock and a sleep that only move when something waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def envelope(result: Any, **info: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if info:
        body["result_info"] = info
    return body


def failure(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def hostname_json(name: str, *, ident: str | None = None, metadata: dict[str, str] | None = None):
    body: dict[str, Any] = {
        "id": ident or f"00000000-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
        "hostname": name,
        "status": "pending",
        "ssl": {"id": "s", "status": "pending_validation", "method": "http", "type": "dv"},
        "verification_errors": ["custom hostname does not CNAME to this zone."],
        "created_at": "2026-01-01T00:00:00Z",
    }
    if metadata is not None:
        body["custom_metadata"] = metadata
    return body


def deployment_json(ident: str, *, message: str = "", commit: str = "", stages: Any = None):
    stages = stages or [
        {"name": "queued", "status": "active", "started_on": None, "ended_on": None}
    ]
    return {
        "id": ident,
        "short_id": ident[:8],
        "project_name": "acme-home",
        "environment": "production",
        "url": f"https://{ident[:8]}.acme-home.pages.dev",
        "created_on": "2026-01-01T00:00:00Z",
        "modified_on": "2026-01-01T00:00:00Z",
        "latest_stage": stages[-1],
        "stages": stages,
        "deployment_trigger": {
            "type": "ad_hoc",
            "metadata": {"branch": "main", "commit_hash": commit, "commit_message": message},
        },
        "aliases": None,
        "is_skipped": False,
    }


class Recorder:
    """Wraps a handler; records (fake time, method, path, request) of every request."""

    def __init__(self, handler: Handler, time: FakeTime) -> None:
        self.handler = handler
        self.time = time
        self.requests: list[tuple[float, str, str, httpx.Request]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append((self.time.now, request.method, request.url.path, request))
        return await self.handler(request)

    def methods(self) -> list[str]:
        return [f"{m} {p}" for _, m, p, _ in self.requests]


def make_client(
    handler: Handler,
    *,
    time: FakeTime | None = None,
    bucket: TokenBucket | None = None,
    retry: RetryPolicy = POLICY,
    **kwargs: Any,
) -> tuple[CloudflareClient, Recorder, FakeTime]:
    t = time or FakeTime()
    recorder = Recorder(handler, t)
    shared = bucket or TokenBucket(capacity=1200, period=300, clock=t.clock, sleep=t.sleep)
    settings = CloudflareSettings(
        base_url=BASE, token=Secret(TOKEN), account_id=ACCOUNT, zone_id=ZONE
    )
    client = CloudflareClient(
        settings,
        bucket=shared,
        transport=httpx.MockTransport(recorder),
        retry=retry,
        rng=random.Random(7),
        sleep=t.sleep,
        **kwargs,
    )
    return client, recorder, t


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# --------------------------------------------------------------------------- envelope, errors


async def test_a_success_envelope_is_unwrapped_into_a_typed_hostname() -> None:
    marker = ownership_metadata(site="acme-home", tenant="acme")

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        return respond(200, envelope(hostname_json("www.acme.test", metadata=marker)))

    client, _, _ = make_client(handler)
    async with client:
        found = await client.get_custom_hostname("00000000-0000-4000-8000-000000000001")
    assert found.hostname == "www.acme.test"
    assert found.ssl_status == "pending_validation"
    assert found.owner is not None and found.owner.site == "acme-home"
    assert client.calls == {"GET /zones/{zone_id}/custom_hostnames/{custom_hostname_id}": 1}


async def test_a_failure_envelope_under_http_200_is_still_an_error() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, failure(1435, "The custom hostname ID is invalid."))

    client, _, _ = make_client(handler)
    async with client:
        with pytest.raises(PermanentError, match="1435"):
            await client.get_custom_hostname("bad")


@pytest.mark.parametrize(
    ("status", "code", "expected", "not_expected"),
    [
        (404, 1436, NotFoundError, None),
        (404, 8000007, NotFoundError, None),
        (404, 7404, NotFoundError, None),
        (400, 7500, PermanentError, NotFoundError),
        (400, 7003, PermanentError, NotFoundError),
        (401, 10000, PermanentError, NotFoundError),
        (409, 1406, DuplicateHostnameError, None),
        (500, 1500, TransientError, None),
        (400, 8000000, TransientError, None),
        (503, 8000000, TransientError, None),
    ],
)
def test_cloudflare_codes_map_to_the_projects_error_types(
    status: int, code: int, expected: type[Exception], not_expected: type[Exception] | None
) -> None:
    error = classify(status, (ApiMessage(code, "boom"),), "GET /x")
    assert isinstance(error, expected)
    if not_expected is not None:
        assert not isinstance(error, not_expected)
    assert str(code) in str(error)
    if isinstance(error, TransientError):
        assert not error.not_applied


def test_code_971_is_a_rate_limit_that_certainly_had_no_effect() -> None:
    error = classify(400, (ApiMessage(971, "Please wait"),), "GET /x", retry_after=12)
    assert isinstance(error, TransientError)
    assert error.not_applied and error.retry_after == 12


async def test_a_2xx_answer_that_is_not_json_is_transient() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>gateway</html>")

    client, recorder, _ = make_client(handler, retry=RetryPolicy(attempts=1))
    async with client:
        with pytest.raises(TransientError, match="not JSON"):
            await client.get_project("acme-home")
    assert len(recorder.requests) == 1


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"retry-after": "17"})) == 17
    when = datetime(2030, 1, 1, 0, 1, 0, tzinfo=UTC)
    dated = httpx.Response(429, headers={"retry-after": format_datetime(when, usegmt=True)})
    assert retry_after_seconds(dated, now=when.timestamp() - 60) == pytest.approx(60)
    assert retry_after_seconds(httpx.Response(429, headers={"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx.Response(429)) is None


# --------------------------------------------------------------------------- pagination


def paged_hostnames(total: int, *, with_total: bool = True, clamp: int | None = None) -> Handler:
    names = [f"site{i:05d}.customer.test" for i in range(total)]

    async def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        per_page = int(request.url.params.get("per_page", "20"))
        if clamp is not None:
            per_page = min(per_page, clamp)
        chunk = names[(page - 1) * per_page : page * per_page]
        info: dict[str, Any] = {"page": page, "per_page": per_page, "count": len(chunk)}
        if with_total:
            info["total_count"] = total
        items = [hostname_json(n, ident=f"id-{n}") for n in chunk]
        return respond(200, envelope(items, **info))

    return handler


async def test_five_thousand_hostnames_are_listed_in_one_hundred_requests() -> None:
    client, recorder, _ = make_client(paged_hostnames(5000))
    async with client:
        found = await client.list_custom_hostnames()
    assert len(found) == 5000
    assert len({h.id for h in found}) == 5000
    assert len(recorder.requests) == 100
    assert all(r.url.params["per_page"] == "50" for *_, r in recorder.requests)


async def test_without_total_count_listing_stops_at_the_first_short_page() -> None:
    client, recorder, _ = make_client(paged_hostnames(120, with_total=False))
    async with client:
        found = await client.list_custom_hostnames()
    assert len(found) == 120
    assert [r.url.params["page"] for *_, r in recorder.requests] == ["1", "2", "3"]


async def test_a_server_using_smaller_pages_than_asked_is_still_read_to_the_end() -> None:
    client, recorder, _ = make_client(paged_hostnames(60, with_total=False, clamp=20))
    async with client:
        found = await client.list_custom_hostnames()
    assert len(found) == 60
    assert len(recorder.requests) == 4  # three full pages of 20, then an empty one


async def test_deployments_are_paged_until_an_empty_page_without_sending_per_page() -> None:
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(7)]

    async def handler(request: httpx.Request) -> httpx.Response:
        assert "per_page" not in request.url.params
        assert request.url.params.get("env") == "production"
        page = int(request.url.params["page"])
        chunk = ids[(page - 1) * 3 : page * 3]
        return respond(200, envelope([deployment_json(i) for i in chunk]))  # no result_info

    client, recorder, _ = make_client(handler)
    async with client:
        found = await client.list_deployments("acme-home", env="production")
    assert [d.id for d in found] == ids
    assert [r.url.params["page"] for *_, r in recorder.requests] == ["1", "2", "3", "4"]


async def test_a_server_that_ignores_the_page_parameter_does_not_loop_forever() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        items = [hostname_json(f"h{i}.customer.test", ident=f"id-{i}") for i in range(50)]
        return respond(200, envelope(items))

    client, recorder, _ = make_client(handler)
    async with client:
        found = await client.list_custom_hostnames()
    assert len(found) == 50
    assert len(recorder.requests) == 2


# --------------------------------------------------------------------------- 429 and retries


async def test_a_429_pauses_the_shared_bucket_and_is_waited_out_not_retried_hot() -> None:
    answers = [
        respond(
            429,
            failure(971, "Please wait and consider throttling your request speed"),
            {"retry-after": "7"},
        ),
        respond(200, envelope({"id": "p", "name": "acme-home"})),
    ]

    async def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else respond(200, envelope({"id": "p"}))

    t = FakeTime()
    bucket = TokenBucket(capacity=1200, period=300, clock=t.clock, sleep=t.sleep)
    client, recorder, _ = make_client(handler, time=t, bucket=bucket)
    async with client:
        project = await client.get_project("acme-home")
    assert project.name == "acme-home"
    assert bucket.paused_until == pytest.approx(7.0)
    first, second = recorder.requests[0][0], recorder.requests[1][0]
    assert first == 0.0
    assert second >= 7.0
    assert len(recorder.requests) == 2


async def test_after_a_429_every_client_sharing_the_bucket_waits() -> None:
    answers = [respond(429, failure(971, "Please wait"), {"retry-after": "30"})]

    async def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else respond(200, envelope({"id": "p", "name": "x"}))

    t = FakeTime()
    bucket = TokenBucket(capacity=1200, period=300, clock=t.clock, sleep=t.sleep)
    client, _, _ = make_client(handler, time=t, bucket=bucket, retry=RetryPolicy(attempts=1))
    other, other_recorder, _ = make_client(handler, time=t, bucket=bucket)
    async with client, other:
        with pytest.raises(TransientError) as caught:
            await client.get_project("acme-home")
        assert caught.value.not_applied and caught.value.retry_after == 30
        await other.get_project("acme-home")
    assert other_recorder.requests[0][0] >= 30.0


async def test_idempotent_reads_are_retried_after_5xx_with_growing_jittered_waits() -> None:
    answers = [
        respond(503, failure(1500, "Internal Server Error")),
        respond(502, failure(1500, "Internal Server Error")),
        respond(500, failure(1500, "Internal Server Error")),
        respond(200, envelope(hostname_json("a.customer.test"))),
    ]

    async def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    client, recorder, t = make_client(handler)
    async with client:
        found = await client.get_custom_hostname("00000000-0000-4000-8000-000000000001")
    assert found.hostname == "a.customer.test"
    assert len(recorder.requests) == 4
    assert len(t.sleeps) == 3
    for attempt, wait in enumerate(t.sleeps):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= wait <= ceiling
    assert len(set(t.sleeps)) == 3


async def test_a_timeout_on_a_read_is_retried() -> None:
    calls = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return respond(200, envelope({"id": "p", "name": "acme-home"}))

    client, recorder, _ = make_client(handler)
    async with client:
        assert (await client.get_project("acme-home")).name == "acme-home"
    assert len(recorder.requests) == 2


async def test_a_5xx_on_a_deployment_retry_is_not_sent_again() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(500, failure(8000000, "An unknown error occurred."))

    client, recorder, t = make_client(handler)
    async with client:
        with pytest.raises(TransientError) as caught:
            await client.retry_deployment("acme-home", "00000000-0000-4000-8000-000000000001")
    assert not caught.value.not_applied
    assert len(recorder.requests) == 1
    assert t.sleeps == []


async def test_a_hostname_create_that_timed_out_is_found_by_looking_not_resent() -> None:
    marker = ownership_metadata(site="acme-home", tenant="acme")

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raise httpx.ReadTimeout("timed out", request=request)
        assert request.url.params["hostname"] == "www.acme.test"
        items = [hostname_json("www.acme.test", metadata=marker)]
        return respond(200, envelope(items, page=1, per_page=50, count=1, total_count=9))

    client, recorder, _ = make_client(handler)
    async with client:
        created = await client.create_custom_hostname(
            "www.acme.test", ssl_method="http", custom_metadata=marker
        )
    assert created.owner is not None
    assert recorder.methods() == [f"POST {HOSTNAMES_PATH}", f"GET {HOSTNAMES_PATH}"]


async def test_a_hostname_create_is_resent_only_after_looking_and_finding_nothing() -> None:
    posts = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts["n"] += 1
            if posts["n"] == 1:
                return respond(500, failure(1500, "Internal Server Error"))
            return respond(201, envelope(hostname_json("www.acme.test")))
        return respond(200, envelope([], page=1, per_page=50, count=0, total_count=0))

    client, recorder, t = make_client(handler)
    async with client:
        await client.create_custom_hostname("www.acme.test", ssl_method="http")
    assert recorder.methods() == [
        f"POST {HOSTNAMES_PATH}",
        f"GET {HOSTNAMES_PATH}",
        f"POST {HOSTNAMES_PATH}",
    ]
    assert len(t.sleeps) == 1


async def test_a_refused_connection_on_a_create_is_resent_without_looking() -> None:
    posts = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        posts["n"] += 1
        if posts["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return respond(201, envelope(hostname_json("www.acme.test")))

    client, recorder, _ = make_client(handler)
    async with client:
        await client.create_custom_hostname("www.acme.test", ssl_method="txt")
    assert recorder.methods() == [f"POST {HOSTNAMES_PATH}", f"POST {HOSTNAMES_PATH}"]


async def test_a_duplicate_hostname_is_adopted_only_when_it_carries_our_marker() -> None:
    marker = ownership_metadata(site="acme-home", tenant="acme")
    listed: dict[str, Any] = {"metadata": marker}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return respond(409, failure(1406, "Duplicate custom hostname found."))
        items = [hostname_json("www.acme.test", metadata=listed["metadata"])]
        return respond(200, envelope(items, page=1, per_page=50, count=1, total_count=1))

    client, recorder, _ = make_client(handler)
    async with client:
        adopted = await client.create_custom_hostname(
            "www.acme.test", ssl_method="http", custom_metadata=marker
        )
        assert adopted.owner is not None
        listed["metadata"] = {"customer_id": "42"}
        with pytest.raises(PermanentError, match="our records do not say we created it"):
            await client.create_custom_hostname(
                "www.acme.test", ssl_method="http", custom_metadata=marker
            )
    assert sum(1 for m in recorder.methods() if m.startswith("POST")) == 2


async def test_deleting_a_hostname_that_is_already_gone_succeeds() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(404, failure(1436, "The custom hostname was not found."))

    client, recorder, _ = make_client(handler)
    async with client:
        await client.delete_custom_hostname("00000000-0000-4000-8000-000000000001")
    assert len(recorder.requests) == 1


async def test_a_bare_delete_body_without_envelope_is_accepted() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, {"id": "00000000-0000-4000-8000-000000000001"})

    client, _, _ = make_client(handler)
    async with client:
        await client.delete_custom_hostname("00000000-0000-4000-8000-000000000001")


# --------------------------------------------------------------------------- purge, D1


async def test_purge_is_split_into_chunks_with_one_kind_per_request() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, envelope({"id": ZONE}))

    client, recorder, _ = make_client(handler)
    hosts = [f"h{i}.customer.test" for i in range(205)]
    async with client:
        await client.purge_cache(hosts=[*hosts, hosts[0]], prefixes=["a.test/x", "b.test/y"])
        await client.purge_cache()
    bodies = [json.loads(r.content) for *_, r in recorder.requests]
    assert [list(b) for b in bodies] == [["hosts"], ["hosts"], ["hosts"], ["prefixes"]]
    assert [len(b[next(iter(b))]) for b in bodies] == [100, 100, 5, 2]
    assert [h for b in bodies[:3] for h in b["hosts"]] == hosts


async def test_concurrent_host_purges_share_one_request_and_each_returns_when_sent() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, envelope({"id": ZONE}))

    client, recorder, _ = make_client(handler, purge_window=0.01)
    async with client:
        await asyncio.gather(
            client.purge_hosts(["a.test", "b.test"]),
            client.purge_hosts(["b.test", "c.test"]),
            client.purge_hosts(["d.test"]),
        )
        await client.purge_hosts([])  # nothing to purge: no request
    bodies = [json.loads(r.content) for *_, r in recorder.requests]
    assert bodies == [{"hosts": ["a.test", "b.test", "c.test", "d.test"]}]


async def test_a_failed_shared_purge_fails_every_caller_in_it() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(400, failure(1018, "bad host"))

    client, _, _ = make_client(handler, purge_window=0.01)
    async with client:
        results = await asyncio.gather(
            client.purge_hosts(["a.test"]), client.purge_hosts(["b.test"]), return_exceptions=True
        )
    assert all(isinstance(r, PermanentError) for r in results)


async def test_shared_purges_hold_at_most_a_chunk_each() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, envelope({"id": ZONE}))

    client, recorder, _ = make_client(handler, purge_window=0.01, purge_chunk=3)
    async with client:
        await asyncio.gather(*(client.purge_hosts([f"h{i}.test"]) for i in range(7)))
    sizes = [len(json.loads(r.content)["hosts"]) for *_, r in recorder.requests]
    assert sizes == [3, 3, 1]


def test_the_first_status_read_waits_as_long_as_pages_takes_then_backs_off() -> None:
    delays = deployment_poll_delays(15.0, 3.0)
    assert [next(delays) for _ in range(7)] == [15.0, 3.0, 6.0, 12.0, 24.0, 24.0, 24.0]


async def test_a_project_read_is_remembered_for_the_memo_time_to_live() -> None:
    now = [0.0]

    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, envelope(_project_json("acme-home")))

    memo = ProjectMemo(ttl=60.0, clock=lambda: now[0])
    client, recorder, _ = make_client(handler, memo=memo)
    async with client:
        await client.get_project("acme-home")
        assert (await client.project("acme-home")).production_branch == "main"
        assert len(recorder.requests) == 1  # answered from the memo
        now[0] = 61.0
        await client.project("acme-home")
    assert len(recorder.requests) == 2  # too old: read again


async def test_projects_are_listed_a_hundred_a_page_and_remembered() -> None:
    names = [f"p{i:03d}" for i in range(150)]

    async def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        per_page = int(request.url.params["per_page"])
        chunk = names[(page - 1) * per_page : page * per_page]
        return respond(
            200,
            envelope(
                [_project_json(n) for n in chunk],
                page=page,
                per_page=per_page,
                count=len(chunk),
                total_count=len(names),
            ),
        )

    client, recorder, _ = make_client(handler)
    async with client:
        found = await client.list_projects()
        assert [p.name for p in found] == names
        assert len(recorder.requests) == 2
        await client.project("p149")
    assert len(recorder.requests) == 2


def _project_json(name: str) -> dict[str, Any]:
    return {
        "id": f"id-{name}",
        "name": name,
        "subdomain": f"{name}.pages.dev",
        "production_branch": "main",
        "domains": [],
        "created_on": "2026-01-01T00:00:00Z",
        "canonical_deployment": None,
        "latest_deployment": None,
    }


async def test_d1_string_params_are_bound_and_other_values_are_inlined() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(200, envelope([{"results": [], "success": True, "meta": {"changes": 1}}]))

    client, recorder, _ = make_client(handler)
    async with client:
        await client.d1_query("db", "SELECT * FROM t WHERE a = ?", ["x"])
        results = await client.d1_query("db", "INSERT INTO t VALUES (?, ?, ?)", [1, None, "it's"])
    first, second = (json.loads(r.content) for *_, r in recorder.requests)
    assert first == {"sql": "SELECT * FROM t WHERE a = ?", "params": ["x"]}
    assert second == {"sql": "INSERT INTO t VALUES (1, NULL, 'it''s')", "params": []}
    assert results[0].changes == 1


async def test_d1_reads_are_retried_after_a_5xx_but_writes_are_not() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(500, failure(7500, "Internal error"))

    client, recorder, _ = make_client(handler, retry=RetryPolicy(attempts=3))
    async with client:
        with pytest.raises(TransientError):
            await client.d1_query("db", "SELECT 1; SELECT 2")
        reads = len(recorder.requests)
        with pytest.raises(TransientError):
            await client.d1_query("db", "INSERT INTO t VALUES ('a')")
    assert reads == 3
    assert len(recorder.requests) - reads == 1


async def test_a_sql_error_is_permanent_and_keeps_the_sqlite_message() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return respond(400, failure(7500, "no such table: nope: SQLITE_ERROR"))

    client, recorder, _ = make_client(handler)
    async with client:
        with pytest.raises(PermanentError, match="no such table: nope: SQLITE_ERROR") as caught:
            await client.d1_query("db", "SELECT * FROM nope")
    assert caught.value.status == 400
    assert len(recorder.requests) == 1


# --------------------------------------------------------------------------- direct upload


def upload_handler(state: dict[str, Any]) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/upload-token"):
            state["jwts"] += 1
            return respond(200, envelope({"jwt": f"jwt-{state['jwts']}"}))
        if path.startswith("/client/v4/pages/assets/"):
            auth = request.headers["authorization"]
            assert auth.startswith("Bearer jwt-")
            if state.get("expire_once") and auth == "Bearer jwt-1":
                return respond(401, failure(8000013, "Authorization failed: the JWT expired."))
            body = json.loads(request.content)
            if path.endswith("check-missing"):
                state["checked"] = body["hashes"]
                return respond(200, envelope([h for h in body["hashes"] if h not in state["have"]]))
            if path.endswith("/upload"):
                state["uploaded"].extend(item["key"] for item in body)
                state["types"].update({i["key"]: i["metadata"]["contentType"] for i in body})
                return respond(200, envelope(None))
            return respond(200, envelope(None))
        if request.method == "POST" and path == DEPLOYMENTS_PATH:
            state["form"] = request.content
            if state.get("fail_create"):
                state["fail_create"] = False
                return respond(500, failure(8000000, "An unknown error occurred."))
            return respond(200, envelope(deployment_json("d" * 8 + "-0000-4000-8000-000000000000")))
        if request.method == "GET" and path == DEPLOYMENTS_PATH:
            form = state["form"].decode("utf-8", "replace")
            message = form.split('name="commit_message"\r\n\r\n', 1)[1].split("\r\n", 1)[0]
            found = deployment_json(
                "f" * 8 + "-0000-4000-8000-000000000000", message=message, commit="c0ffee"
            )
            other = deployment_json("e" * 8 + "-0000-4000-8000-000000000000", message="x")
            page = int(request.url.params["page"])
            return respond(200, envelope([other, found] if page == 1 else []))
        raise AssertionError(f"unexpected {request.method} {path}")

    return handler


def new_state(**more: Any) -> dict[str, Any]:
    return {"jwts": 0, "have": set(), "uploaded": [], "types": {}, **more}


async def test_direct_upload_sends_token_check_upload_upsert_then_the_form() -> None:
    state = new_state()
    client, recorder, _ = make_client(upload_handler(state))
    tag = DeploymentTag(site="acme-home", version=12, publish="0123456789ab", commit="c0ffee")
    files = {"index.html": b"<h1>hi</h1>", "assets/a.css": b"a{}", "_headers": b"/*\n  X: y\n"}
    async with client:
        state["have"] = set()
        created = await client.create_deployment(
            "acme-home",
            files=files,
            branch="main",
            commit_hash="c0ffee",
            commit_message=tag.commit_message(),
            content_types={"index.html": "text/html; charset=utf-8"},
        )
    assert created.id.startswith("dddddddd")
    assert [p.rsplit("/", 1)[-1] for _, _, p, _ in recorder.requests] == [
        "upload-token",
        "check-missing",
        "upload",
        "upsert-hashes",
        "deployments",
    ]
    assert len(state["checked"]) == 2  # _headers is a form part, not an asset
    assert sorted(state["uploaded"]) == sorted(state["checked"])
    assert "text/html; charset=utf-8" in state["types"].values()
    assert "text/css" in state["types"].values()
    form = state["form"].decode()
    assert 'name="manifest"' in form and '"/index.html":' in form and '"/assets/a.css":' in form
    assert 'name="_headers"; filename="_headers"' in form
    assert 'name="commit_dirty"\r\n\r\nfalse' in form
    assert "sitebuilder-reconciler: site=acme-home version=12 publish=0123456789ab" in form
    deploy_request = recorder.requests[-1][3]
    assert deploy_request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_only_missing_assets_are_uploaded_and_an_expired_jwt_is_fetched_again() -> None:
    state = new_state(expire_once=True)
    client, _, _ = make_client(upload_handler(state))
    files = {"index.html": b"<h1>hi</h1>", "about/index.html": b"<h1>about</h1>"}
    async with client:
        manifest_hash = "f" * 32
        state["have"] = {manifest_hash}
        await client.create_deployment(
            "acme-home",
            files=files,
            branch="main",
            commit_hash="c0ffee",
            commit_message="hand-made",
            manifest={"/index.html": manifest_hash},
        )
    assert state["jwts"] == 2  # jwt-1 expired, jwt-2 fetched once
    assert manifest_hash in state["checked"]
    assert manifest_hash not in state["uploaded"] and len(state["uploaded"]) == 1


async def test_a_failed_deployment_create_is_found_by_its_tag_before_any_resend() -> None:
    state = new_state(fail_create=True)
    client, recorder, _ = make_client(upload_handler(state))
    tag = DeploymentTag(site="acme-home", version=13, publish="feedfacecafe", commit="c0ffee")
    async with client:
        found = await client.create_deployment(
            "acme-home",
            files={"index.html": b"v13"},
            branch="main",
            commit_hash="c0ffee",
            commit_message=tag.commit_message(),
        )
    assert found.id.startswith("ffffffff")
    assert found.tag is not None and found.tag.version == 13
    posts = [m for m in recorder.methods() if m == f"POST {DEPLOYMENTS_PATH}"]
    assert len(posts) == 1


async def test_too_many_files_are_refused_before_any_request() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    client, recorder, _ = make_client(handler)
    files = {f"f{i}.html": b"x" for i in range(20_001)}
    async with client:
        with pytest.raises(ValueError, match="20000"):
            await client.create_deployment(
                "acme-home", files=files, branch="main", commit_hash="", commit_message=""
            )
    assert recorder.requests == []


# --------------------------------------------------------------------------- tags, state, secrets


def test_a_deployment_tag_round_trips_through_the_trigger_metadata() -> None:
    tag = DeploymentTag(site="acme-home", version=12, publish="abc123", content="9b1e04c2d3f7aa")
    message = tag.commit_message()
    assert message == (
        "sitebuilder-reconciler: site=acme-home version=12 publish=abc123 content=9b1e04c2d3f7"
    )
    deployment = Deployment.from_json(deployment_json("x" * 36, message=message, commit="c0ffee"))
    parsed = deployment.tag
    assert parsed is not None
    assert (parsed.site, parsed.version, parsed.publish, parsed.commit, parsed.branch) == (
        "acme-home",
        12,
        "abc123",
        "c0ffee",
        "main",
    )
    assert Deployment.from_json(deployment_json("y" * 36, message="fix typo")).tag is None
    with pytest.raises(ValueError):
        DeploymentTag(site="two words", version=1, publish="p").commit_message()


@pytest.mark.parametrize(
    ("stages", "state"),
    [
        ([("queued", "success"), ("deploy", "success")], "live"),
        ([("queued", "success"), ("build", "failure")], "failed"),
        ([("queued", "canceled")], "canceled"),
        ([("queued", "success"), ("build", "active")], "in_progress"),
    ],
)
def test_deployment_state_follows_the_contract_rules(stages: list[tuple[str, str]], state: str):
    raw = [{"name": n, "status": s, "started_on": None, "ended_on": None} for n, s in stages]
    assert Deployment.from_json(deployment_json("z" * 36, stages=raw)).state == state


def test_the_ownership_marker_round_trips_and_foreign_metadata_is_not_ours() -> None:
    metadata = ownership_metadata(site="acme-home", tenant="acme", extra={"managed-by": "x"})
    assert metadata["managed-by"] == "sitebuilder-reconciler"
    owner = owner_of(metadata)
    assert owner is not None and (owner.site, owner.tenant) == ("acme-home", "acme")
    assert owner_of({"customer_id": "1"}) is None
    assert owner_of(None) is None


async def test_the_token_never_appears_in_errors_logs_or_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[Callable[[httpx.Request], httpx.Response]] = []

    def connect(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def echo(request: httpx.Request) -> httpx.Response:
        return respond(401, failure(10000, f"Authentication error for {TOKEN}"))

    def server_error(request: httpx.Request) -> httpx.Response:
        return respond(500, failure(1500, "Internal Server Error"))

    failures.extend([connect, timeout, echo, server_error])
    texts: list[str] = []
    for fail in failures:

        async def handler(request: httpx.Request, fail: Any = fail) -> httpx.Response:
            return fail(request)

        client, _, _ = make_client(handler, retry=RetryPolicy(attempts=2, base=0.01, cap=0.01))
        texts.append(repr(client))
        async with client:
            with pytest.raises((TransientError, PermanentError)) as caught:
                await client.get_project("acme-home")
        texts.append(str(caught.value))
        texts.append(repr(caught.value))
        texts.append("".join(traceback.format_exception(caught.value)))
    texts.append(caplog.text)
    assert texts
    for text in texts:
        assert TOKEN not in text
    assert "***" in "".join(texts)


async def test_a_failing_asset_upload_raises_the_projects_error_and_creates_nothing() -> None:
    state = new_state()
    inner = upload_handler(state)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pages/assets/upload"):
            return respond(400, failure(8000096, "Expected a list of {key, value}."))
        return await inner(request)

    client, recorder, _ = make_client(handler)
    files = {f"page{i}.html": f"<p>{i}</p>".encode() for i in range(3)}
    async with client:
        with pytest.raises(PermanentError, match="8000096"):
            await client.create_deployment(
                "acme-home", files=files, branch="main", commit_hash="", commit_message=""
            )
    assert not any(m == f"POST {DEPLOYMENTS_PATH}" for m in recorder.methods())


async def test_a_deployment_with_only_special_files_skips_the_asset_steps() -> None:
    state = new_state()
    client, recorder, _ = make_client(upload_handler(state))
    async with client:
        await client.create_deployment(
            "acme-home",
            files={"_redirects": b"/old /new 301\n"},
            branch="main",
            commit_hash="",
            commit_message="",
        )
    assert recorder.methods() == [f"POST {DEPLOYMENTS_PATH}"]
    assert 'name="manifest"\r\n\r\n{}' in state["form"].decode()
