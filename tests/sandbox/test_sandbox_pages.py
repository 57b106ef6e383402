"""Pages in the Cloudflare simulator, over real HTTP: projects, direct upload, stages, rollback."""

from __future__ import annotations

import json
from typing import Any

import httpx


def _project(cf: Any, name: str = "acme-home") -> str:
    return f"/accounts/{cf.account_id}/pages/projects/{name}"


def _deploy(
    http: httpx.Client, cf: Any, *, branch: str = "main", commit: str = "c1"
) -> dict[str, Any]:
    answer = http.post(
        _project(cf) + "/deployments",
        files={
            "manifest": (None, json.dumps({"/index.html": "0" * 32})),
            "branch": (None, branch),
            "commit_hash": (None, commit),
            "commit_message": (None, f"site acme-home version {commit}"),
            "commit_dirty": (None, "false"),
            "_headers": ("_headers", b"/*\n  X-Frame-Options: DENY\n"),
        },
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def _get(http: httpx.Client, cf: Any, deployment_id: str) -> dict[str, Any]:
    result: dict[str, Any] = http.get(_project(cf) + f"/deployments/{deployment_id}").json()[
        "result"
    ]
    return result


def test_project_has_its_pages_dev_subdomain_and_no_deployment_yet(cf: Any) -> None:
    with cf.client() as http:
        project = http.get(_project(cf)).json()["result"]
    assert project["name"] == "acme-home"
    assert project["subdomain"] == "acme-home.pages.dev"
    assert project["canonical_deployment"] is None
    assert project["latest_deployment"] is None


def test_an_unknown_project_gets_8000007(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get(_project(cf, "no-such-site"))
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == 8000007


def test_a_deployment_moves_through_its_stages_as_the_clock_advances(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        made = _deploy(http, cf)
        seen = [made["latest_stage"]["name"]]
        for _ in range(5):
            cf.clock.advance(cf.config.stage_seconds)
            seen.append(_get(http, cf, made["id"])["latest_stage"]["name"])
        final = _get(http, cf, made["id"])
    assert seen == ["queued", "initialize", "clone_repo", "build", "deploy", "deploy"]
    assert final["latest_stage"]["status"] == "success"
    assert final["latest_stage"]["ended_on"] is not None
    assert [s["status"] for s in final["stages"]] == ["success"] * 5
    assert final["environment"] == "production"
    assert final["deployment_trigger"]["metadata"]["commit_hash"] == "c1"
    assert len(final["id"]) == 36 and final["short_id"] == final["id"][:8]


def test_a_deployment_told_to_fail_ends_in_failure_at_that_stage(cf: Any) -> None:
    cf.clock.freeze()
    answer = cf.control(
        "POST",
        "/deployments/behaviour",
        json={"project": "acme-home", "mode": "fail", "stage": "build"},
    )
    assert answer.status_code == 200
    with cf.client() as http:
        made = _deploy(http, cf)
        cf.clock.advance(60)
        got = _get(http, cf, made["id"])
        project = http.get(_project(cf)).json()["result"]
    assert got["latest_stage"]["name"] == "build"
    assert got["latest_stage"]["status"] == "failure"
    assert got["stages"][4]["status"] == "idle"
    assert project["canonical_deployment"]["id"] == made["id"]


def test_a_stuck_deployment_stays_active(cf: Any) -> None:
    cf.clock.freeze()
    cf.control(
        "POST",
        "/deployments/behaviour",
        json={"project": "acme-home", "mode": "stick", "stage": "deploy"},
    )
    with cf.client() as http:
        made = _deploy(http, cf)
        cf.clock.advance(3600)
        got = _get(http, cf, made["id"])
    assert (got["latest_stage"]["name"], got["latest_stage"]["status"]) == ("deploy", "active")


def test_retry_creates_a_new_deployment_that_can_succeed(cf: Any) -> None:
    cf.clock.freeze()
    cf.control("POST", "/deployments/behaviour", json={"project": "acme-home", "mode": "fail"})
    with cf.client() as http:
        failed = _deploy(http, cf)
        cf.clock.advance(60)
        retried = http.post(_project(cf) + f"/deployments/{failed['id']}/retry")
        cf.clock.advance(60)
        got = _get(http, cf, retried.json()["result"]["id"])
    assert retried.status_code == 200
    assert got["id"] != failed["id"]
    assert got["latest_stage"]["status"] == "success"


def test_rollback_goes_only_to_a_successful_production_deployment(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        v12 = _deploy(http, cf, commit="v12")
        cf.clock.advance(60)
        v13 = _deploy(http, cf, commit="v13")
        cf.clock.advance(60)
        preview = _deploy(http, cf, branch="preview-v14", commit="v14")
        cf.clock.advance(60)
        assert http.get(_project(cf)).json()["result"]["canonical_deployment"]["id"] == v13["id"]
        back = http.post(_project(cf) + f"/deployments/{v12['id']}/rollback")
        canonical = http.get(_project(cf)).json()["result"]["canonical_deployment"]
        refused = http.post(_project(cf) + f"/deployments/{preview['id']}/rollback")
    assert back.status_code == 200
    assert back.json()["result"]["id"] == v12["id"]
    assert canonical["id"] == v12["id"]
    assert preview["environment"] == "preview"
    assert preview["aliases"] == ["https://preview-v14.acme-home.pages.dev"]
    assert refused.status_code == 400
    assert refused.json()["success"] is False


def test_rollback_to_a_failed_deployment_is_refused(cf: Any) -> None:
    cf.clock.freeze()
    cf.control("POST", "/deployments/behaviour", json={"project": "acme-home", "mode": "fail"})
    with cf.client() as http:
        failed = _deploy(http, cf)
        cf.clock.advance(60)
        refused = http.post(_project(cf) + f"/deployments/{failed['id']}/rollback")
    assert refused.status_code == 400


def test_list_filters_by_environment_newest_first_with_pages(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        made = []
        for i in range(30):
            made.append(_deploy(http, cf, commit=f"c{i}"))
            cf.clock.advance(1)
        _deploy(http, cf, branch="feature", commit="p")
        first = http.get(_project(cf) + "/deployments", params={"env": "production"}).json()
        second = http.get(
            _project(cf) + "/deployments", params={"env": "production", "page": 2}
        ).json()
        previews = http.get(_project(cf) + "/deployments", params={"env": "preview"}).json()
    assert first["result"][0]["id"] == made[-1]["id"]
    assert first["result_info"]["total_count"] == 30
    assert first["result_info"]["total_pages"] == 2
    assert len(first["result"]) + len(second["result"]) == 30
    assert [d["deployment_trigger"]["metadata"]["commit_hash"] for d in previews["result"]] == ["p"]


def test_deleting_an_aliased_preview_needs_force_and_the_live_one_is_kept(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        live = _deploy(http, cf)
        preview = _deploy(http, cf, branch="feature")
        cf.clock.advance(60)
        refused = http.delete(_project(cf) + f"/deployments/{preview['id']}")
        forced = http.delete(
            _project(cf) + f"/deployments/{preview['id']}", params={"force": "true"}
        )
        kept = http.delete(_project(cf) + f"/deployments/{live['id']}", params={"force": "true"})
    assert refused.json()["errors"][0]["code"] == 8000035
    assert forced.status_code == 200 and forced.json()["result"] is None
    assert kept.status_code == 400


def test_a_deployment_without_a_manifest_is_refused(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(_project(cf) + "/deployments", files={"branch": (None, "main")})
    assert answer.status_code == 400
    assert answer.json()["success"] is False


def test_asset_upload_flow_marks_assets_as_present(cf: Any) -> None:
    with cf.client() as http:
        jwt = http.get(_project(cf) + "/upload-token").json()["result"]["jwt"]
    assets = httpx.Client(base_url=cf.base_url, headers={"Authorization": f"Bearer {jwt}"})
    with assets:
        missing = assets.post("/pages/assets/check-missing", json={"hashes": ["a" * 32, "b" * 32]})
        assets.post(
            "/pages/assets/upload",
            json=[
                {
                    "key": "a" * 32,
                    "value": "aGk=",
                    "metadata": {"contentType": "text/html"},
                    "base64": True,
                }
            ],
        )
        after = assets.post("/pages/assets/check-missing", json={"hashes": ["a" * 32, "b" * 32]})
        bad = httpx.post(
            cf.base_url + "/pages/assets/check-missing",
            json={"hashes": []},
            headers={"Authorization": "Bearer expired"},
        )
    assert missing.json()["result"] == ["a" * 32, "b" * 32]
    assert after.json()["result"] == ["b" * 32]
    assert bad.json()["errors"][0]["code"] == 8000013


def test_projects_can_be_created_through_the_control_endpoint(cf: Any) -> None:
    made = cf.control("POST", "/projects", json={"name": "new-site"})
    dup = cf.control("POST", "/projects", json={"name": "new-site"})
    with cf.client() as http:
        got = http.get(_project(cf, "new-site"))
    assert made.status_code == 201
    assert dup.status_code == 409
    assert got.json()["result"]["subdomain"] == "new-site.pages.dev"
