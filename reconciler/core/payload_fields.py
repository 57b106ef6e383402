"""payload_fields: typed, located reads of an action's ``after``, for ``core/payloads.py``.

Pure. Each payload is read through one :class:`Fields`; a field present with the wrong type
raises :class:`PayloadError` naming it (``after.version: expected an integer``), while an
absent or null one reads as the default the caller gives.

A payload class declares how each field is read instead of spelling it out: the annotation
gives the plain read (``str`` a text, ``str | None`` an optional text, ``bool`` a flag, ...),
and a field read otherwise names it in its metadata (``field(metadata=REQUIRED)``);
:func:`read_fields` reads them all, in declaration order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from reconciler.core.levers import ENVIRONMENTS
from reconciler.core.plan import JsonValue

__all__ = [
    "OR_SITE",
    "READ",
    "REQUIRED",
    "VERSION",
    "Fields",
    "PayloadError",
    "Read",
    "environment_in",
    "read_fields",
    "reads",
    "text_or",
]


_V = TypeVar("_V")


class PayloadError(ValueError):
    """An ``after`` that is not the input its kind needs; the message names the field."""


class Fields:
    """Typed, located reads of one JSON object (absent or null reads as the default)."""

    def __init__(self, data: Mapping[str, JsonValue], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, problem: str) -> PayloadError:
        return PayloadError(f"{self.where}.{key}: {problem}")

    def _present(self, key: str, kind: type[_V] | tuple[type[_V], ...], expected: str) -> _V | None:
        """The value at ``key``; None when absent or null, and raises when not a ``kind``.

        A bool is never another kind (JSON ``true`` is no integer); :meth:`flag` reads them.
        """
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(key, f"expected {expected}")
        return value

    def text(self, key: str, default: str = "") -> str:
        value = self._present(key, str, "a string")
        return default if value is None else value

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise self.fail(key, "expected a non-empty string")
        return value

    def optional(self, key: str) -> str | None:
        """A string field where absent, null and "" all mean none."""
        return self.text(key) or None

    def integer(self, key: str, default: int = 0) -> int:
        value = self.optional_int(key)
        return default if value is None else value

    def optional_int(self, key: str) -> int | None:
        return self._present(key, int, "an integer")

    def number(self, key: str) -> float | None:
        value = self._present(key, (int, float), "a number")
        return None if value is None else float(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "expected true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.items(key)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(key, "expected a list of strings")
        return tuple(str(item) for item in items)

    def integers(self, key: str) -> tuple[int, ...]:
        items = self.items(key)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise self.fail(key, "expected a list of integers")
        return tuple(int(str(item)) for item in items)

    def items(self, key: str) -> list[JsonValue]:
        value = self._present(key, list, "a list")
        return [] if value is None else value

    def object(self, key: str) -> Fields | None:
        value = self._present(key, dict, "an object")
        return None if value is None else Fields(value, f"{self.where}.{key}")

    def environment(self, allowed: tuple[str, ...] = ENVIRONMENTS) -> str:
        env = self.text("environment", "production")
        if env not in allowed:
            raise self.fail("environment", f"{env!r} is not one of {', '.join(allowed)}")
        return env

    def version(self) -> int:
        version = self.integer("version")
        if version < 1:
            raise self.fail("version", "expected a version number of at least 1")
        return version


# --- declarative reads -----------------------------------------------------------------------

Read = Callable[[Fields, str], object]
"""How one field is read: the :class:`Fields` and the field's key."""

READ = "read"
"""The key of a dataclass field's metadata that names its :data:`Read`."""

_BY_TYPE: Mapping[str, Read] = {
    "str": Fields.text,
    "str | None": Fields.optional,
    "int": Fields.integer,
    "int | None": Fields.optional_int,
    "float | None": Fields.number,
    "bool": Fields.flag,
    "tuple[str, ...]": Fields.texts,
    "tuple[int, ...]": Fields.integers,
}
"""The plain read of a field by its annotation; anything else names its own (:func:`reads`)."""


def reads(read: Read) -> Mapping[str, Read]:
    """The metadata of a field read otherwise than by its type: ``field(metadata=reads(...))``."""
    return {READ: read}


REQUIRED = reads(Fields.required)
"""A string the planner always writes: absent or "" is an error."""


def text_or(default: str) -> Mapping[str, Read]:
    """A string field that reads as ``default`` when absent or null."""
    return reads(lambda f, key: f.text(key, default))


def _or_site(f: Fields, key: str) -> str:
    return f.text(key, f.required("site"))


OR_SITE = reads(_or_site)
"""A name (tenant, project) that defaults to the site's when absent or null."""

VERSION = reads(lambda f, _key: f.version())
"""A content version number of at least 1."""


def environment_in(allowed: tuple[str, ...] = ENVIRONMENTS) -> Mapping[str, Read]:
    """The ``environment`` field, one of ``allowed``."""
    return reads(lambda f, _key: f.environment(allowed))


_T = TypeVar("_T")


def read_fields(cls: Callable[..., _T], fields: Fields) -> _T:
    """A payload dataclass read field by field, in declaration order (module docstring).

    Each field is read by the :data:`Read` its metadata names, else by its annotation.
    """
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cast(Any, cls)):
        read = spec.metadata.get(READ) or _BY_TYPE[str(spec.type)]
        values[spec.name] = read(fields, spec.name)
    return cls(**values)
