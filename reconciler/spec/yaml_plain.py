"""Build plain data (and its field positions) from YAML parser events, safely.

Used by ``spec/documents.py`` for each document of a spec file. Only the parser's events are
used, never PyYAML's composer or constructors: this one pass resolves scalars as in YAML 1.2's
core schema, refuses tags other than plain data, reports repeated keys, bounds aliases ("billion
laughs") and nesting, and records the position of every key and list item.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from reconciler.spec.source import COLUMN_BITS, Limits, pack

__all__ = ["PARSER", "BuildError", "build_document", "skip_document"]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

# YAML 1.2 core schema (what yaml-language-server uses), not PyYAML's YAML 1.1 defaults: only
# true/false are booleans, only ~/null/empty is null, and dates, "yes", "no", "on", "off" and
# sexagesimal numbers stay strings.
_BOOL_WORDS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
_NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})
_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_NUMBER_START = frozenset("-+.0123456789")

# The C parser (libyaml) is ~10x faster than the pure-Python one; both give the same events.
PARSER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_SCALAR = yaml.ScalarEvent
_ALIAS = yaml.AliasEvent
_MAP_START = yaml.MappingStartEvent
_SEQ_START = yaml.SequenceStartEvent
_MAP_END = yaml.MappingEndEvent
_SEQ_END = yaml.SequenceEndEvent
_DOC_END = yaml.DocumentEndEvent


class BuildError(Exception):
    """A located problem met while building values; aborts the document."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1
        self.column = mark.column + 1
        self.message = message


def _resolve_plain(value: str) -> str:
    if value in _NULL_WORDS:
        return _NULL
    if value in _BOOL_WORDS:
        return _BOOL
    if value[0] in _NUMBER_START:
        if _INT_RE.fullmatch(value):
            return _INT
        if _FLOAT_RE.fullmatch(value):
            return _FLOAT
    return _STR


def _tag_message(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return (
        f"tag {shown!r} is not allowed: specs hold plain YAML only "
        "(strings, numbers, booleans, null, lists and mappings)"
    )


_UNKNOWN_TAG: Any = object()


def _scalar(event: Any) -> Any:
    value: str = event.value
    tag: str | None = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return value
        tag = _resolve_plain(value)
    if tag == _STR:
        return value
    try:
        typed = _typed_scalar(value, tag)
    except ValueError:
        raise BuildError(
            event.start_mark, f"{value!r} is not a valid {tag.rsplit(':', 1)[-1]}"
        ) from None
    if typed is _UNKNOWN_TAG:
        raise BuildError(event.start_mark, _tag_message(tag))
    return typed


def _typed_scalar(value: str, tag: str) -> Any:
    """The value of a non-string scalar (ValueError when it does not read as its tag), or
    ``_UNKNOWN_TAG`` for a tag that is not plain data."""
    if tag == _INT:
        return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
    if tag == _BOOL:
        if value.lower() not in ("true", "false"):
            raise ValueError(value)
        return value.lower() == "true"
    if tag == _NULL:
        if value not in _NULL_WORDS:
            raise ValueError(value)
        return None
    if tag == _FLOAT:
        lowered = value.lower()
        if lowered.endswith(".inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(value)
    return _UNKNOWN_TAG


_NO_KEY: Any = object()

# A frame of the build stack, as a list for speed:
# [container, path, pending key, child path, first-seen lines, skip value?, anchor, start total,
#  start mark]
_CONTAINER, _PATH, _KEY, _CHILD, _SEEN, _SKIP, _ANCHOR, _START, _MARK = range(9)


def skip_document(parser: Any) -> None:
    """Consume the events of the current document up to its end."""
    while type(parser.get_event()) is not _DOC_END:
        pass


def build_document(parser: Any, limits: Limits) -> tuple[Any, Any, dict[str, int], list[Any]]:
    """Build one document from parser events (after its DocumentStartEvent).

    Returns (value, start mark, field positions, non-fatal issues).

    Raises:
        BuildError: the first problem that stops building the document.
    """
    return _Builder(limits).build(parser)


class _Builder:
    """The state of building one document: the open containers, anchors and positions."""

    __slots__ = ("anchors", "issues", "limits", "open_anchors", "positions", "stack", "total")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.positions: dict[str, int] = {}
        self.issues: list[tuple[str, int, str]] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[list[Any]] = []
        self.total = 0

    def build(self, parser: Any) -> tuple[Any, Any, dict[str, int], list[Any]]:
        """Consume the document's events; values are attached to the open container."""
        stack = self.stack
        positions = self.positions
        max_values = self.limits.max_values_per_document
        root: Any = None
        root_mark: Any = None
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is _SCALAR:
                self.total += 1
                value = _scalar(event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                mark = event.start_mark
            elif kind is _MAP_START or kind is _SEQ_START:
                self._open(event, kind is _MAP_START)
                continue
            elif kind is _MAP_END or kind is _SEQ_END:
                value, mark = self._close()
            elif kind is _ALIAS:
                value = self._alias(event)
                mark = event.start_mark
            elif kind is _DOC_END:
                return root, root_mark, positions, self.issues
            else:
                continue
            if self.total > max_values:
                raise BuildError(mark, f"document holds more than {max_values:,} values")
            if not stack:
                root, root_mark = value, mark
                continue
            frame = stack[-1]
            container = frame[_CONTAINER]
            if type(container) is list:
                if kind is not _MAP_END and kind is not _SEQ_END:
                    positions.setdefault(
                        f"{frame[_PATH]}[{len(container)}]",
                        ((mark.line + 1) << COLUMN_BITS) | (mark.column + 1),
                    )
                container.append(value)
            elif frame[_KEY] is not _NO_KEY:
                if not frame[_SKIP]:
                    container[frame[_KEY]] = value
                frame[_KEY] = _NO_KEY
                frame[_SKIP] = False
            else:
                self._key(frame, value, event, mark)

    def _open(self, event: Any, is_mapping: bool) -> None:
        """Push a new list or mapping, recording its position when it is a list item."""
        mark = event.start_mark
        if event.tag not in (None, "!", _MAP if is_mapping else _SEQ):
            raise BuildError(mark, _tag_message(event.tag))
        stack = self.stack
        if len(stack) >= self.limits.max_depth:
            raise BuildError(mark, f"nesting deeper than {self.limits.max_depth} levels")
        path = ""
        if stack:
            parent = stack[-1]
            if type(parent[_CONTAINER]) is list:
                path = f"{parent[_PATH]}[{len(parent[_CONTAINER])}]"
                self.positions.setdefault(path, pack(mark.line + 1, mark.column + 1))
            elif parent[_KEY] is _NO_KEY:
                raise BuildError(mark, "mapping keys must be plain scalars, not lists or maps")
            else:
                path = parent[_CHILD]
        self.total += 1
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        stack.append(
            [{} if is_mapping else [], path, _NO_KEY, "", {}, False, event.anchor, self.total, mark]
        )

    def _close(self) -> tuple[Any, Any]:
        """Pop the innermost container; return it and its start mark."""
        frame = self.stack.pop()
        value = frame[_CONTAINER]
        anchor = frame[_ANCHOR]
        if anchor is not None:
            self.anchors[anchor] = (value, self.total - frame[_START] + 1)
            self.open_anchors.discard(anchor)
        return value, frame[_MARK]

    def _alias(self, event: Any) -> Any:
        """The anchored value an alias stands for, counted again against the budget."""
        anchor = event.anchor
        mark = event.start_mark
        if anchor in self.open_anchors:
            raise BuildError(mark, f"recursive alias *{anchor}: a value may not contain itself")
        if anchor not in self.anchors:
            raise BuildError(mark, f"alias *{anchor} has no anchor &{anchor} before it")
        value, size = self.anchors[anchor]
        self.total += size
        max_values = self.limits.max_values_per_document
        if self.total > max_values:
            raise BuildError(
                mark,
                f"alias *{anchor} makes the document expand to more than {max_values:,} "
                "values (an alias bomb?); aliases are bounded",
            )
        return value

    def _key(self, frame: list[Any], value: Any, event: Any, mark: Any) -> None:
        """Take ``value`` as the next key of the mapping ``frame``; a repeat is an issue."""
        if type(event) is not _SCALAR:
            raise BuildError(mark, "mapping keys must be plain scalars, not aliases")
        if value == "<<" and event.implicit[0]:
            raise BuildError(mark, "merge keys (<<) are not supported; write fields out")
        path = frame[_PATH]
        child = sys.intern(f"{path}.{value}" if path else str(value))
        line = mark.line + 1
        seen = frame[_SEEN]
        if value in seen:
            # Not fatal: keep the first value and go on, so the rest is still checked.
            self.issues.append(
                (
                    child,
                    pack(line, mark.column + 1),
                    f"duplicate key {value!r} (first defined on line {seen[value]}); "
                    "a key may appear once per mapping",
                )
            )
            frame[_SKIP] = True
        else:
            seen[value] = line
            self.positions.setdefault(child, (line << COLUMN_BITS) | (mark.column + 1))
        frame[_KEY] = value
        frame[_CHILD] = child
