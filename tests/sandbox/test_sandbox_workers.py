"""Workers scripts and routes in the Cloudflare simulator, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler.sandbox.cloudflare_workers import edge_route, pattern_matches

MODULE = b"export default { async fetch() { return new Response('hi'); } };\n"


def _scripts(cf: Any, suffix: str = "") -> str:
    return f"/accounts/{cf.account_id}/workers/scripts{suffix}"


def _routes(cf: Any, suffix: str = "") -> str:
    return f"/zones/{cf.zone_id}/workers/routes{suffix}"


def _upload(
    http: httpx.Client, cf: Any, metadata: dict[str, Any], module: bytes = MODULE
) -> httpx.Response:
    return http.put(
        _scripts(cf, "/dispatch"),
        files=[
            ("metadata", (None, json.dumps(metadata), "application/json")),
            ("files", ("index.js", module, "application/javascript+module")),
        ],
    )


def _namespace(http: httpx.Client, cf: Any) -> str:
    answer = http.post(f"/accounts/{cf.account_id}/storage/kv/namespaces", json={"title": "rt"})
    return str(answer.json()["result"]["id"])


def test_an_upload_with_a_kv_binding_is_listed_with_its_settings(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        binding = {"type": "kv_namespace", "name": "ROUTES", "namespace_id": namespace_id}
        answer = _upload(
            http,
            cf,
            {"main_module": "index.js", "bindings": [binding], "compatibility_date": "2024-09-23"},
        )
        listed = http.get(_scripts(cf)).json()["result"]
        settings = http.get(_scripts(cf, "/dispatch/settings")).json()["result"]
        content = http.get(_scripts(cf, "/dispatch/content/v2"))
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["id"] == "dispatch"
    assert len(result["etag"]) == 64
    assert [s["id"] for s in listed] == ["dispatch"]
    assert settings["bindings"] == [binding]
    assert settings["compatibility_date"] == "2024-09-23"
    assert content.content == MODULE


def test_the_etag_changes_with_the_code_and_not_without(cf: Any) -> None:
    with cf.client() as http:
        first = _upload(http, cf, {"main_module": "index.js"}).json()["result"]["etag"]
        same = _upload(http, cf, {"main_module": "index.js"}).json()["result"]["etag"]
        other = _upload(http, cf, {"main_module": "index.js"}, MODULE + b"// v2\n")
    assert first == same
    assert other.json()["result"]["etag"] != first


def test_a_binding_to_a_missing_namespace_is_refused_and_nothing_is_stored(cf: Any) -> None:
    with cf.client() as http:
        binding = {"type": "kv_namespace", "name": "ROUTES", "namespace_id": "f" * 32}
        answer = _upload(http, cf, {"main_module": "index.js", "bindings": [binding]})
        listed = http.get(_scripts(cf)).json()["result"]
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == 10041
    assert listed == []


def test_a_missing_main_module_or_a_script_without_handlers_is_refused(cf: Any) -> None:
    with cf.client() as http:
        missing = _upload(http, cf, {"main_module": "other.js"})
        no_handler = _upload(http, cf, {"main_module": "index.js"}, b"console.log(1);\n")
    assert missing.json()["errors"][0]["code"] == 10021
    assert no_handler.json()["errors"][0]["code"] == 10068


def test_an_unknown_script_is_not_found(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get(_scripts(cf, "/nope/settings"))
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == 10007


def test_routes_are_created_updated_listed_and_deleted(cf: Any) -> None:
    with cf.client() as http:
        _upload(http, cf, {"main_module": "index.js"})
        made = http.post(_routes(cf), json={"pattern": "*/*", "script": "dispatch"})
        route_id = made.json()["result"]["id"]
        duplicate = http.post(_routes(cf), json={"pattern": "*/*", "script": "dispatch"})
        updated = http.put(
            _routes(cf, f"/{route_id}"), json={"pattern": "*/*", "script": None}
        ).json()["result"]
        listed = http.get(_routes(cf)).json()["result"]
        deleted = http.delete(_routes(cf, f"/{route_id}")).json()["result"]
        after = http.get(_routes(cf)).json()["result"]
    assert made.json()["result"] == {"id": route_id, "pattern": "*/*", "script": "dispatch"}
    assert duplicate.status_code == 409
    assert updated["script"] is None
    assert listed == [updated]
    assert deleted == {"id": route_id}
    assert after == []


def test_a_route_to_a_worker_that_does_not_exist_is_refused(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(_routes(cf), json={"pattern": "*/*", "script": "dispatch"})
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == 10007


def test_route_patterns_match_as_on_cloudflare() -> None:
    assert pattern_matches("*/*", "www.acmebakery.com", "/menu")
    assert pattern_matches("*acmebakery.com/*", "acmebakery.com", "/")
    assert pattern_matches("*acmebakery.com/*", "www.acmebakery.com", "/")
    assert not pattern_matches("*.acmebakery.com/*", "acmebakery.com", "/")
    assert not pattern_matches("*acmebakery.com/*", "notacmebakery.com", "/")
    assert pattern_matches("shop.example-saas.net/api/*", "shop.example-saas.net", "/api/x")
    assert not pattern_matches("shop.example-saas.net/api/*", "shop.example-saas.net", "/x")


def test_the_edge_picks_the_most_specific_route(cf: Any) -> None:
    with cf.client() as http:
        _upload(http, cf, {"main_module": "index.js"})
        http.post(_routes(cf), json={"pattern": "*/*", "script": "dispatch"})
        http.post(_routes(cf), json={"pattern": "www.acmebakery.com/static/*"})
    with cf.sim.lock:
        general = edge_route(cf.sim, "www.acmebakery.com", "/")
        off = edge_route(cf.sim, "www.acmebakery.com", "/static/a.css")
    assert general[1] is not None and general[1].name == "dispatch"
    assert off[0] is not None and off[1] is None
