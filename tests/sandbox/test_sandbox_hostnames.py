"""Custom hostnames in the Cloudflare simulator, over real HTTP: envelope, pages, lifecycle."""

from __future__ import annotations

from typing import Any

import httpx

HTTP_SSL = {"method": "http", "type": "dv"}


def _path(cf: Any, suffix: str = "") -> str:
    return f"/zones/{cf.zone_id}/custom_hostnames{suffix}"


def _create(http: httpx.Client, cf: Any, hostname: str, **extra: Any) -> dict[str, Any]:
    answer = http.post(_path(cf), json={"hostname": hostname, "ssl": HTTP_SSL, **extra})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def _get(http: httpx.Client, cf: Any, hostname_id: str) -> dict[str, Any]:
    answer = http.get(_path(cf, f"/{hostname_id}"))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def test_success_envelope_has_the_contract_fields(cf: Any) -> None:
    with cf.client() as http:
        body = http.get(_path(cf)).json()
    assert body == {
        "success": True,
        "errors": [],
        "messages": [],
        "result": [],
        "result_info": {"page": 1, "per_page": 20, "count": 0, "total_count": 0},
    }


def test_a_wrong_token_gets_the_authentication_error(cf: Any) -> None:
    answer = httpx.get(cf.base_url + _path(cf), headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.json() == {
        "success": False,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
        "result": None,
    }


def test_an_unknown_zone_cannot_be_routed(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get("/zones/0123456789abcdef0123456789abcdef/custom_hostnames")
    assert answer.status_code == 400
    assert [e["code"] for e in answer.json()["errors"]] == [7003, 7000]


def test_120_hostnames_come_back_in_three_pages_of_at_most_50(cf: Any) -> None:
    for i in range(120):
        cf.sim.add_hostname(f"site{i:03d}.example-customer.net")
    seen: list[str] = []
    counts: list[int] = []
    with cf.client() as http:
        page = 1
        while True:
            body = http.get(_path(cf), params={"page": page, "per_page": 50}).json()
            if not body["result"]:
                break
            counts.append(body["result_info"]["count"])
            assert body["result_info"]["total_count"] == 120
            seen.extend(h["hostname"] for h in body["result"])
            page += 1
    assert counts == [50, 50, 20]
    assert len(set(seen)) == 120


def test_per_page_above_50_is_refused(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get(_path(cf), params={"per_page": 51})
    assert answer.status_code == 400
    assert answer.json()["success"] is False


def test_the_hostname_filter_matches_exactly(cf: Any) -> None:
    cf.sim.add_hostname("shop.acme.net")
    cf.sim.add_hostname("www.shop.acme.net")
    with cf.client() as http:
        body = http.get(_path(cf), params={"hostname": "shop.acme.net"}).json()
        contain = http.get(_path(cf), params={"hostname.contain": "shop"}).json()
    assert [h["hostname"] for h in body["result"]] == ["shop.acme.net"]
    assert len(contain["result"]) == 2


def test_status_filters_list_only_the_hostnames_in_that_status(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        _create(http, cf, "ready.acme.net")
        _create(http, cf, "waiting.acme.net")
        cf.control("PUT", "/dns/ready.acme.net", json={"cname": cf.config.cname_target})
        cf.clock.advance(200)  # ready: active, certificate issued; waiting: still pending
        pending = http.get(_path(cf), params={"hostname_status": "pending"}).json()
        active = http.get(_path(cf), params={"hostname_status": "active"}).json()
        validating = http.get(_path(cf), params={"ssl_status": "pending_validation"}).json()
        both = http.get(
            _path(cf), params={"hostname_status": "active", "ssl_status": "pending_validation"}
        ).json()
    assert [(h["hostname"], h["status"]) for h in active["result"]] == [
        ("ready.acme.net", "active")
    ]
    assert [h["hostname"] for h in pending["result"]] == ["waiting.acme.net"]
    assert [h["hostname"] for h in validating["result"]] == ["waiting.acme.net"]
    assert both["result"] == []


def test_a_status_filter_outside_the_enum_is_refused(cf: Any) -> None:
    cf.sim.add_hostname("a.acme.net")
    with cf.client() as http:
        status = http.get(_path(cf), params={"hostname_status": "waiting"})
        ssl = http.get(_path(cf), params={"ssl_status": "Active"})
    assert (status.status_code, ssl.status_code) == (400, 400)
    assert status.json()["success"] is False and ssl.json()["success"] is False


def test_id_and_hostname_filters_together_are_refused_with_1438(cf: Any) -> None:
    made = cf.sim.add_hostname("a.acme.net")
    with cf.client() as http:
        answer = http.get(_path(cf), params={"id": made["id"], "hostname": "a.acme.net"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == 1438


def test_a_duplicate_hostname_is_refused_with_1406(cf: Any) -> None:
    with cf.client() as http:
        _create(http, cf, "dup.acme.net")
        answer = http.post(_path(cf), json={"hostname": "dup.acme.net", "ssl": HTTP_SSL})
    assert answer.status_code == 409
    assert answer.json()["errors"][0]["code"] == 1406


def test_unknown_and_malformed_ids_get_1436_and_1435(cf: Any) -> None:
    with cf.client() as http:
        missing = http.get(_path(cf, "/3f1c9f5e-4a7b-4c2d-9e8f-0a1b2c3d4e5f"))
        malformed = http.get(_path(cf, "/not-an-id"))
    assert (missing.status_code, missing.json()["errors"][0]["code"]) == (404, 1436)
    assert (malformed.status_code, malformed.json()["errors"][0]["code"]) == (400, 1435)


def test_a_bad_validation_method_is_refused_with_1432(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(
            _path(cf), json={"hostname": "x.acme.net", "ssl": {"method": "dns", "type": "dv"}}
        )
    assert answer.json()["errors"][0]["code"] == 1432


def test_create_returns_ownership_and_metadata_as_sent(cf: Any) -> None:
    cf.sim.configure(
        entitled_custom_metadata=True, entitled_custom_origin=True, custom_origin_outside_zone=True
    )
    with cf.client() as http:
        made = _create(
            http,
            cf,
            "www.acmebakery.com",
            custom_origin_server="acme-home.pages.dev",
            custom_metadata={"managed_by": "reconciler"},
        )
    assert made["status"] == "pending"
    assert made["ssl"]["status"] == "initializing"
    assert made["custom_origin_server"] == "acme-home.pages.dev"
    assert made["custom_metadata"] == {"managed_by": "reconciler"}
    assert made["ownership_verification"]["name"] == "_cf-custom-hostname.www.acmebakery.com"
    assert made["ownership_verification_http"]["http_url"].endswith(made["id"])
    assert len(made["id"]) == 36


def test_a_hostname_whose_dns_points_right_becomes_active(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        made = _create(http, cf, "www.acmebakery.com")
        cf.clock.advance(30)
        assert _get(http, cf, made["id"])["ssl"]["status"] == "pending_validation"
        cf.control("PUT", "/dns/www.acmebakery.com", json={"cname": cf.config.cname_target})
        cf.clock.advance(31)  # the next scheduled check is at 60 s after creation
        middle = _get(http, cf, made["id"])
        cf.clock.advance(60)
        final = _get(http, cf, made["id"])
    assert middle["status"] == "active"
    assert middle["ssl"]["status"] == "pending_issuance"
    assert (final["status"], final["ssl"]["status"]) == ("active", "active")
    assert final["verification_errors"] == []


def test_a_hostname_whose_dns_points_elsewhere_stays_pending_then_times_out(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        made = _create(http, cf, "www.elsewhere.net")
        cf.control("PUT", "/dns/www.elsewhere.net", json={"cname": "other-provider.example.org"})
        cf.clock.advance(3600)
        pending = _get(http, cf, made["id"])
        cf.clock.advance(8 * 86400)
        timed_out = _get(http, cf, made["id"])
    assert pending["status"] == "pending"
    assert pending["ssl"]["status"] == "pending_validation"
    assert pending["verification_errors"]
    assert pending["ssl"]["validation_records"][0]["http_body"]
    assert timed_out["status"] == "moved"
    assert timed_out["ssl"]["status"] == "validation_timed_out"


def test_a_configured_validation_window_times_out_sooner(cf: Any) -> None:
    cf.clock.freeze()
    cf.sim.configure(validation_window=600)
    made = cf.sim.add_hostname("slow.acme.net")
    cf.clock.advance(601)
    with cf.client() as http:
        got = _get(http, cf, made["id"])
    assert got["ssl"]["status"] == "validation_timed_out"


def test_txt_records_validate_an_apex_hostname(cf: Any) -> None:
    cf.clock.freeze()
    with cf.client() as http:
        made = http.post(
            _path(cf), json={"hostname": "acmebakery.com", "ssl": {"method": "txt", "type": "dv"}}
        ).json()["result"]
        cf.clock.advance(5)
        record = _get(http, cf, made["id"])["ssl"]["validation_records"][0]
        cf.sim.dns.add_txt(record["txt_name"], record["txt_value"])
        own = made["ownership_verification"]
        cf.sim.dns.add_txt(own["name"], own["value"])
        cf.clock.advance(300)
        got = _get(http, cf, made["id"])
    assert record["txt_name"] == "_acme-challenge.acmebakery.com"
    assert (got["status"], got["ssl"]["status"]) == ("active", "active")


def test_a_stuck_hostname_stays_pending_even_with_dns_right(cf: Any) -> None:
    cf.clock.freeze()
    cf.control("PUT", "/hostnames/stuck.acme.net/behaviour", json={"mode": "stick"})
    made = cf.sim.add_hostname("stuck.acme.net")
    cf.sim.point_dns("stuck.acme.net")
    cf.clock.advance(30 * 86400)
    with cf.client() as http:
        got = _get(http, cf, made["id"])
    assert (got["status"], got["ssl"]["status"]) == ("pending", "pending_validation")


def test_a_failing_hostname_shows_the_failed_status(cf: Any) -> None:
    answer = cf.control("PUT", "/hostnames/bad.acme.net/behaviour", json={"mode": "fail"})
    assert answer.status_code == 200
    made = cf.sim.add_hostname("bad.acme.net")
    with cf.client() as http:
        got = _get(http, cf, made["id"])
    assert (got["status"], got["ssl"]["status"]) == ("blocked", "validation_timed_out")
    cf.control("DELETE", "/hostnames/bad.acme.net/behaviour")
    with cf.client() as http:
        assert _get(http, cf, made["id"])["status"] == "pending"


def test_an_active_hostname_whose_cname_is_removed_becomes_moved_until_patched(cf: Any) -> None:
    cf.clock.freeze()
    cf.sim.point_dns("gone.acme.net")
    made = cf.sim.add_hostname("gone.acme.net")
    with cf.client() as http:
        assert _get(http, cf, made["id"])["status"] == "active"
        cf.control("DELETE", "/dns/gone.acme.net")
        assert _get(http, cf, made["id"])["status"] == "moved"
        cf.sim.point_dns("gone.acme.net")
        assert _get(http, cf, made["id"])["status"] == "moved"
        patched = http.patch(_path(cf, f"/{made['id']}"), json={"ssl": HTTP_SSL})
        assert patched.status_code == 202
        assert patched.json()["result"]["status"] == "active"


def test_patch_changes_origin_and_refuses_a_new_hostname(cf: Any) -> None:
    cf.sim.configure(entitled_custom_origin=True, custom_origin_outside_zone=True)
    made = cf.sim.add_hostname("edit.acme.net", custom_origin_server="a.pages.dev")
    with cf.client() as http:
        moved = http.patch(
            _path(cf, f"/{made['id']}"), json={"custom_origin_server": "suspended.pages.dev"}
        )
        renamed = http.patch(_path(cf, f"/{made['id']}"), json={"hostname": "other.acme.net"})
    assert moved.json()["result"]["custom_origin_server"] == "suspended.pages.dev"
    assert renamed.json()["errors"][0]["code"] == 1439


def test_delete_answers_the_id_and_the_hostname_is_gone(cf: Any) -> None:
    made = cf.sim.add_hostname("bye.acme.net")
    with cf.client() as http:
        deleted = http.delete(_path(cf, f"/{made['id']}"))
        again = http.get(_path(cf, f"/{made['id']}"))
        cf.sim.configure(hostname_delete_body="bare")
        other = cf.sim.add_hostname("bye2.acme.net")
        bare = http.delete(_path(cf, f"/{other['id']}"))
    assert deleted.json()["result"] == {"id": made["id"]}
    assert again.status_code == 404
    assert bare.json() == {"id": other["id"]}


def test_fallback_origin_is_a_valid_cname_target(cf: Any) -> None:
    with cf.client() as http:
        origin = http.get(_path(cf, "/fallback_origin")).json()["result"]
        cf.sim.dns.put("fb.acme.net", cname=origin["origin"])
        made = _create(http, cf, "fb.acme.net")
    assert origin["status"] == "active"
    assert made["status"] == "active"


def test_listing_5000_hostnames_takes_100_requests(cf: Any) -> None:
    for i in range(5000):
        cf.sim.add_hostname(f"h{i:04d}.fleet-customer.net")
    total = 0
    requests = 0
    with cf.client() as http:
        page = 1
        while True:
            body = http.get(_path(cf), params={"page": page, "per_page": 50}).json()
            requests += 1
            if not body["result"]:
                break
            total += len(body["result"])
            page += 1
    assert total == 5000
    assert requests == 101  # 100 full pages and the empty one that ends the walk
