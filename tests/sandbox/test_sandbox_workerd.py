"""The visitor's view, in Cloudflare's own runtime: the dispatch Worker run by workerd.

The Worker is uploaded, its KV namespace created and written, and its route made through the
simulator's REST API, as the reconciler would; a request with the customer's ``Host`` then goes
through :class:`reconciler.sandbox.workerd.WorkerdHost` (Miniflare/workerd), whose KV binding is
copied from the simulator. These tests skip only when node or the npm packages are missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.sandbox.workerd import DISPATCH_WORKER, WorkerdHost, unavailable_reason

HOST = "www.acmebakery.com"

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture(scope="module")
def edge(cloudflare_sim: Any) -> Iterator[WorkerdHost]:
    """One Worker host for the module, asking the session's simulator."""
    base = cloudflare_sim.host.base_url
    with WorkerdHost(simulator_url=base, pages_origin=base + "/__pages/{project}") as host:
        yield host


@pytest.fixture
def world(cf: Any) -> Any:
    """The simulator with the platform in place: namespace, Worker, ``*/*`` route, a site."""
    cf.sim.configure(stage_seconds=0.0)
    with cf.client() as http:
        cf.namespace_id = _namespace(http, cf)
        _upload_worker(http, cf, DISPATCH_WORKER.read_bytes())
        made = http.post(
            f"/zones/{cf.zone_id}/workers/routes", json={"pattern": "*/*", "script": "dispatch"}
        )
        assert made.status_code == 200, made.text
        _publish(http, cf, "acme-home", b"<h1>Acme v1</h1>", "c1")
    cf.sim.point_dns(HOST)
    cf.sim.add_hostname(HOST)
    return cf


def _namespace(http: httpx.Client, cf: Any) -> str:
    answer = http.post(f"/accounts/{cf.account_id}/storage/kv/namespaces", json={"title": "rt"})
    return str(answer.json()["result"]["id"])


def _upload_worker(http: httpx.Client, cf: Any, source: bytes) -> None:
    metadata = {
        "main_module": "index.js",
        "compatibility_date": "2024-09-23",
        "bindings": [
            {"type": "kv_namespace", "name": "ROUTES", "namespace_id": cf.namespace_id},
            {"type": "plain_text", "name": "PAGES_ORIGIN", "text": "https://{project}.pages.dev"},
        ],
    }
    answer = http.put(
        f"/accounts/{cf.account_id}/workers/scripts/dispatch",
        files=[
            ("metadata", (None, json.dumps(metadata), "application/json")),
            ("files", ("index.js", source, "application/javascript+module")),
        ],
    )
    assert answer.status_code == 200, answer.text


def _publish(http: httpx.Client, cf: Any, project: str, page: bytes, commit: str) -> str:
    base = f"/accounts/{cf.account_id}/pages/projects/{project}"
    jwt = http.get(base + "/upload-token").json()["result"]["jwt"]
    digest = hashlib.sha256(page).hexdigest()[:32]
    httpx.post(
        cf.base_url + "/pages/assets/upload",
        headers={"Authorization": f"Bearer {jwt}"},
        json=[
            {
                "key": digest,
                "value": base64.b64encode(page).decode(),
                "metadata": {"contentType": "text/html"},
                "base64": True,
            }
        ],
    ).raise_for_status()
    made = http.post(
        base + "/deployments",
        files={
            "manifest": (None, json.dumps({"/index.html": digest})),
            "commit_hash": (None, commit),
        },
    )
    assert made.status_code == 200, made.text
    return str(made.json()["result"]["id"])


def _route(cf: Any, table: dict[str, Any]) -> None:
    pairs = [
        {"key": k, "value": v if isinstance(v, str) else json.dumps(v)} for k, v in table.items()
    ]
    with cf.client() as http:
        answer = http.put(
            f"/accounts/{cf.account_id}/storage/kv/namespaces/{cf.namespace_id}/bulk", json=pairs
        )
    assert answer.status_code == 200, answer.text


def _unroute(cf: Any, keys: list[str]) -> None:
    with cf.client() as http:
        http.post(
            f"/accounts/{cf.account_id}/storage/kv/namespaces/{cf.namespace_id}/bulk/delete",
            json=keys,
        ).raise_for_status()


def test_a_routed_hostname_gets_its_projects_live_page(world: Any, edge: WorkerdHost) -> None:
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    answer = edge.visit(HOST)
    assert answer.status_code == 200
    assert answer.text == "<h1>Acme v1</h1>"
    assert answer.headers["x-sitebuilder-route"] == "serve:acme-home"
    assert answer.headers["x-sandbox-edge"] == "worker"


def test_a_new_deployment_is_what_the_visitor_gets_next(world: Any, edge: WorkerdHost) -> None:
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    before = edge.visit(HOST).text
    world.clock.advance(1)
    with world.client() as http:
        _publish(http, world, "acme-home", b"<h1>Acme v2</h1>", "c2")
    assert (before, edge.visit(HOST).text) == ("<h1>Acme v1</h1>", "<h1>Acme v2</h1>")


def test_a_suspended_hostname_gets_the_suspension_page(world: Any, edge: WorkerdHost) -> None:
    _route(world, {HOST: {"action": "suspend", "tenant": "acme"}})
    answer = edge.visit(HOST)
    assert answer.status_code == 503
    assert "temporarily unavailable" in answer.text
    assert answer.headers["x-sitebuilder-route"] == "suspend"


def test_the_suspension_page_can_be_replaced_through_its_reserved_key(
    world: Any, edge: WorkerdHost
) -> None:
    _route(
        world,
        {
            HOST: {"action": "suspend", "tenant": "acme"},
            "__page__/suspended": "<p>Acme is paused</p>",
        },
    )
    assert edge.visit(HOST).text == "<p>Acme is paused</p>"


def test_a_hostname_without_an_entry_gets_an_honest_404(world: Any, edge: WorkerdHost) -> None:
    answer = edge.visit(HOST)
    assert answer.status_code == 404
    assert "no site at this address" in answer.text
    assert answer.headers["x-sitebuilder-route"] == "none"


def test_each_kv_write_through_the_rest_api_is_seen_by_the_next_request(
    world: Any, edge: WorkerdHost
) -> None:
    seen = []
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    seen.append(edge.visit(HOST).status_code)
    _route(world, {HOST: {"action": "suspend", "tenant": "acme"}})
    seen.append(edge.visit(HOST).status_code)
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    seen.append(edge.visit(HOST).status_code)
    _unroute(world, [HOST])
    seen.append(edge.visit(HOST).status_code)
    assert seen == [200, 503, 200, 404]


def test_an_unreadable_entry_is_a_502_not_someone_elses_site(world: Any, edge: WorkerdHost) -> None:
    answers = []
    for entry in ("not json", {"action": "serve", "project": "../acme-shop"}, {"action": "x"}):
        _route(world, {HOST: entry})
        answers.append(edge.visit(HOST).status_code)
    assert answers == [502, 502, 502]


def test_a_hostname_that_is_not_active_is_not_served(world: Any, edge: WorkerdHost) -> None:
    world.sim.add_hostname("shop.acmebakery.com")  # no DNS: pending
    _route(world, {"shop.acmebakery.com": {"action": "serve", "project": "acme-home"}})
    answer = edge.visit("shop.acmebakery.com")
    assert answer.status_code == 530
    assert answer.headers["x-sandbox-edge"] == "not-served"
    assert "pending" in answer.text


def test_without_a_route_nothing_runs(world: Any, edge: WorkerdHost) -> None:
    with world.client() as http:
        routes = http.get(f"/zones/{world.zone_id}/workers/routes").json()["result"]
        http.delete(f"/zones/{world.zone_id}/workers/routes/{routes[0]['id']}")
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    answer = edge.visit(HOST)
    assert answer.status_code == 522
    assert answer.headers["x-sandbox-edge"] == "no-worker"


def test_a_new_upload_of_the_worker_is_what_runs_next(world: Any, edge: WorkerdHost) -> None:
    _route(world, {HOST: {"action": "serve", "project": "acme-home"}})
    first = edge.visit(HOST).text
    other = b"export default { async fetch() { return new Response('maintenance'); } };\n"
    with world.client() as http:
        _upload_worker(http, world, other)
    assert (first, edge.visit(HOST).text) == ("<h1>Acme v1</h1>", "maintenance")


def test_without_node_the_reason_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.sandbox.workerd.shutil.which", lambda name: None)
    reason = unavailable_reason()
    assert reason is not None and "node is not installed" in reason


def test_an_entry_that_expires_on_the_virtual_clock_stops_routing(
    world: Any, edge: WorkerdHost
) -> None:
    entry = {"action": "serve", "project": "acme-home"}
    with world.client() as http:
        http.put(
            f"/accounts/{world.account_id}/storage/kv/namespaces/{world.namespace_id}/bulk",
            json=[{"key": HOST, "value": json.dumps(entry), "expiration_ttl": 60}],
        ).raise_for_status()
    before = edge.visit(HOST).status_code
    world.clock.advance(61)
    assert (before, edge.visit(HOST).status_code) == (200, 404)
