"""Load spec documents from a directory or a Git commit into a validated, typed ``Specs``.

Called by ``commands/validate.py``, the demo, and later by plan/apply/run. It reads files
(``load_directory``) or the blobs of a commit's tree (``load_git``, GitPython, no checkout),
parses YAML safely (``parse_documents``), validates each document against the pydantic kinds of
``spec/models.py`` and hands the whole fleet to ``spec/fleet.py`` for the cross-document checks.

Rules this module enforces:

1. Every problem in every file is collected and raised at once as one sorted ``SpecError``;
   each problem carries the file, 1-based line and column, the document and the field path.
2. YAML is parsed as plain data only: strings, numbers, booleans, null, lists and mappings.
   Any other tag (``!!python/...``, ``!!binary``, custom tags) is an error. Scalars resolve as
   in YAML 1.2's core schema: ``yes``/``no``/``on``/``off`` and dates stay strings.
3. A key repeated in one mapping is an error (PyYAML would silently keep the last one).
4. Aliases are expanded while building values, within a budget of values per document, so an
   alias bomb ("billion laughs") fails fast with a located error; recursive aliases are errors.
   Merge keys (``<<``) are not supported.
5. Files larger than ``Limits.max_file_bytes`` (1 MiB by default), files with NUL bytes
   (binary), files that are not UTF-8, and files without any document are errors. In a
   multi-document file, empty documents (a stray ``---``) are skipped, as ``kubectl`` does.
6. Only ``*.yaml`` and ``*.yml`` files are read; other files and dot-directories are ignored.
7. Nothing outside the specs root is read. From a directory, a symbolic link (to a file or a
   directory, whatever its name) and anything that is not a regular file is refused with a
   located problem that names the link, never its target or the target's content; files are
   opened with ``O_NOFOLLOW``, so a link swapped in after the listing is refused too. A root
   that is itself a symbolic link is refused. In a Git commit, symbolic links are never read.
8. A fleet is bounded as a whole, not only per file: more than ``Limits.max_files`` spec files
   or ``Limits.max_total_bytes`` bytes in total is refused (one problem; the rest is not read).

Paths in problems and locations are relative to the parent of the specs root, so they start
with the root's own name (``specs/sites/acme.yaml``) whether loaded from a directory or from
``specs/`` in a Git commit.

Speed: the C parser (``yaml.CSafeLoader``, libyaml) only turns text into events; values are
built here straight from those events, never through PyYAML's node graph or constructors. That
one pass gives duplicate-key detection, the alias budget and the per-field line map, and keeps a
10,000-site fleet well within its time budget. Without the C extension, the pure-Python
``SafeLoader`` produces the same events, only slower.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import LoadError, Problem, SpecError
from reconciler.spec.fleet import check_fleet
from reconciler.spec.models import (
    API_VERSION,
    DEFER_CHECKS,
    MODEL_BY_KIND,
    BillingPolicy,
    Document,
    Kind,
    Site,
    Tenant,
    Worker,
    document_checks,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SPEC_SUFFIXES",
    "DocumentSource",
    "Limits",
    "LoadedDocument",
    "ParsedFile",
    "RawDocument",
    "SourceFile",
    "SourceLocation",
    "Specs",
    "declared_name",
    "load_directory",
    "load_files",
    "load_git",
    "parse_documents",
    "validate_document",
]

SPEC_SUFFIXES = (".yaml", ".yml")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep hostile or accidental input from eating memory or CPU."""

    max_file_bytes: int = 1 << 20
    """Largest spec file accepted, in bytes (1 MiB)."""
    max_values_per_document: int = 100_000
    """Most values (scalars, lists, mappings) one document may expand to, aliases included."""
    max_depth: int = 64
    """Deepest nesting of lists and mappings accepted."""
    max_files: int = 100_000
    """Most spec files one fleet may have (rule 8); a 10,000-site fleet has about 15,000."""
    max_total_bytes: int = 512 << 20
    """Most bytes all spec files of one fleet may hold together (512 MiB, rule 8)."""

    def __post_init__(self) -> None:
        if not 0 < self.max_file_bytes < 1 << 32:
            raise ValueError("max_file_bytes must be between 1 byte and 4 GiB")
        if self.max_files < 1 or self.max_total_bytes < 1:
            raise ValueError("max_files and max_total_bytes must be positive")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A position in a spec file; ``line`` and ``column`` are 1-based."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


# Positions are packed into one int per field (line << 32 | column) to keep the line map of a
# 10,000-site fleet small; a column never reaches 2**32 since files are bounded in size.
_COLUMN_BITS = 32
_COLUMN_MASK = (1 << _COLUMN_BITS) - 1


def _pack(line: int, column: int) -> int:
    return (line << _COLUMN_BITS) | column


def _unpack(packed: int) -> tuple[int, int]:
    return packed >> _COLUMN_BITS, packed & _COLUMN_MASK


@dataclass(frozen=True, slots=True)
class DocumentSource:
    """Where a document and each of its fields were written."""

    path: str
    line: int
    column: int
    positions: Mapping[str, int] = field(repr=False)
    """Dotted field path (``spec.domains[1].hostname``) -> packed position of its key/item."""

    def locate(self, field_path: str = "") -> SourceLocation:
        """Position of ``field_path``, else of its nearest known parent, else of the document."""
        path = field_path
        while path:
            packed = self.positions.get(path)
            if packed is not None:
                line, column = _unpack(packed)
                return SourceLocation(self.path, line, column)
            path = _parent_path(path)
        return SourceLocation(self.path, self.line, self.column)


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One parsed YAML document: plain data plus where it was written."""

    source: DocumentSource
    data: Any
    issues: tuple[tuple[str, int, str], ...] = ()
    """Problems that did not stop building the document: (field path, packed position, message)."""

    @property
    def path(self) -> str:
        """The display path of the file holding the document."""
        return self.source.path

    def locate(self, field_path: str = "") -> SourceLocation:
        """Position of a dotted field (see :meth:`DocumentSource.locate`)."""
        return self.source.locate(field_path)


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A document that passed per-document validation, with its source positions."""

    kind: Kind
    name: str
    model: Document
    raw: RawDocument

    @property
    def subject(self) -> str:
        """``Kind/name``, as problems and plans cite it."""
        return f"{self.kind.value}/{self.name}"

    def locate(self, field_path: str = "") -> SourceLocation:
        """Position of a dotted field in this document (see :meth:`RawDocument.locate`)."""
        return self.raw.locate(field_path)

    def problem(self, field_path: str, message: str) -> Problem:
        """A problem located at ``field_path`` of this document."""
        where = self.locate(field_path)
        return Problem(where.path, where.line, where.column, self.subject, field_path, message)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The documents of one file and the problems met while parsing it."""

    path: str
    documents: list[RawDocument]
    problems: list[Problem]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A spec file to load: its display path and how to read its bytes.

    ``read(limit)`` returns the content, or at least ``limit + 1`` bytes of it when the file is
    larger than ``limit``, so an oversized file is never read whole.
    """

    path: str
    read: Callable[[int], bytes]
    refused: str | None = None
    """Why this path is not read at all (a symbolic link, not a regular file: rule 7)."""


@dataclass(frozen=True)
class Specs:
    """The validated desired state of the whole fleet.

    ``revision`` is the Git commit sha when loaded from Git, else ``None``.
    """

    tenants: Mapping[str, Tenant]
    sites: Mapping[str, Site]
    policies: Mapping[str, BillingPolicy]
    revision: str | None
    workers: Mapping[str, Worker] = field(default_factory=dict)  # the platform's own Workers
    _documents: Mapping[tuple[Kind, str], DocumentSource] = field(
        default_factory=dict, repr=False, compare=False
    )

    def location(self, kind: Kind, name: str, field: str = "") -> SourceLocation:
        """Best-known position of a dotted field inside a document.

        ``field`` looks like ``spec.production.version`` or ``spec.domains[1].hostname``; an
        unknown field falls back to its nearest parent, then to the document start.

        Raises:
            KeyError: when there is no document of that kind and name.
        """
        return self._documents[(Kind(kind), name)].locate(field)

    @property
    def domain_count(self) -> int:
        """How many custom hostnames the sites declare in total."""
        return sum(len(site.spec.domains) for site in self.sites.values())

    def summary(self) -> str:
        """``3 tenants, 2 policies, 5 sites, 8 domains``."""
        return ", ".join(
            _plural(count, noun)
            for count, noun in (
                (len(self.tenants), "tenant"),
                (len(self.policies), "policy"),
                (len(self.sites), "site"),
                (self.domain_count, "domain"),
            )
        ) + (f", {_plural(len(self.workers), 'worker')}" if self.workers else "")


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


# --- YAML: plain data only ---------------------------------------------------------------

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


# Only the parser (events) is used: values are built by _build_document, never by PyYAML's
# composer or constructors. The C parser is ~10x faster than the pure-Python one.
_PARSER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _BuildError(Exception):
    """A located problem met while building values; aborts the document."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1
        self.column = mark.column + 1
        self.message = message


_NO_KEY: Any = object()

# A frame of the build stack, as a list for speed:
# [container, path, pending key, child path, first-seen lines, skip value?, anchor, start total,
#  start mark]
_CONTAINER, _PATH, _KEY, _CHILD, _SEEN, _SKIP, _ANCHOR, _START, _MARK = range(9)


def _build_document(parser: Any, limits: Limits) -> tuple[Any, Any, dict[str, int], list[Any]]:
    """Build one document from parser events (after its DocumentStartEvent).

    Returns (value, start mark, field positions, non-fatal issues). Values are built straight
    from events, never through PyYAML's node graph: the C parser does the scanning, and this
    loop does duplicate keys, the alias budget and the line map at the same time.
    """
    positions: dict[str, int] = {}
    issues: list[tuple[str, int, str]] = []
    anchors: dict[str, tuple[Any, int]] = {}
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []
    total = 0
    max_values = limits.max_values_per_document
    root: Any = None
    root_mark: Any = None
    intern = sys.intern
    while True:
        event = parser.get_event()
        kind = type(event)
        if kind is yaml.DocumentEndEvent:
            return root, root_mark, positions, issues
        mark = event.start_mark
        if kind is yaml.ScalarEvent:
            total += 1
            value = _scalar(event)
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            is_mapping = kind is yaml.MappingStartEvent
            if event.tag not in (None, "!", _MAP if is_mapping else _SEQ):
                raise _BuildError(mark, _tag_message(event.tag))
            if len(stack) >= limits.max_depth:
                raise _BuildError(mark, f"nesting deeper than {limits.max_depth} levels")
            path = ""
            if stack:
                parent = stack[-1]
                if type(parent[_CONTAINER]) is list:
                    path = f"{parent[_PATH]}[{len(parent[_CONTAINER])}]"
                    positions.setdefault(path, _pack(mark.line + 1, mark.column + 1))
                elif parent[_KEY] is _NO_KEY:
                    raise _BuildError(mark, "mapping keys must be plain scalars, not lists or maps")
                else:
                    path = parent[_CHILD]
            total += 1
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            stack.append(
                [{} if is_mapping else [], path, _NO_KEY, "", {}, False, event.anchor, total, mark]
            )
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            value = frame[_CONTAINER]
            mark = frame[_MARK]
            anchor = frame[_ANCHOR]
            if anchor is not None:
                anchors[anchor] = (value, total - frame[_START] + 1)
                open_anchors.discard(anchor)
        elif kind is yaml.AliasEvent:
            anchor = event.anchor
            if anchor in open_anchors:
                raise _BuildError(
                    mark, f"recursive alias *{anchor}: a value may not contain itself"
                )
            if anchor not in anchors:
                raise _BuildError(mark, f"alias *{anchor} has no anchor &{anchor} before it")
            value, size = anchors[anchor]
            total += size
            if total > max_values:
                raise _BuildError(
                    mark,
                    f"alias *{anchor} makes the document expand to more than {max_values:,} "
                    "values (an alias bomb?); aliases are bounded",
                )
        else:
            continue
        if total > max_values:
            raise _BuildError(mark, f"document holds more than {max_values:,} values")
        if not stack:
            root, root_mark = value, mark
            continue
        frame = stack[-1]
        container = frame[_CONTAINER]
        if type(container) is list:
            if kind is not yaml.MappingEndEvent and kind is not yaml.SequenceEndEvent:
                positions.setdefault(
                    f"{frame[_PATH]}[{len(container)}]",
                    ((mark.line + 1) << _COLUMN_BITS) | (mark.column + 1),
                )
            container.append(value)
        elif frame[_KEY] is not _NO_KEY:
            if not frame[_SKIP]:
                container[frame[_KEY]] = value
            frame[_KEY] = _NO_KEY
            frame[_SKIP] = False
        else:
            if kind is not yaml.ScalarEvent:
                raise _BuildError(mark, "mapping keys must be plain scalars, not aliases")
            if value == "<<" and event.implicit[0]:
                raise _BuildError(mark, "merge keys (<<) are not supported; write fields out")
            path = frame[_PATH]
            child = intern(f"{path}.{value}" if path else str(value))
            line = mark.line + 1
            seen = frame[_SEEN]
            if value in seen:
                # Not fatal: keep the first value and go on, so the rest is still checked.
                issues.append(
                    (
                        child,
                        _pack(line, mark.column + 1),
                        f"duplicate key {value!r} (first defined on line {seen[value]}); "
                        "a key may appear once per mapping",
                    )
                )
                frame[_SKIP] = True
            else:
                seen[value] = line
                positions.setdefault(child, (line << _COLUMN_BITS) | (mark.column + 1))
            frame[_KEY] = value
            frame[_CHILD] = child


def _skip_document(parser: Any) -> None:
    while type(parser.get_event()) is not yaml.DocumentEndEvent:
        pass


def _tag_message(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return (
        f"tag {shown!r} is not allowed: specs hold plain YAML only "
        "(strings, numbers, booleans, null, lists and mappings)"
    )


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
    except ValueError:
        raise _BuildError(
            event.start_mark, f"{value!r} is not a valid {tag.rsplit(':', 1)[-1]}"
        ) from None
    raise _BuildError(event.start_mark, _tag_message(tag))


def _parent_path(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    cut = path.rfind(".")
    return path[:cut] if cut >= 0 else ""


def _line_column(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def parse_documents(path: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> ParsedFile:
    """Parse one spec file's bytes into plain-data documents with field positions.

    Never raises for bad input: every problem (size, binary, encoding, YAML syntax, duplicate
    keys, aliases, tags) is returned located in ``ParsedFile.problems``. Documents before a
    syntax error are kept; nothing after it is.

    Args:
        path: the display path used in problems (``specs/sites/acme.yaml``).
        data: the file's bytes.
        limits: size, alias and depth bounds.
    """
    problems: list[Problem] = []

    def fail(line: int, column: int, message: str) -> ParsedFile:
        problems.append(Problem(path, line, column, "", "", message))
        return ParsedFile(path, [], problems)

    if len(data) > limits.max_file_bytes:
        return fail(
            0, 0, f"file is larger than the limit of {limits.max_file_bytes:,} bytes per file"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return fail(1, 1, "file is UTF-16; spec files must be UTF-8")
    if b"\x00" in data:
        return fail(0, 0, "binary file (contains NUL bytes); spec files must be UTF-8 YAML text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line, column = _line_column(prefix, len(prefix))
        return fail(
            line,
            column,
            f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded; save as UTF-8",
        )
    if not text.strip():
        return fail(1, 1, "file is empty; a spec file holds at least one document")

    documents: list[RawDocument] = []
    parser: Any = None
    try:
        parser = _PARSER(text)  # the pure-Python reader already checks characters here
        while True:
            event = parser.get_event()
            if type(event) is yaml.StreamEndEvent:
                break
            if type(event) is not yaml.DocumentStartEvent:
                continue
            try:
                value, mark, positions, issues = _build_document(parser, limits)
            except _BuildError as exc:
                problems.append(Problem(path, exc.line, exc.column, "", "", exc.message))
                _skip_document(parser)
                continue
            if value is None:
                continue  # an empty document, such as a trailing '---'
            documents.append(
                RawDocument(
                    DocumentSource(path, mark.line + 1, mark.column + 1, positions),
                    value,
                    tuple(issues),
                )
            )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        detail = exc.problem or "invalid YAML"
        if exc.context:
            detail = f"{detail} ({exc.context}"
            if exc.context_mark is not None and exc.problem_mark is not None:
                detail += f" on line {exc.context_mark.line + 1}"
            detail += ")"
        problems.append(Problem(path, line, column, "", "", f"malformed YAML: {detail}"))
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        if _PARSER is not yaml.SafeLoader:  # libyaml reports a byte offset, PyYAML a character
            offset = len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))
        line, column = _line_column(text, offset)
        problems.append(
            Problem(
                path,
                line,
                column,
                "",
                "",
                f"malformed YAML: control character #x{exc.character:04x} is not allowed",
            )
        )
    except yaml.YAMLError as exc:
        problems.append(Problem(path, 0, 0, "", "", f"malformed YAML: {exc}"))
    finally:
        if parser is not None:
            parser.dispose()
    if not documents and not problems:
        problems.append(Problem(path, 1, 1, "", "", "file holds no documents (only comments)"))
    return ParsedFile(path, documents, problems)


# --- per-document validation -------------------------------------------------------------


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


_KIND_VALUES = frozenset(kind.value for kind in Kind)
_KNOWN_KINDS = ", ".join(sorted(_KIND_VALUES))


def validate_document(raw: RawDocument) -> tuple[LoadedDocument | None, list[Problem]]:
    """Validate one raw document against its kind; return it (or None) and its problems."""
    data = raw.data
    if not isinstance(data, dict):
        where = raw.locate()
        return None, [
            Problem(
                where.path,
                where.line,
                where.column,
                "",
                "",
                "a document must be a mapping with apiVersion, kind, metadata and spec, "
                f"got {_describe(data)}",
            )
        ]
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    kind_value = data.get("kind")
    try:
        kind = Kind(kind_value) if isinstance(kind_value, str) else None
    except ValueError:
        kind = None
    subject = ""
    if kind is not None:
        subject = f"{kind.value}/{name}" if isinstance(name, str) else kind.value

    def problem(field_path: str, message: str) -> Problem:
        where = raw.locate(field_path)
        return Problem(where.path, where.line, where.column, subject, field_path, message)

    problems: list[Problem] = []
    for field_path, packed, message in raw.issues:
        line, column = _unpack(packed)
        problems.append(Problem(raw.path, line, column, subject, field_path, message))
    if "apiVersion" not in data:
        problems.append(problem("", f"missing apiVersion (use apiVersion: {API_VERSION})"))
    elif data["apiVersion"] != API_VERSION:
        problems.append(
            problem(
                "apiVersion",
                f"unsupported version {_describe(data['apiVersion'])}; use {API_VERSION}",
            )
        )
    if kind_value is None:
        problems.append(problem("", f"missing kind (one of {_KNOWN_KINDS})"))
    elif kind is None:
        problems.append(
            problem("kind", f"unknown kind {_describe(kind_value)}; expected one of {_KNOWN_KINDS}")
        )
    if kind is None or len(problems) > len(raw.issues):
        return None, problems

    model_class = MODEL_BY_KIND[kind]
    try:
        model = model_class.model_validate(data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(problem(_loc_path(error["loc"]), _error_message(error)))
        return None, problems
    loaded = LoadedDocument(kind, model.metadata.name, model, raw)
    problems.extend(loaded.problem(path, message) for path, message in document_checks(model))
    return loaded, problems


# --- loading a fleet ---------------------------------------------------------------------


def load_files(
    files: Iterable[SourceFile], *, revision: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> Specs:
    """Parse, validate and cross-check spec files; the shared core of every loader.

    Raises:
        SpecError: with every problem of every file, sorted by file and position.
    """
    with _gc_paused():
        return _load_files(files, revision=revision, limits=limits)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # NB: loading a large fleet allocates hundreds of thousands of long-lived, acyclic objects
    # (nodes, values, models); the cyclic collector would rescan them again and again, which
    # costs more than the parsing itself. Nothing here creates cycles worth collecting early.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_files(files: Iterable[SourceFile], *, revision: str | None, limits: Limits) -> Specs:
    problems: list[Problem] = []
    loaded: list[LoadedDocument] = []
    declared: list[tuple[Kind, str]] = []
    count = total = 0
    for source in files:
        if source.refused is not None:
            problems.append(Problem(source.path, 0, 0, "", "", source.refused))
            continue
        content = source.read(limits.max_file_bytes)
        count, total = count + 1, total + min(len(content), limits.max_file_bytes)
        if count > limits.max_files or total > limits.max_total_bytes:
            problems.append(Problem(source.path, 0, 0, "", "", _too_big(limits)))
            break
        parsed = parse_documents(source.path, content, limits)
        problems.extend(parsed.problems)
        for raw in parsed.documents:
            document, found = validate_document(raw)
            problems.extend(found)
            if document is not None:
                loaded.append(document)
            else:
                name = declared_name(raw)
                if name is not None:
                    declared.append(name)
    problems.extend(check_fleet(loaded, declared))
    if problems:
        raise SpecError(problems)
    tenants: dict[str, Tenant] = {}
    sites: dict[str, Site] = {}
    policies: dict[str, BillingPolicy] = {}
    workers: dict[str, Worker] = {}
    documents: dict[tuple[Kind, str], DocumentSource] = {}
    for document in loaded:
        model = document.model
        if isinstance(model, Tenant):
            tenants[document.name] = model
        elif isinstance(model, Site):
            sites[document.name] = model
        elif isinstance(model, Worker):
            workers[document.name] = model
        else:
            policies[document.name] = model
        documents[(document.kind, document.name)] = document.raw.source
    return Specs(
        tenants=_sorted(tenants),
        sites=_sorted(sites),
        policies=_sorted(policies),
        revision=revision,
        workers=_sorted(workers),
        _documents=documents,
    )


def _sorted(items: dict[str, _T]) -> dict[str, _T]:
    return {name: items[name] for name in sorted(items)}


def _too_big(limits: Limits) -> str:
    return (
        f"the fleet is too large: more than {limits.max_files} spec files or "
        f"{limits.max_total_bytes} bytes in total; nothing after this file was read"
    )


_LINK = (
    "is a symbolic link; spec files must be regular files inside the specs directory "
    "(not followed, not read)"
)
_NOT_REGULAR = "is not a regular file (not read)"


def _directory_paths(root: Path, display_root: str) -> Iterator[tuple[str, str, str | None]]:
    """Yield (file system path, display path, refusal) of every spec path under ``root``,
    sorted; the refusal is None for a regular file to read (rule 7)."""
    prefix = f"{display_root}/" if display_root else ""
    for directory, dirnames, filenames in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        relative_dir = "" if relative_dir == "." else relative_dir.replace(os.sep, "/") + "/"
        visible = sorted(d for d in dirnames if not d.startswith("."))
        dirnames[:] = []
        for name in visible:
            fs_path = os.path.join(directory, name)  # noqa: PTH118 - str paths, hot loop
            if os.path.islink(fs_path):  # noqa: PTH114 - str paths, hot loop
                yield fs_path, f"{prefix}{relative_dir}{name}", _LINK
            else:
                dirnames.append(name)
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            fs_path = os.path.join(directory, filename)  # noqa: PTH118 - str paths, hot loop
            if os.path.islink(fs_path):  # noqa: PTH114 - str paths, hot loop
                yield fs_path, f"{prefix}{relative_dir}{filename}", _LINK
            elif filename.endswith(SPEC_SUFFIXES):
                yield fs_path, f"{prefix}{relative_dir}{filename}", None


def _read_file(fs_path: str, display: str, limit: int) -> bytes:
    # NB: os.read(fd, size + 1) after fstat, not open().read(limit + 1): the latter allocates a
    # limit-sized buffer for every file, which made reading 15,000 small files 4x slower.
    # O_NOFOLLOW: a file swapped for a symbolic link after the listing is refused (rule 7);
    # O_NONBLOCK: a FIFO put in its place cannot hang the open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(fs_path, flags)
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise LoadError(f"cannot read {display}: {_NOT_REGULAR}")
            return os.read(fd, min(status.st_size, limit) + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError(f"cannot read {display}: {_LINK}") from None
        raise LoadError(f"cannot read {display}: {exc.strerror}") from exc


def _directory_files(root: Path, display_root: str) -> Iterator[SourceFile]:
    for fs_path, display, refused in _directory_paths(root, display_root):
        yield SourceFile(display, functools.partial(_read_file, fs_path, display), refused)


def load_directory(root: Path, *, limits: Limits = DEFAULT_LIMITS) -> Specs:
    """Load and validate every ``*.yaml``/``*.yml`` file under ``root``.

    Raises:
        LoadError: when ``root`` is not a readable directory.
        SpecError: with every problem found.
    """
    root = Path(root)
    if root.is_symlink():
        raise LoadError(f"{root} is a symbolic link; give the specs directory itself (rule 7)")
    if not root.is_dir():
        raise LoadError(f"{root} is not a directory of specs")
    return load_files(_directory_files(root, root.resolve().name), limits=limits)


def load_git(
    repo: Path, ref: str = "HEAD", subdir: str = "specs", *, limits: Limits = DEFAULT_LIMITS
) -> Specs:
    """Load and validate the specs under ``subdir`` at commit ``ref`` of a Git repository.

    Blobs are read from the commit's tree through GitPython; nothing is checked out, so the
    working tree (and uncommitted edits) play no part. ``Specs.revision`` is the commit sha.

    Raises:
        LoadError: no repository at ``repo``, an unknown ``ref``, or no ``subdir`` there.
        SpecError: with every problem found.
    """
    import git  # GitPython is imported only by the Git path; it spawns `git` lazily

    try:
        repository = git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise LoadError(f"{repo} is not a Git repository") from exc
    try:
        commit = repository.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError) as exc:
        raise LoadError(f"unknown Git ref {ref!r} in {repo}") from exc
    subdir = subdir.strip("/")
    tree = commit.tree
    if subdir:
        try:
            tree = tree / subdir
        except KeyError as exc:
            raise LoadError(f"no {subdir}/ directory at {ref} ({commit.hexsha[:12]})") from exc
        if tree.type != "tree":
            raise LoadError(f"{subdir} is not a directory at {ref} ({commit.hexsha[:12]})")
    try:
        return load_files(
            _git_files(repository, commit.hexsha, subdir, limits),
            revision=commit.hexsha,
            limits=limits,
        )
    finally:
        repository.close()


_BATCH_FILES = 2_000
_BATCH_BYTES = 64 << 20


def _git_files(repository: Any, sha: str, subdir: str, limits: Limits) -> Iterator[SourceFile]:
    """Spec blobs under ``subdir`` at commit ``sha``, read in batches.

    One ``git ls-tree -r -l`` lists paths, blob ids and sizes; ``git cat-file --batch`` then
    streams the blobs, a few thousand at a time. Asking for blobs one by one costs a round trip
    to the ``git`` process each, which dominated loading a 15,000-file fleet.
    """
    listing: bytes = repository.git.ls_tree(
        "-r", "-l", "-z", sha, "--", subdir or ".", stdout_as_string=False
    )
    prefix = f"{subdir}/" if subdir else ""
    entries: list[tuple[str, str, int]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, blob_sha, size = meta.split()
        path = raw_path.decode("utf-8", errors="replace")
        relative = path[len(prefix) :]
        if (
            kind != b"blob"
            or mode == b"120000"  # symbolic link
            or not path.startswith(prefix)
            or not path.endswith(SPEC_SUFFIXES)
            or any(part.startswith(".") for part in relative.split("/"))
        ):
            continue
        entries.append((path, blob_sha.decode("ascii"), int(size)))
    entries.sort()
    limit = limits.max_file_bytes
    batch: list[tuple[str, str, int]] = []
    batch_bytes = 0
    for entry in entries:
        batch.append(entry)
        batch_bytes += min(entry[2], limit)
        if len(batch) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
            yield from _read_blobs(repository, batch, limit)
            batch, batch_bytes = [], 0
    if batch:
        yield from _read_blobs(repository, batch, limit)


def _read_blobs(
    repository: Any, batch: list[tuple[str, str, int]], limit: int
) -> Iterator[SourceFile]:
    wanted = [entry for entry in batch if entry[2] <= limit]
    contents: dict[str, bytes] = {}
    if wanted:
        with tempfile.TemporaryFile() as request:
            request.write("".join(f"{sha}\n" for _, sha, _ in wanted).encode("ascii"))
            request.seek(0)
            output: bytes = repository.git.cat_file(
                "--batch", istream=request, stdout_as_string=False, strip_newline_in_stdout=False
            )
        offset = 0
        for _, sha, _ in wanted:
            header_end = output.index(b"\n", offset)
            size = int(output[offset:header_end].split()[2])
            start = header_end + 1
            contents[sha] = output[start : start + size]
            offset = start + size + 1
    for path, sha, size in batch:
        # An oversized blob is never read; a placeholder one byte over the limit stands in.
        data = contents.get(sha) if size <= limit else None
        yield SourceFile(path, functools.partial(_blob_bytes, data, limit))


def _blob_bytes(data: bytes | None, limit: int, _limit: int) -> bytes:
    return data if data is not None else bytes(limit + 1)
