"""Tests of the OpenAPI checker itself: it accepts conforming exchanges and names what is wrong.

No simulator is needed. The first group uses a small inline OpenAPI 3.0 document, so it always
runs; the second uses the shared Cloudflare and Evolution documents with their corrections and
skips (through the fixtures) when ``../shared/contracts`` is absent.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from support.contract.corrections import (
    CLOUDFLARE_CORRECTIONS,
    CLOUDFLARE_DOCUMENT,
    EVOLUTION_CORRECTIONS,
    EVOLUTION_DOCUMENT,
    Correction,
)
from support.contract.openapi_checker import OpenAPIChecker

ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
HOSTNAME_ID = "0d89c70d-ad9f-4843-b99f-6cc0252067e9"
DEPLOYMENTS_TEMPLATE = "/accounts/{account_id}/pages/projects/{project_name}/deployments"

TINY: dict[str, Any] = {
    "openapi": "3.0.3",
    "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/things/{thing_id}": {
            "get": {
                "parameters": [
                    {
                        "in": "path",
                        "name": "thing_id",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 8},
                    },
                    {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        },
                    },
                    "4XX": {
                        "description": "client",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}
                        },
                    },
                    "default": {
                        "description": "other",
                        "content": {
                            "application/json": {"schema": {"type": "object", "required": ["oops"]}}
                        },
                    },
                },
            },
            "patch": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    },
                },
                "responses": {"200": {"description": "ok"}},
            },
        },
        "/things/special": {
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["special"],
                                    "x-internal": True,
                                }
                            }
                        },
                    }
                },
            },
        },
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "required": ["id", "name"],
                "example": {"id": "t1", "name": "one"},
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "name": {"type": "string"},
                    "note": {"type": "string", "nullable": True},
                    "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
                    "when": {"type": "string", "format": "date-time"},
                    "owner": {"allOf": [{"$ref": "#/components/schemas/Owner"}], "nullable": True},
                },
            },
            "Owner": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}},
            },
            "Failure": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
        },
    },
}


@pytest.fixture
def tiny() -> OpenAPIChecker:
    return OpenAPIChecker.from_document("tiny", TINY)


def test_a_conforming_response_has_no_violations(tiny: OpenAPIChecker) -> None:
    body = {
        "id": "t1",
        "name": "one",
        "note": None,
        "kind": None,
        "owner": None,
        "when": "2024-08-07T10:00:00Z",
    }
    assert (
        tiny.check("GET", "/v1/things/t1", query={"page": "2"}, status=200, response_json=body)
        == []
    )


def test_nullable_is_honoured_only_where_declared(tiny: OpenAPIChecker) -> None:
    problems = tiny.check("GET", "/things/t1", status=200, response_json={"id": "t1", "name": None})
    assert len(problems) == 1
    assert "response.name" in problems[0]
    assert "None is not of type 'string'" in problems[0]


def test_a_nullable_enum_still_rejects_unknown_values(tiny: OpenAPIChecker) -> None:
    problems = tiny.check(
        "GET", "/things/t1", status=200, response_json={"id": "t1", "name": "x", "kind": "c"}
    )
    assert any("response.kind" in problem for problem in problems)


def test_a_timestamp_without_timezone_is_not_a_date_time(tiny: OpenAPIChecker) -> None:
    problems = tiny.check(
        "GET",
        "/things/t1",
        status=200,
        response_json={"id": "t1", "name": "x", "when": "2024-08-07 10:00"},
    )
    assert problems and "response.when" in problems[0]


def test_a_missing_required_field_is_named(tiny: OpenAPIChecker) -> None:
    problems = tiny.check("GET", "/things/t1", status=200, response_json={"id": "t1"})
    assert problems == ["GET /things/{thing_id} -> 200: response: 'name' is a required property"]


def test_a_literal_segment_wins_over_a_parameter(tiny: OpenAPIChecker) -> None:
    operation = tiny.find_operation("GET", "/things/special")
    assert operation is not None
    assert operation.template == "/things/special"
    assert tiny.check("GET", "/things/special", status=200, response_json={}) == [
        "GET /things/special -> 200: response: 'special' is a required property",
    ]


def test_an_undocumented_path_or_method_is_a_violation(tiny: OpenAPIChecker) -> None:
    assert tiny.check("POST", "/x", status=200) == ["no operation in the contract for POST /x"]
    assert tiny.check("DELETE", "/things/t1") == [
        "no operation in the contract for DELETE /things/t1",
    ]


def test_query_and_path_parameters_are_typed_and_bounded(tiny: OpenAPIChecker) -> None:
    problems = tiny.check("GET", "/things/much-too-long", query={"page": "0", "sort": "x"})
    assert any("path parameter 'thing_id'" in p and "too long" in p for p in problems)
    assert any("query parameter 'page'='0'" in p and "minimum" in p for p in problems)
    assert any("query parameter 'sort' is not in the contract" in p for p in problems)


def test_a_query_value_that_is_not_a_number_is_rejected(tiny: OpenAPIChecker) -> None:
    problems = tiny.check("GET", "/things/t1", query={"page": "two"})
    assert problems and "'two' is not of type 'integer'" in problems[0]


def test_status_ranges_and_default_are_used_when_no_exact_status(tiny: OpenAPIChecker) -> None:
    assert tiny.check("GET", "/things/t1", status=404, response_json={"error": "gone"}) == []
    problems_4xx = tiny.check("GET", "/things/t1", status=429, response_json={})
    assert problems_4xx == [
        "GET /things/{thing_id} -> 429: response: 'error' is a required property",
    ]
    problems_default = tiny.check("GET", "/things/t1", status=503, response_json={})
    assert problems_default == [
        "GET /things/{thing_id} -> 503: response: 'oops' is a required property",
    ]


def test_read_only_properties_are_not_required_in_requests(tiny: OpenAPIChecker) -> None:
    assert tiny.check("PATCH", "/things/t1", request_json={"name": "new"}, status=200) == []


def test_a_request_body_with_a_wrong_type_is_a_violation(tiny: OpenAPIChecker) -> None:
    problems = tiny.check("PATCH", "/things/t1", request_json={"name": 7}, status=200)
    assert problems == [
        "PATCH /things/{thing_id}: request.name: 7 is not of type 'string'",
    ]


def test_a_missing_required_request_body_is_a_violation(tiny: OpenAPIChecker) -> None:
    assert tiny.check("PATCH", "/things/t1") == [
        "PATCH /things/{thing_id}: request body is required but none was sent",
    ]


def test_a_nested_ref_under_all_of_is_resolved(tiny: OpenAPIChecker) -> None:
    problems = tiny.check(
        "GET", "/things/t1", status=200, response_json={"id": "t1", "name": "x", "owner": {}}
    )
    assert problems and "response.owner" in problems[0] and "'email'" in problems[0]


def test_call_log_records_are_checked_and_numbered(tiny: OpenAPIChecker) -> None:
    records = [
        {
            "seq": 1,
            "method": "GET",
            "path": "/things/t1",
            "query": {},
            "status": 200,
            "response_json": {"id": "t1", "name": "x"},
        },
        {
            "seq": 2,
            "method": "PATCH",
            "path": "/things/t1",
            "query": {},
            "request_content_type": "application/json; charset=utf-8",
            "request_json": {"name": False},
            "status": 200,
            "response_json": None,
        },
    ]
    assert tiny.check_records(records) == [
        "#2 PATCH /things/{thing_id}: request.name: False is not of type 'string'",
    ]


# ---------------------------------------------------------------------------------------------
# Against the shared documents (skipped when ../shared is absent)
# ---------------------------------------------------------------------------------------------


def custom_hostname() -> dict[str, Any]:
    """A custom hostname in the shape of CONTRACT.md §4.3, built by hand."""
    return {
        "id": HOSTNAME_ID,
        "hostname": "www.acmebakery.com",
        "status": "pending",
        "verification_errors": ["custom hostname does not CNAME to this zone."],
        "ownership_verification": {
            "type": "txt",
            "name": "_cf-custom-hostname.www.acmebakery.com",
            "value": "5cc07c04-ea62-4a5a-95f0-419334a875a4",
        },
        "ownership_verification_http": {
            "http_url": f"http://www.acmebakery.com/.well-known/cf-custom-hostname-challenge/{HOSTNAME_ID}",
            "http_body": "5cc07c04-ea62-4a5a-95f0-419334a875a4",
        },
        "created_at": "2026-11-26T14:00:00Z",
        "custom_metadata": {"managed-by": "sitebuilder-reconciler"},
        "custom_origin_server": "acme-home.pages.dev",
        "ssl": {
            "id": "a7b9d1e3-0000-4000-8000-000000000001",
            "status": "pending_validation",
            "method": "txt",
            "type": "dv",
            "validation_records": [
                {
                    "txt_name": "_acme-challenge.www.acmebakery.com",
                    "txt_value": "810b7d5f01154524b961ba0cd578acc2",
                }
            ],
            "validation_errors": [],
            "settings": {"min_tls_version": "1.2"},
            "bundle_method": "ubiquitous",
            "wildcard": False,
        },
    }


def envelope(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


HOSTNAME_PATH = f"/client/v4/zones/{ZONE}/custom_hostnames/{HOSTNAME_ID}"


def test_a_custom_hostname_get_built_from_the_contract_conforms(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    assert (
        cloudflare_checker.check(
            "GET", HOSTNAME_PATH, status=200, response_json=envelope(custom_hostname())
        )
        == []
    )


def test_success_as_a_string_is_named_in_the_violation(cloudflare_checker: OpenAPIChecker) -> None:
    body = envelope(custom_hostname())
    body["success"] = "yes"
    problems = cloudflare_checker.check("GET", HOSTNAME_PATH, status=200, response_json=body)
    assert problems
    assert all("response.success" in problem for problem in problems)


def test_a_numeric_hostname_status_is_named_in_the_violation(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    body = envelope(custom_hostname())
    body["result"]["status"] = 42
    problems = cloudflare_checker.check("GET", HOSTNAME_PATH, status=200, response_json=body)
    assert len(problems) == 1
    assert "response.result.status: 42 is not one of" in problems[0]


def test_a_hostname_without_its_required_ssl_fails(cloudflare_checker: OpenAPIChecker) -> None:
    body = envelope(custom_hostname())
    del body["result"]["ssl"]
    problems = cloudflare_checker.check("GET", HOSTNAME_PATH, status=200, response_json=body)
    assert problems == [
        "GET /zones/{zone_id}/custom_hostnames/{custom_hostname_id} -> 200: "
        "response.result: 'ssl' is a required property",
    ]


def test_an_undocumented_cloudflare_path_fails(cloudflare_checker: OpenAPIChecker) -> None:
    assert cloudflare_checker.check(
        "GET", f"/client/v4/zones/{ZONE}/dns_records", status=200, response_json=envelope([])
    ) == [
        "no operation in the contract for GET /zones/" + ZONE + "/dns_records",
    ]


def test_a_create_hostname_body_with_a_wrong_type_fails(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    path = f"/client/v4/zones/{ZONE}/custom_hostnames"
    good = {
        "hostname": "www.acmebakery.com",
        "ssl": {"method": "txt", "type": "dv"},
        "custom_origin_server": "acme-home.pages.dev",
        "custom_metadata": {"managed-by": "sitebuilder-reconciler"},
    }
    assert cloudflare_checker.check("POST", path, request_json=good) == []
    bad = copy.deepcopy(good)
    bad["hostname"] = 42
    problems = cloudflare_checker.check("POST", path, request_json=bad)
    assert problems == [
        "POST /zones/{zone_id}/custom_hostnames: request.hostname: 42 is not of type 'string'",
    ]


def test_the_fallback_origin_literal_beats_the_hostname_id(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    operation = cloudflare_checker.find_operation(
        "GET", f"/zones/{ZONE}/custom_hostnames/fallback_origin"
    )
    assert operation is not None
    assert operation.template.endswith("/fallback_origin")


def test_a_rate_limited_answer_with_code_971_conforms(cloudflare_checker: OpenAPIChecker) -> None:
    body = {
        "success": False,
        "messages": [],
        "result": None,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
    }
    assert (
        cloudflare_checker.check(
            "GET", f"/zones/{ZONE}/custom_hostnames", status=429, response_json=body
        )
        == []
    )
    body["errors"][0]["code"] = 970
    assert (
        cloudflare_checker.check(
            "GET", f"/zones/{ZONE}/custom_hostnames", status=429, response_json=body
        )
        != []
    )


def test_a_failure_without_errors_is_rejected(cloudflare_checker: OpenAPIChecker) -> None:
    body = {"success": False, "errors": [], "messages": [], "result": None}
    problems = cloudflare_checker.check("GET", HOSTNAME_PATH, status=404, response_json=body)
    assert problems and "response.errors" in problems[0]


def test_a_purge_by_hosts_must_be_a_list(cloudflare_checker: OpenAPIChecker) -> None:
    path = f"/zones/{ZONE}/purge_cache"
    assert cloudflare_checker.check("POST", path, request_json={"hosts": ["a.example"]}) == []
    problems = cloudflare_checker.check("POST", path, request_json={"hosts": "a.example"})
    assert len(problems) == 1
    assert "request: " in problems[0]
    assert "closest: .hosts: 'a.example' is not of type 'array'" in problems[0]


def test_an_unanchored_stage_status_is_no_longer_accepted(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    path = f"/accounts/{ZONE}/pages/projects/acme-home/deployments/{HOSTNAME_ID}"
    deployment = {
        "id": HOSTNAME_ID,
        "environment": "production",
        "latest_stage": {"name": "deploy", "status": "not-a-success-at-all"},
    }
    problems = cloudflare_checker.check("GET", path, status=200, response_json=envelope(deployment))
    assert problems and "response.result.latest_stage.status" in problems[0]


def test_a_send_text_v2_answer_conforms_and_a_bad_status_fails(
    evolution_checker: OpenAPIChecker,
) -> None:
    body = {
        "key": {
            "remoteJid": "5511999999999@s.whatsapp.net",
            "fromMe": True,
            "id": "3EB0C431C26A1916E6D6F1",
        },
        "pushName": "Você",
        "status": "PENDING",
        "message": {"conversation": "Your invoice #123 is overdue."},
        "contextInfo": None,
        "messageType": "conversation",
        "messageTimestamp": 1717689097,
        "instanceId": "2b050bb1",
        "source": "web",
    }
    request = {"number": "5511999999999", "text": "Your invoice #123 is overdue."}
    path = "/message/sendText/acme-billing"
    assert (
        evolution_checker.check("POST", path, request_json=request, status=201, response_json=body)
        == []
    )
    body["status"] = "SENT"
    problems = evolution_checker.check(
        "POST", path, request_json=request, status=201, response_json=body
    )
    assert problems and "response.status" in problems[0]


def test_a_v1_send_text_body_is_rejected(evolution_checker: OpenAPIChecker) -> None:
    v1 = {"number": "5511999999999", "textMessage": {"text": "hi"}}
    problems = evolution_checker.check("POST", "/message/sendText/acme-billing", request_json=v1)
    assert problems == [
        "POST /message/sendText/{instance}: request: 'text' is a required property",
    ]


@pytest.mark.parametrize(
    ("document", "corrections"),
    [(CLOUDFLARE_DOCUMENT, CLOUDFLARE_CORRECTIONS), (EVOLUTION_DOCUMENT, EVOLUTION_CORRECTIONS)],
    ids=["cloudflare", "evolution"],
)
def test_every_correction_still_finds_what_it_corrects(
    document: Any, corrections: tuple[Correction, ...]
) -> None:
    if not document.is_file():
        pytest.skip(f"shared contract not found at {document}")
    original = json.loads(document.read_text(encoding="utf-8"))
    for correction in corrections:
        assert "CONTRACT.md §" in correction.section
        patched = copy.deepcopy(original)
        correction(patched)
        assert patched != original, f"{correction.summary} changed nothing"


def test_a_correction_whose_target_vanished_fails_loudly() -> None:
    with pytest.raises(KeyError, match="correction target missing"):
        CLOUDFLARE_CORRECTIONS[0]({"openapi": "3.0.3", "paths": {}, "components": {}})


def test_a_direct_upload_form_needs_its_manifest_and_no_unknown_part(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    path = f"/accounts/{ZONE}/pages/projects/acme-home/deployments"
    record = {
        "seq": 1,
        "method": "POST",
        "path": path,
        "query": {},
        "request_content_type": "multipart/form-data; boundary=x",
        "request_json": None,
        "request_form": {
            "manifest": '{"/index.html": "ab"}',
            "branch": "main",
            "commit_dirty": "false",
        },
        "request_files": ["_headers"],
        "status": None,
    }
    assert cloudflare_checker.check_record(record) == []
    without_manifest = {**record, "request_form": {"branch": "main"}}
    assert cloudflare_checker.check_record(without_manifest) == [
        f"POST {DEPLOYMENTS_TEMPLATE}: request: 'manifest' is a required property",
    ]
    stray = {**record, "request_files": ["index.html"]}
    problems = cloudflare_checker.check_record(stray)
    assert len(problems) == 1 and "'index.html' was unexpected" in problems[0]


def test_d1_params_must_be_strings_as_documented(cloudflare_checker: OpenAPIChecker) -> None:
    path = f"/accounts/{ZONE}/d1/database/{HOSTNAME_ID}/query"
    assert (
        cloudflare_checker.check("POST", path, request_json={"sql": "SELECT ?", "params": ["1"]})
        == []
    )
    problems = cloudflare_checker.check(
        "POST", path, request_json={"sql": "SELECT ?", "params": [1]}
    )
    assert problems and "request.params[0]: 1 is not of type 'string'" in problems[0]


def test_the_direct_upload_asset_calls_are_known_operations(
    cloudflare_checker: OpenAPIChecker,
) -> None:
    for method, path in (
        ("GET", f"/accounts/{ZONE}/pages/projects/acme-home/upload-token"),
        ("POST", "/pages/assets/check-missing"),
        ("POST", "/pages/assets/upload"),
        ("POST", "/pages/assets/upsert-hashes"),
    ):
        assert cloudflare_checker.find_operation(method, path) is not None, path
    problems = cloudflare_checker.check(
        "POST",
        "/pages/assets/upload",
        request_json=[{"key": "ab", "value": "aGk=", "metadata": {}, "base64": True}],
    )
    assert problems and "contentType" in problems[0]
