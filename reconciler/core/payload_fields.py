"""payload_fields: typed, located reads of an action's ``after``, for ``core/payloads.py``.

Pure. Each payload class's ``parse`` reads its fields through one :class:`Fields`; a field
present with the wrong type raises :class:`PayloadError` naming it (``after.version: expected
an integer``), while an absent or null one reads as the default the caller gives.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.levers import ENVIRONMENTS
from reconciler.core.plan import JsonValue

__all__ = ["Fields", "PayloadError"]


class PayloadError(ValueError):
    """An ``after`` that is not the input its kind needs; the message names the field."""


class Fields:
    """Typed, located reads of one JSON object (absent or null reads as the default)."""

    def __init__(self, data: Mapping[str, JsonValue], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, problem: str) -> PayloadError:
        return PayloadError(f"{self.where}.{key}: {problem}")

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, "expected a string")
        return value

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
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "expected an integer")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "expected a number")
        return float(value)

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
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "expected a list")
        return value

    def object(self, key: str) -> Fields | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "expected an object")
        return Fields(value, f"{self.where}.{key}")

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
