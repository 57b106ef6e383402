"""Parse one spec file's bytes into plain-data documents with field positions.

Used by ``spec/load.py`` for every file it reads. The bytes are checked first (size, UTF-16,
NUL bytes, UTF-8, emptiness), then each YAML document is built by ``spec/yaml_plain.py``; every
problem, YAML syntax errors included, is returned located, never raised.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from reconciler.errors import Problem
from reconciler.spec import yaml_plain
from reconciler.spec.source import (
    DEFAULT_LIMITS,
    DocumentSource,
    Limits,
    PackedPositions,
    ParsedFile,
    RawDocument,
)

__all__ = ["PlainFile", "from_plain", "parse_documents", "to_plain"]

PlainDocument = tuple[int, int, str | dict[str, int], Any, tuple[tuple[str, int, str], ...]]
"""A document as builtins: line, column, its text (positions not worked out yet) or its
positions, its data and its issues."""
PlainFile = tuple[str, list[PlainDocument], list[tuple[str, int, int, str, str, str]]]
"""A :class:`ParsedFile` as builtins: path, documents, problems (each a Problem's fields)."""


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
    text = _decode(path, data, limits)
    if isinstance(text, Problem):
        return ParsedFile(path, [], [text])
    documents: list[RawDocument] = []
    problems: list[Problem] = []
    try:
        _parse_text(path, text, limits, documents, problems)
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(path, exc))
    except yaml.reader.ReaderError as exc:
        problems.append(_reader_problem(path, text, exc))
    except yaml.YAMLError as exc:
        problems.append(Problem(path, 0, 0, "", "", f"malformed YAML: {exc}"))
    if not documents and not problems:
        problems.append(Problem(path, 1, 1, "", "", "file holds no documents (only comments)"))
    return ParsedFile(path, documents, problems)


def to_plain(parsed: ParsedFile) -> PlainFile:
    """``parsed`` as builtins only, which ``marshal`` sends to another process cheaply."""
    documents: list[PlainDocument] = []
    for raw in parsed.documents:
        source, positions = raw.source, raw.source.positions
        where = positions.plain() if isinstance(positions, _LazyPositions) else dict(positions)
        documents.append((source.line, source.column, where, raw.data, raw.issues))
    problems = [(p.path, p.line, p.column, p.subject, p.field, p.message) for p in parsed.problems]
    return parsed.path, documents, problems


def from_plain(plain: PlainFile, limits: Limits) -> ParsedFile:
    """The :class:`ParsedFile` that :func:`to_plain` turned into ``plain``."""
    path, documents, problems = plain
    raws = []
    for line, column, where, data, issues in documents:
        positions: Mapping[str, int] = (
            _LazyPositions(where, limits) if isinstance(where, str) else PackedPositions(where)
        )
        raws.append(RawDocument(DocumentSource(path, line, column, positions), data, issues))
    return ParsedFile(path, raws, [Problem(*fields) for fields in problems])


def _decode(path: str, data: bytes, limits: Limits) -> str | Problem:
    """The file's text, or the problem that stops it being read as UTF-8 YAML."""

    def fail(line: int, column: int, message: str) -> Problem:
        return Problem(path, line, column, "", "", message)

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
    return text


def _parse_text(
    path: str, text: str, limits: Limits, documents: list[RawDocument], problems: list[Problem]
) -> None:
    """Append each non-empty document of ``text`` (and each document's fatal problem).

    Raises:
        yaml.YAMLError: a syntax error; the documents before it are already appended.
    """
    simple = yaml_plain.build_simple(text, limits, record=False)
    if simple is not None:
        value, line, column, _ = simple
        source = DocumentSource(path, line, column, _LazyPositions(text, limits))
        documents.append(RawDocument(source, value))
        return
    parser: Any = None
    try:
        parser = yaml_plain.PARSER(text)  # the pure-Python reader already checks characters
        while True:
            event = parser.get_event()
            if type(event) is yaml.StreamEndEvent:
                return
            if type(event) is not yaml.DocumentStartEvent:
                continue
            try:
                value, mark, positions, issues = yaml_plain.build_document(parser, limits)
            except yaml_plain.BuildError as exc:
                problems.append(Problem(path, exc.line, exc.column, "", "", exc.message))
                yaml_plain.skip_document(parser)
                continue
            if value is None:
                continue  # an empty document, such as a trailing '---'
            source = DocumentSource(
                path, mark.line + 1, mark.column + 1, PackedPositions(positions)
            )
            documents.append(RawDocument(source, value, tuple(issues)))
    finally:
        if parser is not None:
            parser.dispose()


class _LazyPositions(Mapping[str, int]):
    """The field positions of a document the fast path read, worked out on first use.

    Most documents are never located (only problems and plan actions are), so the fast path
    skips the positions and keeps the text; the first lookup reads it again, recording them.
    """

    __slots__ = ("_limits", "_packed", "_text")

    def __init__(self, text: str, limits: Limits) -> None:
        self._text = text
        self._limits = limits
        self._packed: PackedPositions | None = None

    def _positions(self) -> PackedPositions:
        if self._packed is None:
            simple = yaml_plain.build_simple(self._text, self._limits)
            if simple is None:  # cannot happen: the same text took the fast path before
                raise RuntimeError("a spec text left the fast path on a second reading")
            self._packed, self._text = PackedPositions(simple[3]), ""
        return self._packed

    def plain(self) -> str | dict[str, int]:
        """The text still to read, or the positions once worked out (see :func:`to_plain`)."""
        return dict(self._packed) if self._packed is not None else self._text

    def __getitem__(self, field_path: str) -> int:
        return self._positions()[field_path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions())

    def __len__(self) -> int:
        return len(self._positions())


def _syntax_problem(path: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    detail = exc.problem or "invalid YAML"
    if exc.context:
        detail = f"{detail} ({exc.context}"
        if exc.context_mark is not None and exc.problem_mark is not None:
            detail += f" on line {exc.context_mark.line + 1}"
        detail += ")"
    return Problem(path, line, column, "", "", f"malformed YAML: {detail}")


def _reader_problem(path: str, text: str, exc: yaml.reader.ReaderError) -> Problem:
    offset = exc.position
    if yaml_plain.PARSER is not yaml.SafeLoader:  # libyaml: a byte offset; PyYAML: a character
        offset = len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))
    line, column = _line_column(text, offset)
    return Problem(
        path,
        line,
        column,
        "",
        "",
        f"malformed YAML: control character #x{exc.character:04x} is not allowed",
    )


def _line_column(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1
