"""Validate recorded HTTP exchanges against an OpenAPI 3.0 document (test support).

Role: the reusable checker behind the contract tests. Given one exchange (method, concrete path,
query, request body or form, status, response body), it finds the operation whose path template
matches (literal segments beat parameters), then validates the path parameters, the query
parameters, the request body and the response body with ``jsonschema``. It returns a list of
violation strings (``where: message``); an empty list means the exchange conforms.

Called by: ``tests/contract/test_*.py`` (through the fixtures in ``tests/contract/conftest.py``),
with a document already patched by ``support/contract/corrections.py``.
Calls: ``jsonschema`` (Draft 2020-12 validators) and ``referencing`` (a registry holding the
whole document, so internal ``#/components/...`` references resolve).

OpenAPI 3.0 is not JSON Schema, so each document is translated once, per direction:

- ``nullable: true`` becomes a ``"null"`` alternative (type list, enum member, or ``anyOf``);
- keys beside a ``$ref`` are dropped (3.0 ignores them);
- ``example``, ``x-*`` and other annotations are left alone (JSON Schema ignores them);
- ``readOnly`` properties are not required in requests, ``writeOnly`` ones not in responses;
- ``format: date-time`` is checked (RFC 3339), other formats are annotations.

Validators are built lazily and cached per (operation, part, status), so checking thousands of
exchanges against the 150 KB Cloudflare document stays fast.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ABSENT: Any = object()
"""Sentinel for "no body was sent / received" (``None`` is a valid JSON body: ``null``)."""

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """Accept RFC 3339 timestamps (``2024-01-01T00:00:00Z``); other types pass."""
    if not isinstance(value, str):
        return True
    return _RFC3339.match(value) is not None


def contracts_root() -> Path:
    """The shared contracts directory: ``<repo root>/../shared/contracts``."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "contracts"


def load_document(path: Path, *patches: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read an OpenAPI JSON document and apply correction patches to it, in order.

    Args:
        path: the JSON file.
        *patches: functions that mutate the loaded document in place.

    Returns:
        The (patched) document.
    """
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for patch in patches:
        patch(document)
    return document


# --------------------------------------------------------------------------------------------
# OpenAPI 3.0 schema -> JSON Schema 2020-12
# --------------------------------------------------------------------------------------------

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_SINGLES = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
)


def to_json_schema(node: Any, direction: str) -> Any:
    """Translate one OpenAPI 3.0 schema object into JSON Schema 2020-12.

    Args:
        node: the schema (dict or bool).
        direction: ``"request"`` (readOnly properties are not required) or ``"response"``
            (writeOnly properties are not required).

    Returns:
        A new schema; the input is not modified.
    """
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub, direction) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [to_json_schema(sub, direction) for sub in value]
        elif key in _SCHEMA_SINGLES:
            out[key] = to_json_schema(value, direction)
        elif key == "nullable":
            continue
        else:
            out[key] = copy.deepcopy(value)
    properties = out.get("properties")
    if isinstance(properties, dict) and isinstance(out.get("required"), list):
        hidden = "readOnly" if direction == "request" else "writeOnly"
        out["required"] = [
            name
            for name in out["required"]
            if not (isinstance(properties.get(name), dict) and properties[name].get(hidden))
        ]
    if node.get("nullable") is True:
        out = _allow_null(out)
    return out


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a schema accept JSON ``null`` the way OpenAPI 3.0 ``nullable`` means it."""
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "null" not in kinds:
            schema["type"] = [*kinds, "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [{"type": "null"}, schema]}


def _translate_document(document: Mapping[str, Any], direction: str) -> dict[str, Any]:
    """Translate every schema of a document (components and inline ones) for one direction."""
    out: dict[str, Any] = copy.deepcopy(dict(document))
    schemas = out.get("components", {}).get("schemas", {})
    for name, schema in list(schemas.items()):
        schemas[name] = to_json_schema(schema, direction)
    for item in out.get("paths", {}).values():
        for parameter in item.get("parameters", []):
            _translate_parameter(parameter, direction)
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                _translate_parameter(parameter, direction)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if isinstance(media, dict) and "schema" in media:
                    media["schema"] = to_json_schema(media["schema"], direction)
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    if isinstance(media, dict) and "schema" in media:
                        media["schema"] = to_json_schema(media["schema"], direction)
    return out


def _translate_parameter(parameter: dict[str, Any], direction: str) -> None:
    if "schema" in parameter:
        parameter["schema"] = to_json_schema(parameter["schema"], direction)


def _pointer(*parts: str) -> str:
    """A JSON pointer fragment (``/paths/~1zones~1{id}/get``) from raw keys."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


# --------------------------------------------------------------------------------------------
# Operations and path matching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the document, with where its pieces live."""

    method: str
    template: str
    segments: tuple[str, ...]
    operation_id: str
    parameters: tuple[tuple[str, str, bool, str], ...]
    """(location, name, required, JSON pointer to its schema) per declared parameter."""
    request_media: Mapping[str, str | None]
    """Media type -> JSON pointer of its schema (``None``: a media type without a schema)."""
    request_required: bool
    responses: Mapping[str, Mapping[str, str | None]]
    """Status key (``200``, ``4XX``, ``default``) -> media type -> schema pointer."""

    @property
    def label(self) -> str:
        """``GET /zones/{zone_id}/custom_hostnames``."""
        return f"{self.method.upper()} {self.template}"

    def specificity(self) -> tuple[bool, ...]:
        """Literal segments rank above parameters, position by position from the left."""
        return tuple(not _is_parameter(segment) for segment in self.segments)

    def bind(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Path parameter values when the concrete segments match this template, else None."""
        if len(segments) != len(self.segments):
            return None
        bound: dict[str, str] = {}
        for template, concrete in zip(self.segments, segments, strict=True):
            if _is_parameter(template):
                if not concrete:
                    return None
                bound[template[1:-1]] = unquote(concrete)
            elif template != concrete:
                return None
        return bound


def _is_parameter(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _split(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()


def _collect_operations(document: Mapping[str, Any]) -> list[Operation]:
    operations: list[Operation] = []
    for template, item in document.get("paths", {}).items():
        shared = list(item.get("parameters", []))
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            parameters: dict[tuple[str, str], tuple[str, str, bool, str]] = {}
            for origin, plist in (("item", shared), ("op", op.get("parameters", []))):
                for index, parameter in enumerate(plist):
                    if "$ref" in parameter or "schema" not in parameter:
                        continue
                    base = (
                        _pointer("paths", template, "parameters", str(index))
                        if origin == "item"
                        else _pointer("paths", template, method, "parameters", str(index))
                    )
                    key = (parameter["in"], parameter["name"])
                    required = bool(parameter.get("required", parameter["in"] == "path"))
                    parameters[key] = (key[0], key[1], required, base + "/schema")
            body = op.get("requestBody", {})
            request_media = {
                media_type: (
                    _pointer("paths", template, method, "requestBody", "content", media_type)
                    + "/schema"
                    if isinstance(media, dict) and "schema" in media
                    else None
                )
                for media_type, media in body.get("content", {}).items()
            }
            responses: dict[str, dict[str, str | None]] = {}
            for status, response in op.get("responses", {}).items():
                responses[str(status)] = {
                    media_type: (
                        _pointer("paths", template, method, "responses", str(status))
                        + _pointer("content", media_type, "schema")
                        if isinstance(media, dict) and "schema" in media
                        else None
                    )
                    for media_type, media in response.get("content", {}).items()
                }
            operations.append(
                Operation(
                    method=method,
                    template=template,
                    segments=_split(template),
                    operation_id=str(op.get("operationId", "")),
                    parameters=tuple(parameters.values()),
                    request_media=request_media,
                    request_required=bool(body.get("required", False)),
                    responses=responses,
                ),
            )
    return operations


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------


@dataclass
class OpenAPIChecker:
    """Checks exchanges against one OpenAPI 3.0 document.

    Build it with :meth:`from_document` (or :meth:`from_file`); then call :meth:`check` per
    exchange, or :meth:`check_record` with a simulator call-log entry.
    """

    name: str
    operations: list[Operation]
    base_paths: tuple[str, ...]
    _registries: dict[str, Registry[Any]] = field(repr=False)
    _uris: dict[str, str] = field(repr=False)
    _validators: dict[tuple[str, str], Draft202012Validator] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def from_document(cls, name: str, document: Mapping[str, Any]) -> OpenAPIChecker:
        """Build a checker from an already loaded (and corrected) document.

        Args:
            name: a short label used in the resource URIs (``cloudflare``).
            document: the OpenAPI 3.0 document as a dict.

        Returns:
            The checker; validators are built lazily on first use.
        """
        registries: dict[str, Registry[Any]] = {}
        uris: dict[str, str] = {}
        for direction in ("request", "response"):
            uri = f"urn:contract:{name}:{direction}"
            resource = Resource.from_contents(
                _translate_document(document, direction), default_specification=DRAFT202012
            )
            registries[direction] = Registry().with_resource(uri, resource)
            uris[direction] = uri
        base_paths = tuple(
            sorted(
                {
                    urlsplit(server.get("url", "")).path.rstrip("/")
                    for server in document.get("servers", [])
                    if "{" not in urlsplit(server.get("url", "")).path
                }
                - {""},
                key=len,
                reverse=True,
            ),
        )
        return cls(
            name=name,
            operations=_collect_operations(document),
            base_paths=base_paths,
            _registries=registries,
            _uris=uris,
        )

    @classmethod
    def from_file(
        cls, name: str, path: Path, *patches: Callable[[dict[str, Any]], None]
    ) -> OpenAPIChecker:
        """Load ``path``, apply ``patches`` and build a checker (see :meth:`from_document`)."""
        return cls.from_document(name, load_document(path, *patches))

    # -- lookup --------------------------------------------------------------------------------

    def find_operation(self, method: str, path: str) -> Operation | None:
        """The most specific operation matching a concrete path, or None.

        Args:
            method: HTTP method, any case.
            path: the concrete path (``/zones/abc/custom_hostnames/def``); a server base path
                from the document (``/client/v4``) and a query string are stripped first.
        """
        segments = _split(self._relative(path))
        candidates = [
            op
            for op in self.operations
            if op.method == method.lower() and op.bind(segments) is not None
        ]
        if not candidates:
            return None
        return max(candidates, key=Operation.specificity)

    def _relative(self, path: str) -> str:
        path = urlsplit(path).path or path
        for base in self.base_paths:
            if path == base or path.startswith(base + "/"):
                return path[len(base) :] or "/"
        return path

    def _validator(self, direction: str, pointer: str) -> Draft202012Validator:
        key = (direction, pointer)
        validator = self._validators.get(key)
        if validator is None:
            validator = Draft202012Validator(
                {"$ref": f"{self._uris[direction]}#{pointer}"},
                registry=self._registries[direction],
                format_checker=_FORMATS,
            )
            self._validators[key] = validator
        return validator

    def _resolve(self, direction: str, pointer: str) -> Mapping[str, Any]:
        """The schema at ``pointer``, following ``$ref`` chains (to read its type and enum)."""
        resolver = self._registries[direction].resolver()
        resolved = resolver.lookup(f"{self._uris[direction]}#{pointer}")
        for _ in range(16):
            contents = resolved.contents
            if not isinstance(contents, Mapping) or not isinstance(contents.get("$ref"), str):
                break
            resolved = resolved.resolver.lookup(contents["$ref"])
        return resolved.contents if isinstance(resolved.contents, Mapping) else {}

    # -- checks --------------------------------------------------------------------------------

    def check(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        request_json: Any = ABSENT,
        request_form: Mapping[str, Any] | None = None,
        request_content_type: str | None = None,
        status: int | None = None,
        response_json: Any = ABSENT,
        check_request: bool = True,
    ) -> list[str]:
        """Validate one exchange; returns violations (empty when it conforms).

        Args:
            method: HTTP method.
            path: concrete request path (no host).
            query: query parameters as sent (values: str, or a list for repeated keys).
            request_json: the JSON request body; ``ABSENT`` when none was sent.
            request_form: multipart/urlencoded fields when the body was a form.
            request_content_type: the request's Content-Type, when known.
            status: the response status; None to check the request only.
            response_json: the JSON response body; ``ABSENT`` when there was none.
            check_request: False to check only the response (for a request that was
                deliberately malformed to provoke a documented error answer).
        """
        operation = self.find_operation(method, path)
        if operation is None:
            return [f"no operation in the contract for {method.upper()} {self._relative(path)}"]
        where = f"{operation.label}"
        problems: list[str] = []
        if check_request:
            bound = operation.bind(_split(self._relative(path))) or {}
            problems += self._check_parameters(operation, where, bound, dict(query or {}))
            problems += self._check_request(
                operation, where, request_json, request_form, request_content_type
            )
        if status is not None:
            problems += self._check_response(operation, where, status, response_json)
        return list(dict.fromkeys(problems))

    def check_record(self, record: Mapping[str, Any], *, check_request: bool = True) -> list[str]:
        """Validate one simulator call-log entry (the ``GET /__sandbox/calls`` shape).

        The entry has ``method``, ``path``, ``query``, ``request_content_type``,
        ``request_json`` or ``request_form`` (plus ``request_files``, the names of file parts,
        checked as form fields), ``status`` and ``response_json``; a ``None``
        body there means "no body" (none of these APIs sends a bare JSON ``null``).
        """
        form = record.get("request_form")
        files = record.get("request_files") or []
        if form is not None and files:
            form = {**form, **{name: f"<file part {name}>" for name in files}}
        request_json = record.get("request_json")
        response_json = record.get("response_json")
        return self.check(
            str(record["method"]),
            str(record["path"]),
            query=record.get("query") or {},
            request_json=ABSENT if form is not None or request_json is None else request_json,
            request_form=form,
            request_content_type=record.get("request_content_type"),
            status=record.get("status"),
            response_json=ABSENT if response_json is None else response_json,
            check_request=check_request,
        )

    def check_records(
        self, records: Iterable[Mapping[str, Any]], *, check_request: bool = True
    ) -> list[str]:
        """Validate many call-log entries; each violation is prefixed with the entry's seq."""
        problems: list[str] = []
        for record in records:
            for problem in self.check_record(record, check_request=check_request):
                problems.append(f"#{record.get('seq', '?')} {problem}")
        return problems

    def _check_parameters(
        self,
        operation: Operation,
        where: str,
        bound: Mapping[str, str],
        query: dict[str, Any],
    ) -> list[str]:
        problems: list[str] = []
        declared_query = set()
        for location, name, required, pointer in operation.parameters:
            if location == "path":
                values: list[Any] = [bound[name]] if name in bound else []
            elif location == "query":
                declared_query.add(name)
                raw = query.get(name)
                values = [] if raw is None else list(raw) if isinstance(raw, list) else [raw]
            else:
                continue
            if not values:
                if required:
                    problems.append(f"{where}: {location} parameter {name!r} is required")
                continue
            validator = self._validator("request", pointer)
            resolved = self._resolve("request", pointer)
            for value in values:
                coerced = _coerce(value, resolved)
                for error in _errors(validator, coerced):
                    problems.append(
                        f"{where}: {location} parameter {name!r}={value!r}: {error.message}"
                    )
        for name in sorted(set(query) - declared_query):
            problems.append(f"{where}: query parameter {name!r} is not in the contract")
        return problems

    def _check_request(
        self,
        operation: Operation,
        where: str,
        request_json: Any,
        request_form: Mapping[str, Any] | None,
        content_type: str | None,
    ) -> list[str]:
        sent_form = request_form is not None
        sent_json = request_json is not ABSENT and request_json is not None
        if not sent_form and not sent_json:
            if operation.request_required:
                return [f"{where}: request body is required but none was sent"]
            return []
        if not operation.request_media:
            return [f"{where}: a request body was sent but the operation declares none"]
        media_type = _media(content_type) or (
            "multipart/form-data" if sent_form else "application/json"
        )
        if media_type not in operation.request_media:
            declared = ", ".join(sorted(operation.request_media))
            return [f"{where}: request content type {media_type} not in contract ({declared})"]
        pointer = operation.request_media[media_type]
        if pointer is None:
            return []
        body = dict(request_form or {}) if sent_form else request_json
        return [
            f"{where}: request{_json_path(error)}: {_message(error)}"
            for error in _errors(self._validator("request", pointer), body)
        ]

    def _check_response(
        self, operation: Operation, where: str, status: int, response_json: Any
    ) -> list[str]:
        key = _status_key(operation.responses, status)
        if key is None:
            declared = ", ".join(sorted(operation.responses))
            return [f"{where}: response status {status} not in contract ({declared})"]
        media = operation.responses[key]
        label = f"{where} -> {status}"
        if response_json is ABSENT:
            if media:
                return [f"{label}: a JSON body is documented but none was returned"]
            return []
        pointer = media.get("application/json") if media else None
        if pointer is None:
            if media and "application/json" not in media:
                return [f"{label}: JSON returned but contract documents {', '.join(media)}"]
            return []
        return [
            f"{label}: response{_json_path(error)}: {_message(error)}"
            for error in _errors(self._validator("response", pointer), response_json)
        ]


def _status_key(responses: Mapping[str, Any], status: int) -> str | None:
    for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
        if key in responses:
            return key
    return None


def _media(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _errors(validator: Draft202012Validator, instance: Any) -> Iterator[ValidationError]:
    return iter(sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)))


def _json_path(error: ValidationError) -> str:
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    return path


def _message(error: ValidationError) -> str:
    """The error message; for anyOf/oneOf failures, the most telling cause is appended.

    The cause is the deepest leaf error among the alternatives; on a tie, an error other than a
    plain type mismatch (that alternative was the wrong shape altogether) wins.
    """
    if not error.context:
        return error.message
    leaves = list(_leaves(error.context))
    cause = max(
        leaves,
        key=lambda leaf: (len(leaf.absolute_path), leaf.validator != "type"),
    )
    return f"{error.message} (closest: {_json_path(cause) or '.'}: {cause.message})"


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _coerce(value: Any, resolved: Mapping[str, Any]) -> Any:
    """Turn a query/path string into the JSON type its schema asks for, when it parses."""
    if not isinstance(value, str):
        return value
    kinds = resolved.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    enum = resolved.get("enum") or []
    wants_number = (
        "integer" in kinds
        or "number" in kinds
        or any(isinstance(v, int | float) and not isinstance(v, bool) for v in enum)
    )
    if "string" in kinds:
        return value
    if wants_number:
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value
