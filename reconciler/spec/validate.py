"""Validate one raw document against its kind's pydantic model, with located problems.

Used by ``spec/load.py`` for every document ``spec/documents.py`` parsed. It checks the header
(``apiVersion``, ``kind``), validates the rest against the kinds of ``spec/models.py`` (cross-
field checks deferred to ``document_checks``) and turns pydantic's errors into problems placed
on the field they are about.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import Problem
from reconciler.spec.models import (
    API_VERSION,
    DEFER_CHECKS,
    MODEL_BY_KIND,
    Document,
    Kind,
    document_checks,
)
from reconciler.spec.models_base import check_e164, check_hostname
from reconciler.spec.source import DocumentSource, RawDocument, SourceLocation, unpack

__all__ = ["LoadedDocument", "checked_strings", "declared_name", "validate_document"]

_KIND_VALUES = frozenset(kind.value for kind in Kind)
_KIND_BY_VALUE = {kind.value: kind for kind in Kind}  # a dict lookup, not Kind(value)'s raise
_KNOWN_KINDS = ", ".join(sorted(_KIND_VALUES))
_DEFERRED = {DEFER_CHECKS: True}  # the models' cross-field checks come from document_checks


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A document that passed per-document validation, with its source positions."""

    kind: Kind
    name: str
    model: Document
    source: DocumentSource
    """Where it was written; the parsed data itself is not kept (the model holds it)."""

    @property
    def subject(self) -> str:
        """``Kind/name``, as problems and plans cite it."""
        return f"{self.kind.value}/{self.name}"

    def locate(self, field_path: str = "") -> SourceLocation:
        """Position of a dotted field in this document (see :meth:`DocumentSource.locate`)."""
        return self.source.locate(field_path)

    def problem(self, field_path: str, message: str) -> Problem:
        """A problem located at ``field_path`` of this document."""
        where = self.locate(field_path)
        return Problem(where.path, where.line, where.column, self.subject, field_path, message)


def declared_name(raw: RawDocument) -> tuple[Kind, str] | None:
    """Kind and name a document claims, when both are readable, even if it is invalid."""
    data = raw.data
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    kind = data.get("kind")
    if not isinstance(name, str) or kind not in _KIND_VALUES:
        return None
    return Kind(kind), name


_Path = tuple[str, ...]
"""Keys from a document's root to a value; ``*`` stands for every item of a list."""
_NO_KEYS: _Path = ()


def _paths_of(model: type[BaseModel], check: object) -> list[_Path]:
    """Where a model's fields validated by ``check`` are, through the models nested in it
    (directly or as the items of a tuple)."""
    paths: list[_Path] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        if any(getattr(meta, "func", None) is check for meta in info.metadata):
            paths.append((key,))
            continue
        annotation, star = info.annotation, _NO_KEYS
        if typing.get_origin(annotation) is tuple:
            annotation, star = typing.get_args(annotation)[0], ("*",)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend((key, *star, *path) for path in _paths_of(annotation, check))
    return paths


_CHECKED = {
    kind.value: (_paths_of(model, check_e164), _paths_of(model, check_hostname))
    for kind, model in MODEL_BY_KIND.items()
}
"""Kind -> where its phone numbers and its hostnames are (``spec.whatsapp`` of a Tenant,
``spec.domains.*.hostname`` of a Site)."""


def checked_strings(data: Any) -> tuple[list[str], list[str]]:
    """The strings a raw document holds where its kind wants a phone number, and a hostname.

    Both checks are cached per string (``models_base.e164_problem``, ``hostname_verdict``):
    ``spec/parallel.py`` runs them in its worker processes, so the validation that follows in
    the main process finds them done.
    """
    kind = data.get("kind") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in _CHECKED:
        return [], []
    phones, hostnames = _CHECKED[kind]
    return _strings_at(data, phones), _strings_at(data, hostnames)


def _strings_at(data: Any, paths: list[_Path]) -> list[str]:
    found: list[str] = []
    for path in paths:
        values = [data]
        for key in path:
            if key == "*":
                values = [item for value in values if isinstance(value, list) for item in value]
            else:
                values = [v[key] for v in values if isinstance(v, dict) and key in v]
        found.extend(value for value in values if isinstance(value, str))
    return found


def validate_document(raw: RawDocument) -> tuple[LoadedDocument | None, list[Problem]]:
    """Validate one raw document against its kind; return it (or None) and its problems."""
    data = raw.data
    if not isinstance(data, dict):
        where = raw.locate()
        message = (
            "a document must be a mapping with apiVersion, kind, metadata and spec, "
            f"got {_describe(data)}"
        )
        return None, [Problem(where.path, where.line, where.column, "", "", message)]
    located = _Locator(raw, _kind_of(data))
    problems = []
    if raw.issues:
        subject = located.subject
        problems = [
            Problem(raw.path, *unpack(packed), subject, field_path, message)
            for field_path, packed, message in raw.issues
        ]
    problems.extend(_header_problems(data, located))
    if located.kind is None or len(problems) > len(raw.issues):
        return None, problems
    try:
        model = MODEL_BY_KIND[located.kind].model_validate(data, context=_DEFERRED)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(located.problem(_loc_path(error["loc"]), _error_message(error)))
        return None, problems
    loaded = LoadedDocument(located.kind, model.metadata.name, model, raw.source)
    problems.extend(loaded.problem(path, message) for path, message in document_checks(model))
    return loaded, problems


def _kind_of(data: dict[Any, Any]) -> Kind | None:
    kind_value = data.get("kind")
    return _KIND_BY_VALUE.get(kind_value) if isinstance(kind_value, str) else None


class _Locator:
    """Places problems in a document that has not passed validation (yet)."""

    __slots__ = ("kind", "raw")

    def __init__(self, raw: RawDocument, kind: Kind | None) -> None:
        self.raw = raw
        self.kind = kind

    @property
    def subject(self) -> str:
        """``Kind/name`` as far as the document says (worked out for problems only)."""
        if self.kind is None:
            return ""
        metadata = self.raw.data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return f"{self.kind.value}/{name}" if isinstance(name, str) else self.kind.value

    def problem(self, field_path: str, message: str) -> Problem:
        where = self.raw.locate(field_path)
        return Problem(where.path, where.line, where.column, self.subject, field_path, message)


def _header_problems(data: dict[Any, Any], located: _Locator) -> list[Problem]:
    """Problems of ``apiVersion`` and ``kind``, which decide how the rest is read."""
    problems: list[Problem] = []
    if "apiVersion" not in data:
        problems.append(located.problem("", f"missing apiVersion (use apiVersion: {API_VERSION})"))
    elif data["apiVersion"] != API_VERSION:
        problems.append(
            located.problem(
                "apiVersion",
                f"unsupported version {_describe(data['apiVersion'])}; use {API_VERSION}",
            )
        )
    kind_value = data.get("kind")
    if kind_value is None:
        problems.append(located.problem("", f"missing kind (one of {_KNOWN_KINDS})"))
    elif located.kind is None:
        problems.append(
            located.problem(
                "kind", f"unknown kind {_describe(kind_value)}; expected one of {_KNOWN_KINDS}"
            )
        )
    return problems


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else part
    return out


def _describe(value: Any) -> str:
    """A short description of a value for a problem: ``a mapping``, ``null``, ``'x'``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _error_message(error: ErrorDetails) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}" if loc else "unknown field"
    if kind == "missing":
        return f"missing required field {loc[-1]!r}" if loc else "missing required field"
    message = error["msg"]
    if kind in ("value_error", "assertion_error") and message.startswith(
        ("Value error, ", "Assertion failed, ")
    ):
        return message.split(", ", 1)[1]
    if loc and loc[-1] == "[key]":
        return f"key {_describe(error['input'])}: {message[0].lower()}{message[1:]}"
    return f"{message[0].lower()}{message[1:]}, got {_describe(error['input'])}"
