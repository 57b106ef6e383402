"""The official ``cloudflare`` SDK's models as judges of what the simulator answers and is sent.

Role: a client nobody here wrote decides whether a body has Cloudflare's shape. :func:`judge`
validates JSON against an SDK type in pydantic's strict mode (JSON input: ISO dates for
``datetime``, integers where ``int`` is typed, literals exactly) and, since the SDK's models
allow unknown fields, also reports every field the type does not declare, at any depth. So a
missing required field, a wrong type or enum value, and an invented field all fail.

``SDK_CORRECTIONS`` lists where the SDK's type is known to be stricter than Cloudflare's own
answers: each fills in, before judging, only what is documented as absent (never loosening the
type); docs/contracts.md justifies each, and ``test_every_sdk_correction_is_still_needed`` fails
when one stops being needed.

Called by: ``tests/contract/test_cloudflare_sdk.py``.
Calls: ``pydantic.TypeAdapter``, the SDK's ``cloudflare.types``.
"""

from __future__ import annotations

import collections.abc
import json
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
import typing_extensions
from pydantic import TypeAdapter, ValidationError


@dataclass(frozen=True)
class Correction:
    """An SDK requirement that Cloudflare's answers are documented not to meet."""

    name: str
    why: str
    applies: Callable[[dict[str, Any]], bool]
    fill: Callable[[dict[str, Any]], None]


def _is_direct_upload_deployment(node: dict[str, Any]) -> bool:
    trigger = node.get("deployment_trigger")
    return (
        "stages" in node
        and isinstance(trigger, dict)
        and trigger.get("type") == "ad_hoc"
        and "source" not in node
    )


def _placeholder_source(node: dict[str, Any]) -> None:
    node["source"] = {
        "type": "github",
        "config": {
            "deployments_enabled": False,
            "owner": "",
            "owner_id": "",
            "path_excludes": [],
            "path_includes": [],
            "pr_comments_enabled": False,
            "preview_branch_excludes": [],
            "preview_branch_includes": [],
            "preview_deployment_setting": "none",
            "production_branch": "",
            "production_deployments_enabled": False,
            "repo_id": "",
            "repo_name": "",
        },
    }


SDK_CORRECTIONS = (
    Correction(
        name="Deployment.source",
        why="The SDK's Deployment requires a Git `source` (github|gitlab); a Direct Upload "
        "(ad_hoc) deployment has none, so an absent one is filled in before judging "
        "(docs/contracts.md, 'The official SDK as judge').",
        applies=_is_direct_upload_deployment,
        fill=_placeholder_source,
    ),
)


def corrected(data: Any) -> Any:
    """A copy of ``data`` with each documented correction applied wherever it applies."""
    copy = json.loads(json.dumps(data))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for fix in SDK_CORRECTIONS:
                if fix.applies(node):
                    fix.fill(node)
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(copy)
    return copy


def judge(model: Any, data: Any, *, corrections: bool = True) -> list[str]:
    """Every way ``data`` fails the SDK type ``model`` (empty when it conforms)."""
    body = corrected(data) if corrections else data
    try:
        value = TypeAdapter(model).validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']} ({e['type']})" for e in exc.errors()]
    return list(_unknown_fields(value, "$"))


def _unknown_fields(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{where}.{key}: not a field of {type(value).__name__}"
        for name in type(value).model_fields:
            yield from _unknown_fields(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown_fields(item, f"{where}.{key}")


# ---- requests: bodies judged by the SDK's request parameter types ----------------------------


def judge_request(params: Any, data: dict[str, Any]) -> list[str]:
    """Every way a request (path ids + body fields) fails the SDK's ``*Params`` TypedDict.

    Strict types, then every key the TypedDict (or a nested one) does not declare: pydantic
    cannot forbid extra keys on a TypedDict it did not define, so that walk is done here.
    """
    problems: list[str] = []
    try:
        _drain(TypeAdapter(params).validate_python(data, strict=True))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg']} ({e['type']})" for e in exc.errors()
        ]
    return problems + list(_undeclared(params, data, "$"))


def _drain(value: Any) -> None:
    """Consume the lazy validators pydantic returns for ``Iterable`` fields."""
    if isinstance(value, dict):
        for item in value.values():
            _drain(item)
    elif isinstance(value, list | tuple) or hasattr(value, "__next__"):
        for item in value:
            _drain(item)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) in (
        typing.Annotated,
        typing_extensions.Required,
        typing_extensions.NotRequired,
    ):
        tp = typing.get_args(tp)[0]
    return tp


def _undeclared(tp: Any, data: Any, where: str) -> Iterator[str]:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if typing_extensions.is_typeddict(tp) and isinstance(data, dict):
        hints = typing.get_type_hints(tp, include_extras=True)
        for key, item in data.items():
            if key not in hints:
                yield f"{where}.{key}: not a field of {tp.__name__}"
            else:
                yield from _undeclared(hints[key], item, f"{where}.{key}")
    elif origin in (typing.Union, types.UnionType):
        options = [list(_undeclared(arg, data, where)) for arg in typing.get_args(tp)]
        if options and all(options):
            yield from min(options, key=len)
    elif origin in (list, tuple, collections.abc.Iterable, collections.abc.Sequence) and isinstance(
        data, list
    ):
        (element,) = typing.get_args(tp)[:1] or (Any,)
        for i, item in enumerate(data):
            yield from _undeclared(element, item, f"{where}[{i}]")
    elif origin is dict and isinstance(data, dict):
        value_type = typing.get_args(tp)[1]
        for key, item in data.items():
            yield from _undeclared(value_type, item, f"{where}.{key}")


def _request_types() -> dict[str, tuple[Any, str]]:
    """``METHOD route-template`` -> (the SDK's params TypedDict, where the body goes)."""
    from cloudflare.types.custom_hostnames import (
        CustomHostnameCreateParams,
        CustomHostnameEditParams,
        FallbackOriginUpdateParams,
    )
    from cloudflare.types.d1 import DatabaseQueryParams
    from cloudflare.types.kv import (
        NamespaceBulkDeleteParams,
        NamespaceBulkGetParams,
        NamespaceBulkUpdateParams,
        NamespaceCreateParams,
    )
    from cloudflare.types.workers import RouteCreateParams, RouteUpdateParams
    from cloudflare.types.workers.script_update_params import Metadata

    hostnames = "/zones/{zone_id}/custom_hostnames"
    kv = "/accounts/{account_id}/storage/kv/namespaces"
    return {
        f"POST {hostnames}": (CustomHostnameCreateParams, "fields"),
        f"PATCH {hostnames}/{{custom_hostname_id}}": (CustomHostnameEditParams, "fields"),
        f"PUT {hostnames}/fallback_origin": (FallbackOriginUpdateParams, "fields"),
        f"POST {kv}": (NamespaceCreateParams, "fields"),
        "POST /accounts/{account_id}/d1/database/{database_id}/query": (
            DatabaseQueryParams,
            "fields",
        ),
        f"PUT {kv}/{{namespace_id}}/bulk": (NamespaceBulkUpdateParams, "body"),
        f"POST {kv}/{{namespace_id}}/bulk/delete": (NamespaceBulkDeleteParams, "body"),
        f"POST {kv}/{{namespace_id}}/bulk/get": (NamespaceBulkGetParams, "fields"),
        "POST /zones/{zone_id}/workers/routes": (RouteCreateParams, "fields"),
        "PUT /zones/{zone_id}/workers/routes/{route_id}": (RouteUpdateParams, "fields"),
        "PUT /accounts/{account_id}/workers/scripts/{script_name}": (
            Metadata,
            "metadata",
        ),
    }


def _declared_names(tp: Any) -> set[str]:
    """The keys a TypedDict (or any variant of a union of them) declares."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return set().union(*(_declared_names(arg) for arg in typing.get_args(tp)))
    return set(typing.get_type_hints(tp)) if typing_extensions.is_typeddict(tp) else set()


WIRE_ALIASES = {"withMetadata": "with_metadata"}
"""Wire names the SDK maps to other Python names (``PropertyInfo(alias=...)``)."""


def judge_calls(calls: list[dict[str, Any]], ids: dict[str, str]) -> tuple[int, list[str]]:
    """Judge every logged request the SDK has a params type for: ``(judged, problems)``.

    ``ids`` holds the path ids the params types require (``account_id``, ``zone_id``).
    """
    known = _request_types()
    judged = 0
    problems: list[str] = []
    for call in calls:
        found = known.get(f"{call['method']} {call['route']}")
        if found is None:
            continue
        params, place = found
        data: dict[str, Any] = dict(ids)
        if place == "body":
            data["body"] = call["request_json"]
        elif place == "metadata":  # the multipart metadata part, judged on its own
            raw = (call.get("request_form") or {}).get("metadata")
            data = json.loads(raw) if isinstance(raw, str) else {"metadata": raw}
        elif isinstance(call["request_json"], dict):
            data.update({WIRE_ALIASES.get(k, k): v for k, v in call["request_json"].items()})
        names = _declared_names(params)
        data = {k: v for k, v in data.items() if k in names or k not in ids}
        judged += 1
        problems.extend(
            f"{call['method']} {call['route']}: {p}" for p in judge_request(params, data)
        )
    return judged, problems
