"""Cache purge and D1 in the Cloudflare simulator, over real HTTP."""

from __future__ import annotations

from typing import Any


def _purge(cf: Any) -> str:
    return f"/zones/{cf.zone_id}/purge_cache"


def _query(cf: Any, kind: str = "query") -> str:
    return f"/accounts/{cf.account_id}/d1/database/{cf.database_id}/{kind}"


def test_purge_by_hosts_answers_an_id_and_is_recorded(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(_purge(cf), json={"hosts": ["www.acmebakery.com", "acmebakery.com"]})
    assert answer.status_code == 200
    assert answer.json()["result"] == {"id": cf.zone_id}
    assert cf.sim.purges[-1]["kind"] == "hosts"


def test_purge_with_more_than_100_items_is_refused(cf: Any) -> None:
    with cf.client() as http:
        prefixes = http.post(_purge(cf), json={"prefixes": [f"a.net/{i}" for i in range(101)]})
        files = http.post(_purge(cf), json={"files": [f"https://a.net/{i}" for i in range(101)]})
        exactly = http.post(_purge(cf), json={"hosts": [f"h{i}.net" for i in range(100)]})
    assert prefixes.status_code == 400 and prefixes.json()["success"] is False
    assert files.status_code == 400
    assert exactly.status_code == 200


def test_purge_needs_exactly_one_kind(cf: Any) -> None:
    with cf.client() as http:
        both = http.post(_purge(cf), json={"hosts": ["a.net"], "prefixes": ["a.net/x"]})
        none = http.post(_purge(cf), json={})
        everything = http.post(_purge(cf), json={"purge_everything": True})
    assert both.status_code == 400
    assert none.status_code == 400
    assert everything.status_code == 200


def test_d1_query_runs_several_statements_with_params_in_order(cf: Any) -> None:
    sql = (
        "CREATE TABLE sites (name TEXT, version INTEGER);"
        "INSERT INTO sites VALUES (?, ?);"
        "INSERT INTO sites VALUES (?, ?);"
        "SELECT name, version FROM sites ORDER BY name"
    )
    with cf.client() as http:
        answer = http.post(_query(cf), json={"sql": sql, "params": ["b", "2", "a", "1"]})
    body = answer.json()
    assert answer.status_code == 200
    assert len(body["result"]) == 4
    assert body["result"][1]["meta"]["changes"] == 1
    assert body["result"][1]["meta"]["last_row_id"] == 1
    assert body["result"][3]["results"] == [
        {"name": "a", "version": 1},
        {"name": "b", "version": 2},
    ]
    assert {"duration", "rows_read", "rows_written", "size_after", "changed_db"} <= set(
        body["result"][3]["meta"]
    )


def test_d1_raw_answers_columns_and_rows(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(_query(cf, "raw"), json={"sql": "SELECT 1 AS one, 'x' AS two"})
    result = answer.json()["result"][0]["results"]
    assert result == {"columns": ["one", "two"], "rows": [[1, "x"]]}


def test_a_failing_statement_rolls_the_whole_batch_back(cf: Any) -> None:
    with cf.client() as http:
        http.post(_query(cf), json={"sql": "CREATE TABLE t (a TEXT)"})
        failed = http.post(
            _query(cf), json={"sql": "INSERT INTO t VALUES ('x'); INSERT INTO nope VALUES (1)"}
        )
        count = http.post(_query(cf), json={"sql": "SELECT count(*) AS n FROM t"})
    assert failed.status_code == 400
    assert failed.json()["errors"] == [
        {"code": 7500, "message": "no such table: nope: SQLITE_ERROR"}
    ]
    assert count.json()["result"][0]["results"] == [{"n": 0}]


def test_d1_refuses_more_than_100_bound_parameters(cf: Any) -> None:
    placeholders = ",".join("?" * 101)
    with cf.client() as http:
        answer = http.post(
            _query(cf), json={"sql": f"SELECT {placeholders}", "params": ["1"] * 101}
        )
    assert answer.status_code == 400
    assert "too many SQL variables" in answer.json()["errors"][0]["message"]


def test_an_unknown_database_gets_7404(cf: Any) -> None:
    with cf.client() as http:
        answer = http.post(
            f"/accounts/{cf.account_id}/d1/database/00000000-0000-0000-0000-000000000000/query",
            json={"sql": "SELECT 1"},
        )
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == 7404


def test_the_d1_file_is_plain_sqlite_shared_with_the_sqlite_backend(cf: Any) -> None:
    import sqlite3

    with cf.client() as http:
        http.post(
            _query(cf),
            json={"sql": "CREATE TABLE shared (v TEXT); INSERT INTO shared VALUES ('y')"},
        )
    conn = sqlite3.connect(cf.sim.d1_path)
    try:
        assert conn.execute("SELECT v FROM shared").fetchall() == [("y",)]
    finally:
        conn.close()


def test_d1_database_list_and_get(cf: Any) -> None:
    with cf.client() as http:
        listed = http.get(f"/accounts/{cf.account_id}/d1/database").json()
        got = http.get(f"/accounts/{cf.account_id}/d1/database/{cf.database_id}").json()
    assert [d["uuid"] for d in listed["result"]] == [cf.database_id]
    assert got["result"]["num_tables"] == 0
