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
    """The value of a scalar of ``tag`` (ValueError when it does not read as its tag), or
    ``_UNKNOWN_TAG`` for a tag that is not plain data."""
    if tag == _STR:
        return value
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


# --- the fast path: block-style plain data, line by line ------------------------------------
#
# Spec files are almost always block mappings and sequences of plain or simply quoted scalars,
# one per line. ``build_simple`` reads exactly that subset with one regular expression per line
# and gives the same values and positions the event builder would; on anything else (flow
# style, anchors, tags, block scalars, comments after values, several documents, repeated keys,
# non-ASCII text, tabs, ...) it returns None and the caller parses the text with the full
# parser, which also words every problem.

_KEY_LINE = re.compile(r"( *)(- )?([A-Za-z_][A-Za-z0-9_-]*):(?: +(.*))?")
_ITEM_LINE = re.compile(r"( *)- (.*)")
_UNSAFE_TEXT = re.compile(r"[^\n\x20-\x7e]")
_PLAIN_START_REFUSED = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_NOT_STRING_WORDS = _BOOL_WORDS | _NULL_WORDS
# A plain scalar that starts with one of these is no number and no indicator: when it holds
# no ": " or " #", ends in neither a space nor a colon and is no true/false/null word, it is a
# string as it stands (what _simple_scalar would say, without its checks).
_STRING_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_/")


class _NotSimpleError(Exception):
    """The text is outside the fast path's subset; parse it with the full parser."""


def build_simple(
    text: str, limits: Limits, *, record: bool = True
) -> tuple[Any, int, int, dict[str, int]] | None:
    """Values and positions of a one-document, block-style plain YAML text, or None.

    Returns (value, 1-based line and column of the document, field positions) exactly as
    :func:`build_document` would, or None when the text is outside the subset (then nothing
    about it is decided here: the full parser reads it). With ``record=False`` the positions
    are left empty, which saves a third of the work; the same text gives them on a second call.
    """
    if _UNSAFE_TEXT.search(text) is not None:
        return None
    try:
        return _build_simple(text, limits, record)
    except _NotSimpleError:
        return None


def _simple_scalar(text: str) -> Any:
    """The value of a plain or simply quoted scalar; _NotSimpleError for anything else."""
    first = text[0]
    if first == "'" or first == '"':
        inner = text[1:-1]
        if len(text) < 2 or text[-1] != first or first in inner or "\\" in inner:
            raise _NotSimpleError
        return inner
    if (
        (first in _PLAIN_START_REFUSED and not (first == "-" and text[1:2] not in ("", " ")))
        or text[-1] == " "
        or text[-1] == ":"
        or ": " in text
        or " #" in text
    ):
        raise _NotSimpleError
    try:
        return _typed_scalar(text, _resolve_plain(text))  # a plain scalar's tag is known
    except ValueError:
        raise _NotSimpleError from None


def _build_simple(text: str, limits: Limits, record: bool) -> tuple[Any, int, int, dict[str, int]]:
    """The fast path's one pass (see :func:`build_simple`); _NotSimpleError outside it."""
    positions: dict[str, int] = {}
    frames: list[list[Any]] = []  # [indent, container, path, is a list]
    pending: tuple[dict[str, Any], str, str, int] | None = None  # a ``key:`` with no value yet
    root: dict[str, Any] | None = None
    root_line = count = number = 0
    key_line, intern = _KEY_LINE.fullmatch, sys.intern
    for line in text.split("\n"):
        number += 1
        match = key_line(line)
        if match is not None:
            spaces, dash_text, key, value = match.groups()
            indent, dash = len(spaces), dash_text is not None
        else:
            other = _other_line(line)
            if other is None:
                continue  # blank or a comment
            indent, key, value, dash = *other, True
        if root is None:
            root, root_line, count = _root(frames, indent, key, dash), number, 1
        if pending is not None:
            _open_pending(frames, pending, indent, dash, limits)
            pending = None
        top = frames[-1]
        if indent != top[0] or dash or top[3]:
            top = _frame_for(frames, indent, dash)
        if top[3]:  # the next item of a list
            items: list[Any] = top[1]
            path = f"{top[2]}[{len(items)}]" if record else ""
            if record:
                positions.setdefault(path, (number << COLUMN_BITS) | (indent + 3))
            count += 1
            if key is None:
                items.append(_simple_scalar(value))
                continue
            mapping: dict[str, Any] = {}
            items.append(mapping)
            indent += 2
            frames.append([indent, mapping, path, False])
        else:
            mapping, path = top[1], top[2]
        if key is None or key in mapping or key in _NOT_STRING_WORDS:
            raise _NotSimpleError  # a repeated key (an issue), or a key that is not a string
        if record:
            path = intern(f"{path}.{key}" if path else key)
            positions.setdefault(path, (number << COLUMN_BITS) | (indent + 1))
        count += 2
        if not value:
            mapping[key] = None
            pending = (mapping, key, path, indent)
        elif _is_plain_string(value):
            mapping[key] = value
        else:
            mapping[key] = _simple_scalar(value)
    if root is None or count > limits.max_values_per_document or len(frames) > limits.max_depth:
        raise _NotSimpleError
    return root, root_line, 1, positions


def _is_plain_string(value: str) -> bool:
    """Whether a value is a plain scalar that is a string as it stands (the common case)."""
    return (
        value[0] in _STRING_START
        and value[-1] != " "
        and value[-1] != ":"
        and ": " not in value
        and " #" not in value
        and value not in _NOT_STRING_WORDS
    )


def _other_line(line: str) -> tuple[int, None, str] | None:
    """A line that is not ``key: value``: None when blank or a comment, else a list item's
    (indent, no key, value); _NotSimpleError for anything else."""
    stripped = line.lstrip(" ")
    if not stripped or stripped[0] == "#":
        return None
    item = _ITEM_LINE.fullmatch(line)
    if item is None:
        raise _NotSimpleError
    return len(line) - len(stripped), None, item[2]


def _root(frames: list[list[Any]], indent: int, key: str | None, dash: bool) -> dict[str, Any]:
    """The document's mapping, opened by its first line (``key:`` at column 1)."""
    if key is None or indent or dash:
        raise _NotSimpleError
    root: dict[str, Any] = {}
    frames.append([0, root, "", False])
    return root


def _frame_for(frames: list[list[Any]], indent: int, dash: bool) -> list[Any]:
    """Close the containers a line at ``indent`` ends; return the one it belongs to."""
    while frames and (
        indent < frames[-1][0] or (frames[-1][3] and indent == frames[-1][0] and not dash)
    ):
        frames.pop()
    if not frames or indent != frames[-1][0] or dash != frames[-1][3]:
        raise _NotSimpleError
    return frames[-1]


def _open_pending(
    frames: list[list[Any]],
    pending: tuple[dict[str, Any], str, str, int],
    indent: int,
    dash: bool,
    limits: Limits,
) -> None:
    """Open the list or mapping a pending ``key:`` holds when this line starts one (a list
    item at or right of the key, a key right of it); else the key keeps its None."""
    mapping, key, path, column = pending
    if dash and indent >= column:
        container: Any = []
    elif not dash and indent > column:
        container = {}
    else:
        return
    mapping[key] = container
    frames.append([indent, container, path, type(container) is list])
    if len(frames) > limits.max_depth:
        raise _NotSimpleError
