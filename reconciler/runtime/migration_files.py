"""migration_files: the migrations folder read into ``MigrationFile`` values, and checked.

Used by ``runtime/migrate.py``: :func:`discover` reads ``migrations/NNNN_name.sql`` in
application order (one wrapping transaction stripped, as wrangler does; ``migrate`` rules 1
and 5), and :func:`find_partial` replays pending files over the current schema to find one
that looks partially applied (rule 3c). Pure but for reading the folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import MigrationError
from reconciler.providers.d1 import split_sql, strip_comments

__all__ = ["MigrationFile", "altered_tables", "discover", "find_partial"]

_FILE_NAME = re.compile(r"^(\d+)(?:_.*)?\.sql$")


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One migration file as read from disk."""

    name: str  # file name with extension, what d1_migrations stores
    path: Path
    number: int
    sha256: str  # of the text with CRLF normalised to LF
    statements: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order of application: leading number, then file name."""
        return (self.number, self.name)


def discover(migrations_dir: Path) -> list[MigrationFile]:
    """Read every ``*.sql`` file directly in ``migrations_dir``, in application order.

    Args:
        migrations_dir: the migrations folder.

    Returns:
        The migrations, sorted by leading number then name.

    Raises:
        MigrationError: the folder is missing, a name has no leading number, or a file has
            more than one transaction.
    """
    if not migrations_dir.is_dir():
        raise MigrationError(f"{migrations_dir}: no such migrations directory")
    files: list[MigrationFile] = []
    unnumbered: list[str] = []
    for path in sorted(migrations_dir.iterdir()):
        if not path.is_file() or path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            unnumbered.append(path.name)
            continue
        text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
        files.append(
            MigrationFile(
                name=path.name,
                path=path,
                number=int(match.group(1)),
                sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                statements=tuple(split_sql(_trim_transaction(path, text))),
            )
        )
    if unnumbered:
        raise MigrationError(
            f"{migrations_dir}: migration file names must start with a number "
            f"(NNNN_name.sql): {', '.join(unnumbered)}"
        )
    return sorted(files, key=lambda item: item.sort_key)


def _trim_transaction(path: Path, text: str) -> str:
    """Strip one wrapping transaction the way wrangler's trimmer does, or refuse."""
    if "BEGIN TRANSACTION" not in text:
        return text
    trimmed = text.replace("BEGIN TRANSACTION;", "", 1).replace("COMMIT;", "", 1)
    if "BEGIN TRANSACTION" in trimmed:
        raise MigrationError(
            f"{path}: contains several transactions; D1 runs each migration in a transaction "
            "for you, so remove BEGIN TRANSACTION / COMMIT"
        )
    return trimmed


# --------------------------------------------------------------------------- partial detection

_NAME = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"(?:{_NAME}\s*\.\s*)?({_NAME})"
_CREATE = re.compile(
    rf"^CREATE\s+(TEMP\s+|TEMPORARY\s+)?(?:UNIQUE\s+)?(?:VIRTUAL\s+)?"
    rf"(TABLE|INDEX|VIEW|TRIGGER)\s+(IF\s+NOT\s+EXISTS\s+)?{_QNAME}"
    rf"(?:.*?\bON\s+{_QNAME})?",
    re.IGNORECASE | re.DOTALL,
)
_DROP = re.compile(
    rf"^DROP\s+(TABLE|INDEX|VIEW|TRIGGER)\s+(?:IF\s+EXISTS\s+)?{_QNAME}", re.IGNORECASE
)
_RENAME_TABLE = re.compile(rf"^ALTER\s+TABLE\s+{_QNAME}\s+RENAME\s+TO\s+({_NAME})", re.IGNORECASE)
_RENAME_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+RENAME\s+(?:COLUMN\s+)?({_NAME})\s+TO\s+({_NAME})",
    re.IGNORECASE,
)
_ADD_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+ADD\s+(?:COLUMN\s+)?({_NAME})", re.IGNORECASE
)
_DROP_COLUMN = re.compile(
    rf"^ALTER\s+TABLE\s+{_QNAME}\s+DROP\s+(?:COLUMN\s+)?({_NAME})", re.IGNORECASE
)


def _unquote(name: str) -> str:
    if name[:1] in ('"', "`", "[") and len(name) >= 2:
        name = name[1:-1].replace('""', '"') if name[0] == '"' else name[1:-1]
    return name.lower()


@dataclass
class _Schema:
    """A mutable picture of the schema, replayed through pending migrations."""

    objects: dict[str, tuple[str, str]]  # name -> (type, table it belongs to)
    columns: dict[str, set[str] | None]  # table -> known columns (None: unknown, skip checks)

    def drop(self, name: str) -> None:
        kind, _ = self.objects.pop(name, ("", ""))
        if kind == "table":
            self.columns.pop(name, None)
            for other, (_, table) in list(self.objects.items()):
                if table == name and other != name:
                    del self.objects[other]


def altered_tables(files: Iterable[MigrationFile]) -> set[str]:
    """The tables the files add columns to (their columns are read for ``find_partial``)."""
    tables: set[str] = set()
    for migration in files:
        for statement in migration.statements:
            match = _ADD_COLUMN.match(strip_comments(statement).strip())
            if match:
                tables.add(_unquote(match.group(1)))
    return tables


def find_partial(
    pending: Sequence[MigrationFile],
    objects: dict[str, tuple[str, str]],
    columns: dict[str, set[str] | None],
) -> dict[str, list[str]]:
    """Find pending migrations whose schema objects already exist (pure; no I/O).

    Replays the pending files in order over the current schema: a ``CREATE`` without ``IF NOT
    EXISTS`` of a name that exists, or an ``ADD COLUMN`` of a column that exists, marks the file
    as partially applied. ``DROP`` and ``RENAME`` earlier in the replay are honoured, so a file
    that drops and recreates an object is not flagged.

    Args:
        pending: the pending migrations, in application order.
        objects: existing schema objects, lowercase name -> (type, lowercase table name).
        columns: existing columns of the tables the pending files alter (lowercase).

    Returns:
        File name -> the objects found already present (``table audit``, ``column sites.plan``),
        only for files with at least one.
    """
    schema = _Schema(
        dict(objects), {k: (set(v) if v is not None else None) for k, v in columns.items()}
    )
    found: dict[str, list[str]] = {}
    for migration in pending:
        present: list[str] = []
        for statement in migration.statements:
            text = strip_comments(statement).strip()
            present.extend(_replay(schema, text))
        if present:
            found[migration.name] = present
    return found


def _replay(schema: _Schema, text: str) -> list[str]:
    present: list[str] = []
    if match := _CREATE.match(text):
        temporary, kind, if_not_exists, name = match.group(1, 2, 3, 4)
        if temporary:
            return present
        kind = kind.lower()
        name = _unquote(name)
        table = _unquote(match.group(5)) if match.group(5) and kind != "table" else name
        if name in schema.objects and not if_not_exists:
            present.append(f"{schema.objects[name][0]} {name}")
        if name not in schema.objects:
            schema.objects[name] = (kind, table)
            if kind == "table":
                schema.columns[name] = None
    elif match := _DROP.match(text):
        schema.drop(_unquote(match.group(2)))
    elif match := _RENAME_TABLE.match(text):
        old, new = _unquote(match.group(1)), _unquote(match.group(2))
        kind, _ = schema.objects.pop(old, ("table", old))
        schema.objects[new] = (kind, new)
        schema.columns[new] = schema.columns.pop(old, None)
        for other, (other_kind, table) in list(schema.objects.items()):
            if table == old:
                schema.objects[other] = (other_kind, new)
    elif match := _RENAME_COLUMN.match(text):
        known = schema.columns.get(_unquote(match.group(1)))
        if known is not None:
            known.discard(_unquote(match.group(2)))
            known.add(_unquote(match.group(3)))
    elif match := _ADD_COLUMN.match(text):
        table, column = _unquote(match.group(1)), _unquote(match.group(2))
        known = schema.columns.get(table)
        if known is not None:
            if column in known:
                present.append(f"column {table}.{column}")
            known.add(column)
    elif match := _DROP_COLUMN.match(text):
        known = schema.columns.get(_unquote(match.group(1)))
        if known is not None:
            known.discard(_unquote(match.group(2)))
    return present
