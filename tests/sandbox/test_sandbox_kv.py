"""Workers KV in the Cloudflare simulator, over real HTTP: namespaces, bulk writes, limits."""

from __future__ import annotations

import json
from typing import Any

import httpx


def _ns_path(cf: Any, suffix: str = "") -> str:
    return f"/accounts/{cf.account_id}/storage/kv/namespaces{suffix}"


def _namespace(http: httpx.Client, cf: Any, title: str = "routing") -> str:
    answer = http.post(_ns_path(cf), json={"title": title})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["title"] == title
    return str(result["id"])


def test_a_namespace_is_created_listed_and_its_title_is_unique(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        listed = http.get(_ns_path(cf)).json()
        again = http.post(_ns_path(cf), json={"title": "routing"})
    assert [ns["id"] for ns in listed["result"]] == [namespace_id]
    assert listed["result_info"]["total_count"] == 1
    assert again.status_code == 400
    assert again.json()["errors"][0]["code"] == 10014


def test_bulk_write_then_bulk_get_and_list_keys(cf: Any) -> None:
    pairs = [
        {"key": f"host{i:02d}.acmebakery.com", "value": json.dumps({"action": "serve"})}
        for i in range(25)
    ]
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        wrote = http.put(base + "/bulk", json=pairs)
        got = http.post(
            base + "/bulk/get",
            json={"keys": ["host03.acmebakery.com", "absent.com"], "type": "json"},
        )
        first = http.get(base + "/keys", params={"limit": 10}).json()
        second = http.get(
            base + "/keys", params={"limit": 10, "cursor": first["result_info"]["cursor"]}
        ).json()
    assert wrote.json()["result"] == {"successful_key_count": 25, "unsuccessful_keys": []}
    assert got.json()["result"]["values"] == {"host03.acmebakery.com": {"action": "serve"}}
    assert [k["name"] for k in first["result"]] == [
        f"host{i:02d}.acmebakery.com" for i in range(10)
    ]
    assert second["result"][0]["name"] == "host10.acmebakery.com"
    assert first["result_info"]["count"] == 10


def test_the_last_page_of_keys_has_an_empty_cursor(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        http.put(base + "/bulk", json=[{"key": "a", "value": "1"}])
        body = http.get(base + "/keys").json()
    assert body["result"] == [{"name": "a"}]
    assert body["result_info"] == {"count": 1, "cursor": ""}


def test_bulk_write_over_10000_pairs_is_refused_and_writes_nothing(cf: Any) -> None:
    pairs = [{"key": f"k{i}", "value": "v"} for i in range(10_001)]
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        answer = http.put(base + "/bulk", json=pairs)
        keys = http.get(base + "/keys").json()["result"]
    assert answer.status_code == 413
    assert answer.json()["success"] is False
    assert keys == []


def test_exactly_10000_pairs_are_written_in_one_request(cf: Any) -> None:
    pairs = [{"key": f"k{i:05d}", "value": "v"} for i in range(10_000)]
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        answer = http.put(_ns_path(cf, f"/{namespace_id}/bulk"), json=pairs)
    assert answer.json()["result"]["successful_key_count"] == 10_000
    assert len(cf.sim.kv.namespaces[namespace_id].entries) == 10_000


def test_a_key_over_512_bytes_or_metadata_over_1024_bytes_is_refused(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        long_key = http.put(base + "/bulk", json=[{"key": "k" * 513, "value": "v"}])
        big_meta = http.put(
            base + "/bulk", json=[{"key": "k", "value": "v", "metadata": {"m": "x" * 1100}}]
        )
        fits = http.put(base + "/bulk", json=[{"key": "k" * 512, "value": "v"}])
    assert long_key.status_code == 414
    assert big_meta.status_code == 413
    assert fits.status_code == 200
    assert all(not a.json()["success"] for a in (long_key, big_meta))


def test_bulk_delete_removes_keys_and_tolerates_absent_ones(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        http.put(base + "/bulk", json=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        deleted = http.post(base + "/bulk/delete", json=["a", "zzz"])
        keys = [k["name"] for k in http.get(base + "/keys").json()["result"]]
    assert deleted.json()["result"]["successful_key_count"] == 2
    assert keys == ["b"]


def test_single_values_put_get_and_delete(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}/values")
        put = http.put(
            base + "/www.acmebakery.com",
            files={"value": (None, b"<html>hi</html>"), "metadata": (None, '{"by": "test"}')},
        )
        got = http.get(base + "/www.acmebakery.com")
        raw_put = http.put(
            base + "/raw%2Fkey",
            content=b"\x00\x01",
            headers={"content-type": "application/octet-stream"},
        )
        raw_got = http.get(base + "/raw%2Fkey")
        http.delete(base + "/www.acmebakery.com")
        gone = http.get(base + "/www.acmebakery.com")
    assert put.json()["success"] is True
    assert got.content == b"<html>hi</html>"
    assert raw_put.status_code == 200
    assert raw_got.content == b"\x00\x01"
    assert "raw/key" in cf.sim.kv.namespaces[namespace_id].entries
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == 10009


def test_an_expiration_ttl_under_60_seconds_is_refused_and_keys_expire(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        short = http.put(base + "/bulk", json=[{"key": "a", "value": "1", "expiration_ttl": 30}])
        http.put(base + "/bulk", json=[{"key": "a", "value": "1", "expiration_ttl": 60}])
        before = http.get(base + "/keys").json()["result"]
        cf.clock.advance(61)
        after = http.get(base + "/keys").json()["result"]
    assert short.status_code == 400
    assert [k["name"] for k in before] == ["a"]
    assert after == []


def test_an_unknown_namespace_is_not_found(cf: Any) -> None:
    with cf.client() as http:
        answer = http.get(_ns_path(cf, "/" + "0" * 32 + "/keys"))
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == 10013


def test_every_write_moves_the_namespace_version(cf: Any) -> None:
    with cf.client() as http:
        namespace_id = _namespace(http, cf)
        base = _ns_path(cf, f"/{namespace_id}")
        start = cf.sim.kv.namespaces[namespace_id].version
        http.put(base + "/bulk", json=[{"key": "a", "value": "1"}])
        middle = cf.sim.kv.namespaces[namespace_id].version
        http.post(base + "/bulk/delete", json=["a"])
    assert start < middle < cf.sim.kv.namespaces[namespace_id].version
