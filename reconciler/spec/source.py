"""Where spec text comes from: the loading limits, source files and located raw documents.

The plain, frozen values the loading steps hand each other (``spec/files.py`` ->
``spec/documents.py`` -> ``spec/validate.py`` -> ``spec/load.py``), and the packed field
positions that let every problem point at its file, line and column.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Problem

__all__ = [
    "DEFAULT_LIMITS",
    "SPEC_SUFFIXES",
    "DocumentSource",
    "Limits",
    "PackedPositions",
    "ParsedFile",
    "RawDocument",
    "SourceFile",
    "SourceLocation",
    "pack",
    "unpack",
]

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep hostile or accidental input from eating memory or CPU."""

    max_file_bytes: int = 1 << 20
    """Largest spec file accepted, in bytes (1 MiB)."""
    max_values_per_document: int = 100_000
    """Most values (scalars, lists, mappings) one document may expand to, aliases included."""
    max_depth: int = 64
    """Deepest nesting of lists and mappings accepted."""
    max_files: int = 200_000
    """Most spec files one fleet may have (rule 8); a 100,000-site fleet has about 155,000."""
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
COLUMN_BITS = 32
_COLUMN_MASK = (1 << COLUMN_BITS) - 1


def pack(line: int, column: int) -> int:
    """One int for a 1-based (line, column)."""
    return (line << COLUMN_BITS) | column


def unpack(packed: int) -> tuple[int, int]:
    """The 1-based (line, column) of a :func:`pack` ed position."""
    return packed >> COLUMN_BITS, packed & _COLUMN_MASK


class PackedPositions(Mapping[str, int]):
    """A document's field positions in little memory: the field paths (shared by every
    document of the same shape) index an array of packed positions.

    A 100,000-site fleet keeps about 2 million positions until exit; as dicts of ints they
    cost about 1 KB per document, packed about 250 bytes.
    """

    __slots__ = ("_index", "_packed")

    def __init__(self, positions: Mapping[str, int]) -> None:
        self._index = _shape_index(tuple(positions))
        self._packed = array("Q", positions.values())

    def __getitem__(self, field_path: str) -> int:
        return self._packed[self._index[field_path]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._packed)


@functools.lru_cache(maxsize=4096)
def _shape_index(paths: tuple[str, ...]) -> dict[str, int]:
    return {path: index for index, path in enumerate(paths)}


def _parent_path(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    cut = path.rfind(".")
    return path[:cut] if cut >= 0 else ""


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
                line, column = unpack(packed)
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
