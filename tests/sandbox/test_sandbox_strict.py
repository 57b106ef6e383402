"""The simulator refuses what an ordinary Cloudflare account refuses, with Cloudflare's codes.

Each test turns the shared simulator into an ordinary account (the config defaults) and checks
one refusal of ROUTING.md §1, or one shape fix of ROUTING.md §4 (bad input in the JSON error
envelope, the D1 ``batch`` body, the Pages project list and the hostname delete answer).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from reconciler.sandbox.cloudflare import CloudflareConfig

HTTP_SSL = {"method": "http", "type": "dv"}
ORDINARY = {
    "entitled_custom_metadata": False,
    "entitled_custom_origin": False,
    "custom_origin_outside_zone": False,
    "refuse_reserved_tlds": True,
}


@pytest.fixture
def ordinary(cf: Any) -> Any:
    """The shared simulator as an ordinary account (reset restores the suite's config)."""
    cf.sim.configure(**ORDINARY)
    return cf


def _hostnames(cf: Any, suffix: str = "") -> str:
    return f"/zones/{cf.zone_id}/custom_hostnames{suffix}"


def _create(http: httpx.Client, cf: Any, body: dict[str, Any]) -> httpx.Response:
    return http.post(_hostnames(cf), json={"ssl": HTTP_SSL, **body})


def test_the_config_defaults_are_an_ordinary_account() -> None:
    config = CloudflareConfig.generate()
    assert {key: getattr(config, key) for key in ORDINARY} == ORDINARY


@pytest.mark.parametrize(
    ("hostname", "code"),
    [
        ("www.acmebakery.test", 1409),
        ("shop.example", 1409),
        ("a.invalid", 1409),
        ("dev.localhost", 1409),
        ("café.com", 1408),
        ("192.0.2.1", 1407),
        ("bad_name!.com", 1407),
        ("-lead.com", 1407),
        ("x" * 250 + ".com", 1407),
        ("www.example.com", 1411),
        ("localhostname", 1410),
    ],
)
def test_hostnames_an_ordinary_account_refuses(ordinary: Any, hostname: str, code: int) -> None:
    with ordinary.client() as http:
        answer = _create(http, ordinary, {"hostname": hostname})
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert answer.json()["errors"][0]["code"] == code
    assert ordinary.sim.hostnames.by_id == {}


def test_a_body_that_is_not_json_gets_1400(ordinary: Any) -> None:
    with ordinary.client() as http:
        answer = http.post(
            _hostnames(ordinary),
            content=b"{hostname:",
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == 1400


def test_custom_metadata_is_refused_without_the_entitlement_and_nothing_is_made(
    ordinary: Any,
) -> None:
    with ordinary.client() as http:
        answer = _create(
            http, ordinary, {"hostname": "www.acmebakery.com", "custom_metadata": {"a": "b"}}
        )
        ordinary.sim.configure(entitled_custom_metadata=True)
        entitled = _create(
            http, ordinary, {"hostname": "www.acmebakery.com", "custom_metadata": {"a": "b"}}
        )
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == 1413
    assert entitled.status_code == 201
    assert entitled.json()["result"]["custom_metadata"] == {"a": "b"}
    assert len(ordinary.sim.hostnames.by_id) == 1


def test_a_custom_origin_is_refused_without_the_entitlement(ordinary: Any) -> None:
    with ordinary.client() as http:
        answer = _create(
            http,
            ordinary,
            {"hostname": "www.acmebakery.com", "custom_origin_server": "acme-home.pages.dev"},
        )
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == 1420
    assert ordinary.sim.hostnames.by_id == {}


def test_an_entitled_custom_origin_must_be_a_name_in_the_zones_dns(ordinary: Any) -> None:
    ordinary.sim.configure(entitled_custom_origin=True)
    zone = ordinary.config.zone_name
    ordinary.sim.dns.put(f"origin.{zone}", cname="somewhere.net")
    with ordinary.client() as http:
        outside = _create(
            http,
            ordinary,
            {"hostname": "www.acmebakery.com", "custom_origin_server": "acme-home.pages.dev"},
        )
        unrecorded = _create(
            http,
            ordinary,
            {"hostname": "www.acmebakery.com", "custom_origin_server": f"nothing.{zone}"},
        )
        inside = _create(
            http,
            ordinary,
            {"hostname": "www.acmebakery.com", "custom_origin_server": f"origin.{zone}"},
        )
    assert [outside.json()["errors"][0]["code"], unrecorded.json()["errors"][0]["code"]] == [
        1421,
        1421,
    ]
    assert inside.status_code == 201
    assert inside.json()["result"]["custom_origin_server"] == f"origin.{zone}"


def test_a_refused_patch_changes_nothing(ordinary: Any) -> None:
    with ordinary.client() as http:
        made = _create(http, ordinary, {"hostname": "www.acmebakery.com"}).json()["result"]
        answer = http.patch(
            _hostnames(ordinary, f"/{made['id']}"),
            json={
                "ssl": {"method": "txt", "type": "dv"},
                "custom_origin_server": "acme-home.pages.dev",
            },
        )
        after = http.get(_hostnames(ordinary, f"/{made['id']}")).json()["result"]
    assert answer.status_code == 403
    assert after["ssl"]["method"] == "http"
    assert "custom_origin_server" not in after


@pytest.mark.parametrize(("shape", "expected"), [("bare", "bare"), ("envelope", "envelope")])
def test_the_delete_answer_comes_in_both_documented_shapes(
    ordinary: Any, shape: str, expected: str
) -> None:
    ordinary.sim.configure(hostname_delete_body=shape)
    with ordinary.client() as http:
        made = _create(http, ordinary, {"hostname": "www.acmebakery.com"}).json()["result"]
        body = http.delete(_hostnames(ordinary, f"/{made['id']}")).json()
    if expected == "bare":
        assert body == {"id": made["id"]}
    else:
        assert body["result"] == {"id": made["id"]} and body["success"] is True


# ---- bad input and unknown paths: always the JSON envelope ------------------------------------


def _d1(cf: Any) -> str:
    return f"/accounts/{cf.account_id}/d1/database/{cf.database_id}/query"


@pytest.mark.parametrize(
    "body",
    [
        b'{"sql": "SELECT \\u0000 1"}',
        b'{"sql": "SELECT ?", "params": ["\\ud800"]}',
        b'{"sql": "SELECT \'\\udfff\'"}',
    ],
)
def test_d1_sql_with_a_nul_byte_or_a_lone_surrogate_is_a_json_400(cf: Any, body: bytes) -> None:
    with cf.client() as http:
        answer = http.post(_d1(cf), content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["errors"][0]["code"] == 7500


def test_d1_accepts_the_sdks_batch_body_as_one_transaction(cf: Any) -> None:
    batch = [
        {"sql": "CREATE TABLE t (v TEXT)"},
        {"sql": "INSERT INTO t VALUES (?); INSERT INTO t VALUES (?)", "params": ["a", "b"]},
        {"sql": "SELECT v FROM t ORDER BY v"},
    ]
    with cf.client() as http:
        answer = http.post(_d1(cf), json={"batch": batch})
        failing = http.post(
            _d1(cf),
            json={"batch": [{"sql": "INSERT INTO t VALUES ('c')"}, {"sql": "SELEC nonsense"}]},
        )
        rows = http.post(_d1(cf), json={"sql": "SELECT count(*) AS n FROM t"}).json()
    results = answer.json()["result"]
    assert len(results) == 4
    assert results[-1]["results"] == [{"v": "a"}, {"v": "b"}]
    assert failing.status_code == 400
    assert rows["result"][0]["results"] == [{"n": 2}]


@pytest.mark.parametrize(
    "path",
    [
        "/zones/abc%0A/custom_hostnames",
        "/accounts/x/pages/projects/a%0Ab",
        "/nothing/here",
        "/zones/%00",
    ],
)
def test_unknown_or_broken_paths_get_the_json_error_envelope(cf: Any, path: str) -> None:
    with cf.client() as http:
        answer = http.get(path)
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert answer.json()["errors"][0]["code"] == 7003


def test_a_path_with_a_newline_does_not_reach_a_real_project(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get(f"/accounts/{cf.account_id}/pages/projects/acme-home%0A")
    assert answer.status_code in (400, 404)
    assert answer.json()["success"] is False


# ---- Pages: the project list, canonical readings, and the sites the files make ----------------


def _project(cf: Any, name: str = "acme-home") -> str:
    return f"/accounts/{cf.account_id}/pages/projects/{name}"


def _publish(http: httpx.Client, cf: Any, files: dict[str, bytes], commit: str) -> str:
    """The wrangler flow: upload token, upload files by hash, then a deployment's manifest."""
    jwt = http.get(_project(cf) + "/upload-token").json()["result"]["jwt"]
    manifest: dict[str, str] = {}
    payload = []
    for path, data in files.items():
        digest = f"{abs(hash((commit, path))) % 16**32:032x}"
        manifest[path] = digest
        payload.append(
            {
                "key": digest,
                "value": base64.b64encode(data).decode(),
                "metadata": {"contentType": "text/html"},
                "base64": True,
            }
        )
    uploaded = httpx.post(
        cf.base_url + "/pages/assets/upload",
        json=payload,
        headers={"Authorization": f"Bearer {jwt}"},
    )
    assert uploaded.status_code == 200, uploaded.text
    made = http.post(
        _project(cf) + "/deployments",
        files={"manifest": (None, json.dumps(manifest)), "commit_hash": (None, commit)},
    )
    assert made.status_code == 200, made.text
    return str(made.json()["result"]["id"])


def _site(cf: Any, path: str, project: str = "acme-home") -> httpx.Response:
    return httpx.get(cf.host.base_url + f"/__pages/{project}{path}")


def test_the_project_list_is_served_with_every_project(cf: Any) -> None:
    with cf.client() as http:
        body = http.get(f"/accounts/{cf.account_id}/pages/projects").json()
    names = sorted(p["name"] for p in body["result"])
    assert names == sorted(cf.sim.pages.projects)
    assert body["result_info"]["total_count"] == len(names)


def test_the_live_deployment_serves_its_uploaded_files_by_path(cf: Any) -> None:
    cf.sim.configure(stage_seconds=0.0)
    with cf.client() as http:
        _publish(
            http,
            cf,
            {
                "/index.html": b"<h1>v1 home</h1>",
                "/menu.html": b"<h1>menu</h1>",
                "/404.html": b"<h1>lost</h1>",
            },
            "c1",
        )
    home, menu, missing = _site(cf, "/"), _site(cf, "/menu"), _site(cf, "/nowhere")
    assert (home.status_code, home.text) == (200, "<h1>v1 home</h1>")
    assert home.headers["content-type"].startswith("text/html")
    assert menu.text == "<h1>menu</h1>"
    assert (missing.status_code, missing.text) == (404, "<h1>lost</h1>")


def test_a_new_deployment_replaces_the_page_and_a_rollback_brings_the_old_one(cf: Any) -> None:
    cf.sim.configure(stage_seconds=0.0)
    with cf.client() as http:
        first = _publish(http, cf, {"/index.html": b"v1"}, "c1")
        cf.clock.advance(1)
        _publish(http, cf, {"/index.html": b"v2"}, "c2")
        after_bump = _site(cf, "/").text
        cf.clock.advance(1)
        http.post(_project(cf) + f"/deployments/{first}/rollback")
    assert after_bump == "v2"
    assert _site(cf, "/").text == "v1"


def test_a_project_with_nothing_live_answers_404(cf: Any) -> None:
    assert _site(cf, "/").status_code == 404
    assert _site(cf, "/", project="no-such-project").status_code == 404


@pytest.mark.parametrize(("reading", "canonical"), [("live", "first"), ("latest", "second")])
def test_canonical_deployment_after_a_rollback_follows_the_configured_reading(
    cf: Any, reading: str, canonical: str
) -> None:
    cf.sim.configure(stage_seconds=0.0, canonical_after_rollback=reading)
    with cf.client() as http:
        ids = {"first": _publish(http, cf, {"/index.html": b"v1"}, "c1")}
        cf.clock.advance(1)
        ids["second"] = _publish(http, cf, {"/index.html": b"v2"}, "c2")
        cf.clock.advance(1)
        http.post(_project(cf) + f"/deployments/{ids['first']}/rollback")
        project = http.get(_project(cf)).json()["result"]
    assert project["canonical_deployment"]["id"] == ids[canonical]
    assert _site(cf, "/").text == "v1"


def test_the_fallback_origin_must_be_a_name_of_the_zone(cf: Any) -> None:
    zone = cf.config.zone_name
    with cf.client() as http:
        outside = http.put(
            _hostnames(cf, "/fallback_origin"), json={"origin": "acme-home.pages.dev"}
        )
        inside = http.put(_hostnames(cf, "/fallback_origin"), json={"origin": f"service.{zone}"})
        now = http.get(_hostnames(cf, "/fallback_origin")).json()["result"]
    assert outside.status_code == 400
    assert outside.json()["errors"][0]["code"] == 1552
    assert inside.status_code == 200
    assert now["origin"] == f"service.{zone}"
