"""Strict validation of simulator answers with the official ``cloudflare`` SDK's models.

``strict(Model, data)`` parses ``data`` as JSON with pydantic's strict mode (no coercion of
strings to numbers or booleans) and then refuses any field the model does not declare, at every
depth: the SDK's models accept extra fields, so without this check a misspelt field would pass.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic

M = TypeVar("M", bound=pydantic.BaseModel)


def strict(model: type[M], data: Any) -> M:
    """``data`` as a ``model``, strictly, no undeclared field anywhere (else AssertionError)."""
    parsed = model.model_validate_json(json.dumps(data), strict=True)
    extras = list(_extras(parsed, model.__name__))
    assert not extras, f"fields the SDK does not declare: {extras}"
    return parsed


def _extras(value: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found.extend(f"{where}.{key}" for key in (value.model_extra or {}))
        for name in type(value).model_fields:
            found.extend(_extras(getattr(value, name), f"{where}.{name}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_extras(item, f"{where}[{index}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(_extras(item, f"{where}[{key!r}]"))
    return found
