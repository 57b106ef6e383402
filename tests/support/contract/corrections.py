"""Documented corrections to the official OpenAPI documents, applied when a contract is loaded.

Role: the shared OpenAPI files are verbatim upstream copies and stay untouched. Where a
CONTRACT.md beside them documents that the official document is wrong or incomplete, the fix
lives here as a small patch, each one citing the section that justifies it. The checker is never
loosened instead; several patches make the document *stricter* (anchored patterns, required keys).

Called by: ``tests/contract/conftest.py`` (``CLOUDFLARE_CORRECTIONS`` / ``EVOLUTION_CORRECTIONS``
passed to ``OpenAPIChecker.from_file``) and ``tests/contract/test_checker.py`` (every patch must
still find its target, so a stale correction fails loudly). ``docs/contracts.md`` lists them.
Calls: nothing but dict manipulation.

Every patch raises ``KeyError`` when the place it corrects is missing: a newer contract file that
already fixed the problem (or moved it) must make the correction list be reviewed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.contract.openapi_checker import contracts_root

Document = dict[str, Any]

CLOUDFLARE_DOCUMENT = contracts_root() / "cloudflare" / "openapi-subset.json"
EVOLUTION_DOCUMENT = contracts_root() / "evolution" / "openapi-v2.json"

CF = "../shared/contracts/cloudflare/CONTRACT.md"
EVO = "../shared/contracts/evolution/CONTRACT.md"


@dataclass(frozen=True)
class Correction:
    """One documented patch: where it is justified, what it changes, and the patch itself."""

    section: str
    summary: str
    apply: Callable[[Document], None]

    def __call__(self, document: Document) -> None:
        """Apply the patch to ``document`` in place."""
        self.apply(document)


def _at(document: Document, *keys: str) -> Any:
    """The node at ``keys``; ``KeyError`` naming the full path when any step is missing."""
    node: Any = document
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"correction target missing: {'/'.join(keys)}")
        node = node[key]
    return node


def _schemas(document: Document) -> dict[str, Any]:
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    return schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operations(document: Document) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for template, item in _at(document, "paths").items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch") and isinstance(op, dict):
                found.append((template, method, op))
    return found


# ============================================================================================
# Cloudflare: ../shared/contracts/cloudflare/openapi-subset.json
# ============================================================================================

_HOSTNAMES = "/zones/{zone_id}/custom_hostnames"
_HOSTNAME = "/zones/{zone_id}/custom_hostnames/{custom_hostname_id}"
_PURGE = "/zones/{zone_id}/purge_cache"
_PROJECT = "/accounts/{account_id}/pages/projects/{project_name}"
_DEPLOYMENTS = _PROJECT + "/deployments"
_DEPLOYMENT = _DEPLOYMENTS + "/{deployment_id}"
_ENVELOPE_FAMILIES = ("tls-certificates-and-hostnames", "pages", "d1", "cache-purge", "mq")


def _cf_identifier_length(document: Document) -> None:
    # CONTRACT.md §8 "Identifier length" (and §4.3 `id`): custom hostname ids and Pages
    # deployment ids are 36-character uuids, but the identifier schemas say maxLength 32.
    # "A fake server or validator should not enforce that length on these ids."
    schemas = _at(document, "components", "schemas")
    for name in ("tls-certificates-and-hostnames_identifier", "pages_identifier"):
        _at(schemas, name, "maxLength")
        schemas[name]["maxLength"] = 36


def _cf_latest_stage_ref(document: Document) -> None:
    # CONTRACT.md §8 "Lost $refs" and §3.2 `latest_stage`: the property is `{readOnly: true}`
    # because its $ref was lost upstream; [SDK] types it as Stage. Restore the Stage schema.
    props = _at(document, "components", "schemas", "pages_deployments", "properties")
    _at(props, "latest_stage")
    props["latest_stage"] = _ref("pages_stage")


def _cf_anchor_patterns(document: Document) -> None:
    # CONTRACT.md §8 "`pattern` instead of `enum`": environment, deployment_trigger.type and
    # the stage name/status are unanchored regexes (`preview|production` matches "xpreviewx").
    # §3.2 and §3.3 give the value sets; the trigger type takes the Δ [SDK] enum too.
    schemas = _at(document, "components", "schemas")
    deployment = _at(schemas, "pages_deployments", "properties")
    _at(deployment, "environment", "pattern")
    deployment["environment"]["pattern"] = "^(preview|production)$"
    trigger = _at(deployment, "deployment_trigger", "properties", "type")
    trigger["pattern"] = "^(push|ad_hoc|github:push|deploy_hook)$"
    stage = _at(schemas, "pages_stage", "properties")
    _at(stage, "name", "pattern")
    stage["name"]["pattern"] = "^(queued|initialize|clone_repo|build|deploy)$"
    _at(stage, "status", "pattern")
    stage["status"]["pattern"] = "^(success|idle|active|failure|canceled)$"


def _cf_project_deployments_nullable(document: Document) -> None:
    # CONTRACT.md §3.5: [SDK] allows `canonical_deployment` ("Most recent production
    # deployment") and `latest_deployment` to be null (a project with no deployment yet).
    props = _at(document, "components", "schemas", "pages_projects", "properties")
    for name in ("canonical_deployment", "latest_deployment"):
        _at(props, name)
        props[name] = {"anyOf": [{"type": "null"}, _ref("pages_deployments")]}


def _cf_failure_envelope_for_4xx(document: Document) -> None:
    # CONTRACT.md §8 "Odd 4XX responses": each 4XX schema is allOf(success, failure) and cannot
    # be satisfied literally. "Treat a 4XX body as the failure envelope." Keep the failure part.
    for template, method, op in _operations(document):
        schema = _at(op, "responses", "4XX", "content", "application/json", "schema")
        if "allOf" in schema:
            failure = [part for part in schema["allOf"] if "failure" in part.get("$ref", "")]
            if len(failure) != 1:
                raise KeyError(f"no failure envelope in 4XX of {method} {template}")
            op["responses"]["4XX"]["content"]["application/json"]["schema"] = failure[0]


def _cf_failure_envelope_for_5xx(document: Document) -> None:
    # CONTRACT.md §1.3: 5xx answers exist (1500 "Internal Server Error" at HTTP 500 for custom
    # hostnames; 8000000 for Pages) and use the same failure envelope (§1.1); [S] declares none.
    for _template, _method, op in _operations(document):
        responses = _at(op, "responses")
        responses["5XX"] = copy.deepcopy(_at(responses, "4XX"))
        responses["5XX"]["description"] = "server failure (CONTRACT.md §1.3)"


def _cf_failure_errors_min_items(document: Document) -> None:
    # CONTRACT.md §1.1: a failure carries at least one error. [S] writes `minLength: 1` on the
    # `errors` array, a keyword that only applies to strings; the intent is `minItems: 1`.
    schemas = _at(document, "components", "schemas")
    for family in _ENVELOPE_FAMILIES:
        errors = _at(schemas, f"{family}_api-response-common-failure", "properties", "errors")
        errors.pop("minLength", None)
        errors["minItems"] = 1


def _cf_rate_limit_error_code(document: Document) -> None:
    # CONTRACT.md §1.3 and §2.3: the 429 body carries error code 971 ("Please wait and consider
    # throttling your request speed"), below the `minimum: 1000` of the messages schema.
    # Allow exactly 971 besides the documented >= 1000 range.
    schemas = _at(document, "components", "schemas")
    for family in _ENVELOPE_FAMILIES:
        code = _at(schemas, f"{family}_messages", "items", "properties", "code")
        code.pop("minimum")
        code["anyOf"] = [{"minimum": 1000}, {"enum": [971]}]


def _cf_no_body_on_delete_retry_rollback(document: Document) -> None:
    # CONTRACT.md §8 "Pages deletion and rollback" (and §3.1 "no body"): these operations
    # declare a required, empty application/json body; real clients ([SDK]) send none.
    # The custom hostname DELETE (§4.1, same upstream generator) has the same quirk.
    for template, method in (
        (_DEPLOYMENT, "delete"),
        (_DEPLOYMENT + "/retry", "post"),
        (_DEPLOYMENT + "/rollback", "post"),
        (_HOSTNAME, "delete"),
    ):
        _at(document, "paths", template, method, "requestBody")["required"] = False


def _cf_hostname_any_2xx(document: Document) -> None:
    # CONTRACT.md §4.1 "HTTP success codes": [D] says POST -> 201 Created, PATCH -> 202
    # Accepted, GET/DELETE -> 200; [S] declares only 200. "The reconciler must accept any 2xx."
    for template in (_HOSTNAMES, _HOSTNAME):
        for _method, op in _at(document, "paths", template).items():
            responses = _at(op, "responses")
            responses["2XX"] = copy.deepcopy(_at(responses, "200"))


def _cf_hostname_delete_body(document: Document) -> None:
    # CONTRACT.md §4.1 "DELETE body shape" and §9.5: [S]/[SDK] model a bare `{id}`; whether the
    # live API wraps it in the envelope is UNCONFIRMED, so accept both, but require the id.
    media = _at(
        document, "paths", _HOSTNAME, "delete", "responses", "200", "content", "application/json"
    )
    ident = _ref("tls-certificates-and-hostnames_identifier")
    media["schema"] = {
        "anyOf": [
            {"type": "object", "required": ["id"], "properties": {"id": ident}},
            {
                "allOf": [
                    _ref("tls-certificates-and-hostnames_api-response-common"),
                    {
                        "type": "object",
                        "required": ["result"],
                        "properties": {
                            "result": {
                                "type": "object",
                                "required": ["id"],
                                "properties": {"id": ident},
                            },
                        },
                    },
                ],
            },
        ],
    }


def _cf_hostname_create_origin(document: Document) -> None:
    # CONTRACT.md §4.1 Create, Δ [SDK]: `custom_origin_server` and `custom_origin_sni` are
    # also accepted on create (DESIGN §5 "create hostname" sets custom_origin_server). `ssl`
    # stays required: [S] requires it and sending it satisfies both readings.
    props = _at(
        document,
        "paths",
        _HOSTNAMES,
        "post",
        "requestBody",
        "content",
        "application/json",
        "schema",
        "properties",
    )
    props["custom_origin_server"] = _ref("tls-certificates-and-hostnames_custom_origin_server")
    props["custom_origin_sni"] = _ref("tls-certificates-and-hostnames_custom_origin_sni")


def _cf_custom_metadata_strings(document: Document) -> None:
    # CONTRACT.md §4.3: `custom_metadata` is an "object of string values"; [S] only shows an
    # example key. Every value must be a string (our ownership marker lives here).
    schema = _at(
        document, "components", "schemas", "tls-certificates-and-hostnames_custom_metadata"
    )
    schema["additionalProperties"] = {"type": "string"}


def _cf_list_query_parameters(document: Document) -> None:
    # CONTRACT.md §1.2 and §3.1 (Δ [SDK] / [D] "Get deployments"): the deployments list also
    # takes `page` and `per_page` (limits UNCONFIRMED, so only >= 1). §3.1 Δ: DELETE of a
    # deployment takes `force=true`. §4.2 Δ [SDK]: the custom hostname list takes the
    # hostname.exact/contain/startsWith, hostname_status, ssl_status, certificate_authority,
    # custom_origin_server and wildcard filters.
    deployments = _at(document, "paths", _DEPLOYMENTS, "get", "parameters")
    for name in ("page", "per_page"):
        deployments.append(
            {"in": "query", "name": name, "schema": {"type": "integer", "minimum": 1}}
        )
    _at(document, "paths", _DEPLOYMENT, "delete", "parameters").append(
        {"in": "query", "name": "force", "schema": {"type": "boolean"}},
    )
    schemas = _at(document, "components", "schemas")
    status_enum = _at(schemas, "tls-certificates-and-hostnames_components-schemas-status", "enum")
    ssl_variants = _at(schemas, "tls-certificates-and-hostnames_ssl", "oneOf")
    ssl_status_enum = _at(ssl_variants[0], "properties", "status", "enum")
    hostnames = _at(document, "paths", _HOSTNAMES, "get", "parameters")
    extra: list[tuple[str, dict[str, Any]]] = [
        ("hostname.exact", {"type": "string", "maxLength": 255}),
        ("hostname.contain", {"type": "string", "maxLength": 255}),
        ("hostname.startsWith", {"type": "string", "maxLength": 255}),
        ("hostname_status", {"type": "string", "enum": list(status_enum)}),
        ("ssl_status", {"type": "string", "enum": list(ssl_status_enum)}),
        (
            "certificate_authority",
            {"type": "string", "enum": ["google", "lets_encrypt", "ssl_com"]},
        ),
        ("custom_origin_server", {"type": "string"}),
        ("wildcard", {"type": "boolean"}),
    ]
    for name, schema in extra:
        hostnames.append({"in": "query", "name": name, "schema": schema})


def _cf_direct_upload_form(document: Document) -> None:
    # CONTRACT.md §3.4: [S] documents only the `branch` part; Δ [SDK] DeploymentCreateParams
    # documents the full multipart form. `manifest` (a JSON string) is "Required for direct
    # upload deployments", the only kind the reconciler creates; `commit_dirty` is the string
    # "true" or "false". File parts are listed without a type (their encoding is the client's).
    # The [SDK] list is the full form, so any other part is undocumented.
    schema = _at(
        document,
        "paths",
        _DEPLOYMENTS,
        "post",
        "requestBody",
        "content",
        "multipart/form-data",
        "schema",
    )
    props = _at(schema, "properties")
    for name in (
        "manifest",
        "commit_hash",
        "commit_message",
        "pages_build_output_dir",
        "wrangler_config_hash",
    ):
        props[name] = {"type": "string"}
    props["commit_dirty"] = {"type": "string", "enum": ["true", "false"]}
    for name in (
        "_headers",
        "_redirects",
        "_routes.json",
        "_worker.js",
        "_worker.bundle",
        "functions-filepath-routing-config.json",
    ):
        props[name] = {}
    schema["required"] = ["manifest"]
    schema["additionalProperties"] = False
    schema["not"] = {"required": ["_worker.js", "_worker.bundle"]}


def _cf_d1_result_any_shape(document: Document) -> None:
    # CONTRACT.md §6: D1 Query returns "array of QueryResult, one per statement" and List an
    # array, but the shared D1 envelope [S] types `result` as an object, so every D1 success
    # (allOf envelope + array result) is unsatisfiable. Each operation types `result` itself.
    result = _at(
        document, "components", "schemas", "d1_api-response-common", "properties", "result"
    )
    result.pop("type")


def _cf_purge_body_alternatives(document: Document) -> None:
    # CONTRACT.md §5: the purge body is one of purge_everything / files / tags / hosts /
    # prefixes. In [S] the "Purge by tags" alternative lost its `tags` property and no
    # alternative requires its key, so `anyOf` accepts any object (even `{"hosts": "x"}`).
    # Restore `tags` and make each alternative require its own key.
    schemas = _at(document, "components", "schemas")
    _at(schemas, "cache-purge_FlexPurgeByTags", "properties")["tags"] = {
        "type": "array",
        "items": {"type": "string"},
    }
    for name, key in (
        ("cache-purge_FlexPurgeByTags", "tags"),
        ("cache-purge_FlexPurgeByHostnames", "hosts"),
        ("cache-purge_FlexPurgeByPrefixes", "prefixes"),
        ("cache-purge_Everything", "purge_everything"),
        ("cache-purge_SingleFile", "files"),
        ("cache-purge_SingleFileWithUrlAndHeaders", "files"),
    ):
        _at(schemas, name, "properties", key)
        schemas[name]["required"] = [key]
    files = _at(schemas, "cache-purge_SingleFileWithUrlAndHeaders", "properties", "files", "items")
    files["required"] = ["url"]


def _cf_direct_upload_asset_operations(document: Document) -> None:
    # CONTRACT.md §3.4 "How wrangler runs the full flow" [W] + [SDK] `projects.getUploadToken`,
    # `src/resources/pages/assets.ts`: the upload-token and /pages/assets/* calls a Direct
    # Upload needs "exist in [SDK] but not in [S] or the subset". Their documented shapes:
    # upload-token -> {jwt}; check-missing {hashes} -> [missing hashes]; upload
    # [{key, value (base64), metadata: {contentType}, base64: true}]; upsert-hashes {hashes}.
    # Result shapes of upload and upsert-hashes are not documented: any envelope result.
    paths = _at(document, "paths")
    failure = {"application/json": {"schema": _ref("pages_api-response-common-failure")}}
    errors = {
        "4XX": {"description": "failure (§1.1)", "content": failure},
        "5XX": {"description": "failure (§1.3)", "content": copy.deepcopy(failure)},
    }
    base = {
        "type": "object",
        "required": ["success", "errors", "messages"],
        "properties": {
            "success": {"enum": [True], "type": "boolean"},
            "errors": _ref("pages_messages"),
            "messages": _ref("pages_messages"),
        },
    }

    def envelope(result: dict[str, Any] | None) -> dict[str, Any]:
        schema = copy.deepcopy(base)
        if result is not None:
            schema["required"].append("result")
            schema["properties"]["result"] = result
        return {
            "description": "success (§3.4)",
            "content": {"application/json": {"schema": schema}},
        }

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    hashes = {
        "type": "object",
        "required": ["hashes"],
        "properties": {"hashes": {"type": "array", "items": {"type": "string"}}},
    }
    project_params = [
        {"in": "path", "name": "account_id", "required": True, "schema": _ref("pages_identifier")},
        {
            "in": "path",
            "name": "project_name",
            "required": True,
            "schema": _ref("pages_project_name"),
        },
    ]
    paths[_PROJECT + "/upload-token"] = {
        "get": {
            "operationId": "contract-pages-project-upload-token",
            "parameters": project_params,
            "responses": {
                "200": envelope(
                    {
                        "type": "object",
                        "required": ["jwt"],
                        "properties": {"jwt": {"type": "string", "minLength": 1}},
                    }
                ),
                **copy.deepcopy(errors),
            },
        }
    }
    paths["/pages/assets/check-missing"] = {
        "post": {
            "operationId": "contract-pages-assets-check-missing",
            "requestBody": body(hashes),
            "responses": {
                "200": envelope({"type": "array", "items": {"type": "string"}}),
                **copy.deepcopy(errors),
            },
        }
    }
    paths["/pages/assets/upload"] = {
        "post": {
            "operationId": "contract-pages-assets-upload",
            "requestBody": body(
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["key", "value", "metadata", "base64"],
                        "properties": {
                            "key": {"type": "string", "minLength": 1},
                            "value": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "required": ["contentType"],
                                "properties": {"contentType": {"type": "string"}},
                            },
                            "base64": {"enum": [True]},
                        },
                    },
                }
            ),
            "responses": {"200": envelope(None), **copy.deepcopy(errors)},
        }
    }
    paths["/pages/assets/upsert-hashes"] = {
        "post": {
            "operationId": "contract-pages-assets-upsert-hashes",
            "requestBody": body(hashes),
            "responses": {"200": envelope(None), **copy.deepcopy(errors)},
        }
    }


CLOUDFLARE_CORRECTIONS: tuple[Correction, ...] = (
    Correction(
        f"{CF} §8, §4.3", "uuid ids (36 chars) on 32-char identifier schemas", _cf_identifier_length
    ),
    Correction(f"{CF} §8, §3.2", "restore latest_stage -> Stage", _cf_latest_stage_ref),
    Correction(f"{CF} §8, §3.2, §3.3", "anchor pattern-as-enum fields", _cf_anchor_patterns),
    Correction(
        f"{CF} §3.5", "canonical/latest deployment may be null", _cf_project_deployments_nullable
    ),
    Correction(f"{CF} §8", "4XX body is the failure envelope", _cf_failure_envelope_for_4xx),
    Correction(
        f"{CF} §1.3, §1.1", "5XX body is the failure envelope", _cf_failure_envelope_for_5xx
    ),
    Correction(
        f"{CF} §1.1", "failure errors: minItems 1 (not minLength)", _cf_failure_errors_min_items
    ),
    Correction(f"{CF} §1.3, §2.3", "429 error code 971", _cf_rate_limit_error_code),
    Correction(
        f"{CF} §8, §3.1",
        "no request body on delete/retry/rollback",
        _cf_no_body_on_delete_retry_rollback,
    ),
    Correction(f"{CF} §4.1", "custom hostnames answer any 2xx", _cf_hostname_any_2xx),
    Correction(
        f"{CF} §4.1, §9.5", "hostname DELETE: bare or enveloped {id}", _cf_hostname_delete_body
    ),
    Correction(f"{CF} §4.1", "create accepts custom_origin_server/sni", _cf_hostname_create_origin),
    Correction(f"{CF} §4.3", "custom_metadata values are strings", _cf_custom_metadata_strings),
    Correction(
        f"{CF} §1.2, §3.1, §4.2", "Δ [SDK] list/delete query parameters", _cf_list_query_parameters
    ),
    Correction(f"{CF} §3.4", "direct upload multipart form", _cf_direct_upload_form),
    Correction(f"{CF} §6", "D1 envelope result is typed per operation", _cf_d1_result_any_shape),
    Correction(
        f"{CF} §5", "purge body alternatives require their key", _cf_purge_body_alternatives
    ),
    Correction(
        f"{CF} §3.4",
        "Direct Upload asset operations ([SDK]/[W])",
        _cf_direct_upload_asset_operations,
    ),
)


# ============================================================================================
# Evolution API: ../shared/contracts/evolution/openapi-v2.json
# ============================================================================================

_SEND_TEXT = "/message/sendText/{instance}"
_STATE = "/instance/connectionState/{instance}"
_NUMBERS = "/chat/whatsappNumbers/{instance}"

_EVO_SCHEMAS: dict[str, Any] = {
    # §1.1: every exception rendered by the global handler.
    "contract_ErrorEnvelope": {
        "type": "object",
        "required": ["status", "error", "response"],
        "properties": {
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "response": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"anyOf": [{"type": "string"}, {"type": "array"}]}},
            },
        },
    },
    # §6: one OnWhatsApp entry (`name` and `lid` only when known).
    "contract_OnWhatsApp": {
        "type": "object",
        "required": ["jid", "exists", "number"],
        "properties": {
            "jid": {"type": "string"},
            "exists": {"type": "boolean"},
            "number": {"type": "string"},
            "name": {"type": "string"},
            "lid": {"type": "string"},
        },
    },
}


def _evo_envelope(status: int, error: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "allOf": [
            _ref("contract_ErrorEnvelope"),
            {
                "properties": {
                    "status": {"enum": [status]},
                    "error": {"enum": [error]},
                    "response": {"properties": {"message": message}},
                },
            },
        ],
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_EVO_401 = _json(
    _evo_envelope(401, "Unauthorized", {"enum": ["Unauthorized"]}),
    "missing or wrong apikey (CONTRACT.md §5.5)",
)
_EVO_404 = _json(
    _evo_envelope(404, "Not Found", {"type": "array", "items": {"type": "string"}}),
    "unknown instance (CONTRACT.md §5.4)",
)
_EVO_500 = _json(
    _evo_envelope(
        500,
        "Internal Server Error",
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    ),
    "server-side failure, e.g. Connection Closed (CONTRACT.md §5.6)",
)


def _evo_components(document: Document) -> None:
    # CONTRACT.md §1.1 and §6: the error envelope and the OnWhatsApp entry, shared below.
    _schemas(document).update(copy.deepcopy(_EVO_SCHEMAS))


def _evo_send_text_request(document: Document) -> None:
    # CONTRACT.md §2 (request table): `mentioned` is a list of numeric strings (the docs enum
    # "{{remoteJID}}" is a placeholder), ≥1 item, unique; `quoted.key.id` is required.
    schema = _at(
        document,
        "paths",
        _SEND_TEXT,
        "post",
        "requestBody",
        "content",
        "application/json",
        "schema",
    )
    props = _at(schema, "properties")
    props["mentioned"] = {
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": {"type": "string"},
    }
    _at(props, "quoted", "properties", "key")["required"] = ["id"]
    _at(props, "quoted", "properties", "key", "properties", "id")["minLength"] = 1
    _at(document, "paths", _SEND_TEXT, "post", "requestBody")["required"] = True


def _evo_send_text_responses(document: Document) -> None:
    # CONTRACT.md §2.1: the v2 201 body is the prepareMessage() object; the docs still show the
    # v1 example (string messageTimestamp, extendedTextMessage). Rely on key.{remoteJid,
    # fromMe,id}, `status` (renderStatus enum) and `messageTimestamp` (int or numeric string).
    # §5.1-§5.6: the 400/401/404/500 bodies, none of which the docs list for sendText.
    responses = _at(document, "paths", _SEND_TEXT, "post", "responses")
    created = _at(responses, "201", "content", "application/json")
    created["schema"] = {
        "type": "object",
        "required": ["key", "status", "messageTimestamp"],
        "properties": {
            "key": {
                "type": "object",
                "required": ["remoteJid", "fromMe", "id"],
                "properties": {
                    "remoteJid": {"type": "string", "minLength": 1},
                    "fromMe": {"type": "boolean"},
                    "id": {"type": "string", "minLength": 1},
                },
            },
            "pushName": {"type": "string"},
            "status": {
                "enum": ["ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED"]
            },
            "message": {"type": "object"},
            "contextInfo": {"type": ["object", "null"]},
            "messageType": {"type": "string"},
            "messageTimestamp": {
                "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}],
            },
            "instanceId": {"type": "string"},
            "source": {"type": "string"},
        },
    }
    responses["400"] = _json(
        _evo_envelope(
            400,
            "Bad Request",
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "anyOf": [
                        # §5.1 validation: one nested array of strings
                        {"type": "array", "items": {"type": "string"}},
                        # §5.3 number not on WhatsApp: the OnWhatsApp object
                        _ref("contract_OnWhatsApp"),
                        # §5.3 other send failures: a stringified library error
                        {"type": "string"},
                    ],
                },
            },
        ),
        "validation, number not on WhatsApp, or send failure (CONTRACT.md §5.1-§5.3)",
    )
    responses["401"] = copy.deepcopy(_EVO_401)
    responses["404"] = copy.deepcopy(_EVO_404)
    responses["500"] = copy.deepcopy(_EVO_500)


def _evo_connection_state(document: Document) -> None:
    # CONTRACT.md §3: `instance.instanceName` always; `state` ∈ open|connecting|close, absent
    # when the instance is not loaded. 404 (§5.4) uses the envelope; add 401 (§5.5), 500 (§5.6).
    responses = _at(document, "paths", _STATE, "get", "responses")
    ok = _at(responses, "200", "content", "application/json")
    ok["schema"] = {
        "type": "object",
        "required": ["instance"],
        "properties": {
            "instance": {
                "type": "object",
                "required": ["instanceName"],
                "properties": {
                    "instanceName": {"type": "string"},
                    "state": {"enum": ["open", "connecting", "close"]},
                },
            },
        },
    }
    _at(responses, "404")
    responses["404"] = copy.deepcopy(_EVO_404)
    responses["401"] = copy.deepcopy(_EVO_401)
    responses["500"] = copy.deepcopy(_EVO_500)


def _evo_whatsapp_numbers(document: Document) -> None:
    # CONTRACT.md §6: request `numbers` is an array of strings, minItems 1, unique; the 200
    # entries always carry jid/exists/number (`name`, `lid` optional). Errors: this route
    # answers validation failures with the raw thrown object (no `response` key, HTTP 400);
    # guard errors 404/401 keep the envelope (§5.4, §5.5); server failures 500 (§5.6).
    op = _at(document, "paths", _NUMBERS, "post")
    numbers = _at(
        op, "requestBody", "content", "application/json", "schema", "properties", "numbers"
    )
    numbers["minItems"] = 1
    numbers["uniqueItems"] = True
    responses = _at(op, "responses")
    ok = _at(responses, "200", "content", "application/json")
    ok["schema"] = {"type": "array", "items": _ref("contract_OnWhatsApp")}
    responses["400"] = _json(
        {
            "type": "object",
            "properties": {
                "status": {"enum": [400]},
                "error": {"type": "string"},
                "message": {"type": "array"},
            },
            "not": {"required": ["response"]},
        },
        "raw thrown object, no envelope (CONTRACT.md §6)",
    )
    responses["401"] = copy.deepcopy(_EVO_401)
    responses["404"] = copy.deepcopy(_EVO_404)
    responses["500"] = copy.deepcopy(_EVO_500)


EVOLUTION_CORRECTIONS: tuple[Correction, ...] = (
    Correction(f"{EVO} §1.1, §6", "error envelope and OnWhatsApp schemas", _evo_components),
    Correction(f"{EVO} §2", "sendText v2 request details", _evo_send_text_request),
    Correction(
        f"{EVO} §2.1, §5.1-§5.6", "sendText 201 v2 body and error bodies", _evo_send_text_responses
    ),
    Correction(f"{EVO} §3, §5.4-§5.6", "connectionState body and errors", _evo_connection_state),
    Correction(
        f"{EVO} §6, §5.4-§5.6", "whatsappNumbers entries and raw 400", _evo_whatsapp_numbers
    ),
)
