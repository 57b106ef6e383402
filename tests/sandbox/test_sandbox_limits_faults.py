"""Rate limit, fault injection and the call log of the Cloudflare simulator."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest


def _list(cf: Any) -> str:
    return f"/zones/{cf.zone_id}/custom_hostnames"


def test_exceeding_the_rate_limit_answers_429_and_blocks_for_five_minutes(cf: Any) -> None:
    cf.clock.freeze()
    cf.sim.configure(rate_limit_requests=3, rate_limit_period=300)
    with cf.client() as http:
        ok = [http.get(_list(cf)).status_code for _ in range(3)]
        limited = http.get(_list(cf))
        cf.clock.advance(299)
        still = http.get(_list(cf))
        cf.clock.advance(2)
        after = http.get(_list(cf))
    assert ok == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json() == {
        "success": False,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
        "messages": [],
        "result": None,
    }
    assert limited.headers["retry-after"] == "300"
    assert still.status_code == 429
    assert still.headers["retry-after"] == "1"
    assert after.status_code == 200


def test_every_answer_carries_the_ratelimit_headers(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        answer = http.get(_list(cf))
    assert answer.headers["ratelimit"] == '"default";r=1199;t=300'
    assert answer.headers["ratelimit-policy"] == '"default";q=1200;w=300'


def test_an_error_rate_of_one_on_a_prefix_fails_only_that_prefix(cf: Any) -> None:
    cf.control(
        "POST", "/faults", json={"path_prefix": "/zones", "error_rate": 1.0, "error_status": 503}
    )
    with cf.client() as http:
        zones = http.get(_list(cf))
        pages = http.get(f"/accounts/{cf.account_id}/pages/projects/acme-home")
    assert zones.status_code == 503
    assert zones.json()["errors"][0]["code"] == 1500
    assert pages.status_code == 200


def test_pages_server_errors_use_code_8000000(cf: Any) -> None:
    cf.control("POST", "/faults", json={"path_prefix": "/accounts", "error_rate": 1.0})
    with cf.client() as http:
        answer = http.get(f"/accounts/{cf.account_id}/pages/projects/acme-home")
    assert answer.status_code == 500
    assert answer.json()["errors"][0]["code"] == 8000000


def test_the_same_seed_gives_the_same_faults(cf: Any) -> None:
    def run() -> list[int]:
        cf.control("POST", "/faults", json={"seed": 42, "rules": [{"error_rate": 0.5}]})
        with cf.client() as http:
            return [http.get(_list(cf)).status_code for _ in range(20)]

    first = run()
    second = run()
    assert first == second
    assert {200, 500} <= set(first)


def test_a_429_burst_answers_the_next_requests_then_clears(cf: Any) -> None:
    cf.control("POST", "/faults", json={"burst_429": 2, "retry_after": 7})
    with cf.client() as http:
        statuses = [http.get(_list(cf)) for _ in range(3)]
    assert [a.status_code for a in statuses] == [429, 429, 200]
    assert statuses[0].headers["retry-after"] == "7"
    assert statuses[0].json()["errors"][0]["code"] == 971


def test_a_held_create_times_out_the_client_but_still_happens(cf: Any) -> None:
    cf.control(
        "POST",
        "/faults",
        json={
            "methods": ["POST"],
            "timeout_rate": 1.0,
            "hold_seconds": 5,
            "process_on_timeout": True,
        },
    )
    with cf.client(timeout=0.5) as http, pytest.raises(httpx.TimeoutException):
        http.post(
            _list(cf), json={"hostname": "slow.acme.net", "ssl": {"method": "http", "type": "dv"}}
        )
    cf.control("DELETE", "/faults")
    with cf.client() as http:
        found = http.get(_list(cf), params={"hostname": "slow.acme.net"}).json()["result"]
    assert len(found) == 1
    assert cf.calls()[0]["fault"] == "timeout"


def test_a_dropped_connection_is_a_transport_error(cf: Any) -> None:
    cf.control("POST", "/faults", json={"timeout_rate": 1.0, "timeout_mode": "drop"})
    with cf.client() as http, pytest.raises(httpx.TransportError):
        http.get(_list(cf))


def test_a_bad_fault_rule_is_refused(cf: Any) -> None:
    answer = cf.control("POST", "/faults", json={"error_rate": 2})
    unknown = cf.control("POST", "/faults", json={"nonsense": 1})
    assert answer.status_code == 400
    assert unknown.status_code == 400


def test_the_call_log_records_requests_without_credentials(cf: Any) -> None:
    with cf.client() as http:
        http.post(
            f"/accounts/{cf.account_id}/pages/projects/acme-home/deployments",
            files={
                "manifest": (None, json.dumps({"/a": "1" * 32})),
                "branch": (None, "main"),
                "_headers": ("_headers", b"x"),
            },
        )
        http.get(_list(cf), params={"page": 1, "per_page": 50})
    calls = cf.control("GET", "/calls").json()["calls"]
    create, listing = calls
    assert create["method"] == "POST"
    assert create["route"] == "/accounts/{account_id}/pages/projects/{project_name}/deployments"
    assert create["request_form"]["branch"] == "main"
    assert create["request_files"] == ["_headers"]
    assert create["request_json"] is None
    assert create["request_content_type"].startswith("multipart/form-data")
    assert listing["query"] == {"page": "1", "per_page": "50"}
    assert listing["status"] == 200
    assert listing["response_json"]["success"] is True
    assert "ratelimit" in listing["response_headers"]
    assert cf.token not in json.dumps(calls)
    later = cf.control("GET", "/calls", params={"since": create["seq"]}).json()["calls"]
    assert [c["seq"] for c in later] == [listing["seq"]]


def test_the_summary_counts_calls_by_route_and_status(cf: Any) -> None:
    with cf.client() as http:
        http.get(_list(cf))
        http.get(_list(cf))
        http.get("/zones/nope/custom_hostnames")
    summary = cf.control("GET", "/summary").json()
    assert summary["by_route"]["GET /zones/{zone_id}/custom_hostnames"] == 3
    assert summary["by_status"] == {"200": 2, "400": 1}
    cf.control("DELETE", "/calls")
    assert cf.control("GET", "/summary").json()["calls"] == 0


def test_the_clock_endpoint_advances_virtual_time(cf: Any) -> None:
    before = cf.control("GET", "/clock").json()["now"]
    after = cf.control("POST", "/clock", json={"seconds": 86400}).json()["now"]
    refused = cf.control("POST", "/clock", json={"seconds": -1})
    assert after - before >= 86400
    assert refused.status_code == 400


def test_reset_clears_hostnames_and_restores_projects(cf: Any) -> None:
    cf.sim.add_hostname("r.acme.net")
    cf.control("POST", "/projects", json={"name": "temp-site"})
    cf.control("POST", "/reset")
    summary = cf.control("GET", "/summary").json()
    projects = cf.control("GET", "/projects").json()["projects"]
    assert summary["hostnames"] == 0
    assert "temp-site" not in projects and "acme-home" in projects


def test_a_latency_rule_delays_but_does_not_fail_requests(cf: Any) -> None:
    cf.control("POST", "/faults", json={"path_prefix": "/zones", "latency": 0.05})
    rules = cf.control("GET", "/faults").json()["rules"]
    with cf.client() as http:
        answer = http.get(_list(cf))
    assert rules[0]["latency"] == 0.05
    assert answer.status_code == 200
    assert cf.calls()[-1]["fault"] is None
