"""Restore points for a D1 database: Time Travel bookmarks on D1, file snapshots on SQLite.

Called by ``runtime/migrate.py`` (a restore point before each migration) and
``runtime/restore.py`` (the restore itself); built by ``commands/migrate.py`` for the database it
opened. Two backends behind one :class:`RestorePoints` interface:

- :class:`TimeTravel` asks D1 for its current bookmark
  (``GET /accounts/{a}/d1/database/{id}/time_travel/bookmark``) and restores with
  ``POST .../time_travel/restore?bookmark=`` (shapes: the official SDK's
  ``resources/d1/database/time_travel.py``). D1 keeps 30 days of history on paid plans (7 on
  free; ``contracts/d1/NOTES.md`` §3), so a bookmark older than that cannot be restored.
- :class:`SqliteSnapshots` copies the whole SQLite file aside with SQLite's online backup
  before each migration (``<database>.restore-points/NNNN-<label>.sqlite``); its bookmarks are
  ``snapshot:<file name>``. Restoring copies the file back over the live database, after
  taking a snapshot of the state it replaces, so a restore can itself be undone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import MigrationError
from reconciler.providers.d1 import SqliteDatabase

__all__ = [
    "SNAPSHOT_PREFIX",
    "RestorePoints",
    "Restored",
    "SqliteSnapshots",
    "TimeTravel",
    "TimeTravelAPI",
]

SNAPSHOT_PREFIX = "snapshot:"
_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore answered: where the database is now and how to undo the restore."""

    bookmark: str  # the state after the restore
    previous_bookmark: str  # the state the restore replaced: restore to it to undo
    message: str


class RestorePoints(Protocol):
    """Take a restore point now, or go back to one."""

    kind: str  # "D1 Time Travel bookmark" | "file snapshot": for messages

    async def mark(self, label: str) -> str:
        """Return a bookmark for the database's state right now (``label`` names it locally)."""
        ...

    async def restore(self, bookmark: str) -> Restored:
        """Put the whole database back to ``bookmark``; every later write is undone."""
        ...


class TimeTravelAPI(Protocol):
    """The two D1 Time Travel calls; implemented by ``providers/cloudflare.py``'s client."""

    async def d1_bookmark(self, database_id: str) -> str:
        """The database's current bookmark."""
        ...

    async def d1_restore(self, database_id: str, bookmark: str) -> dict[str, Any]:
        """Restore to ``bookmark``; the answer's ``bookmark``/``previous_bookmark``/``message``."""
        ...


class TimeTravel:
    """Restore points on D1 itself (Time Travel)."""

    kind = "D1 Time Travel bookmark"

    def __init__(self, api: TimeTravelAPI, database_id: str) -> None:
        """Bind to one database through the Cloudflare client."""
        self._api = api
        self._database_id = database_id

    async def mark(self, label: str) -> str:
        """D1's current bookmark (``label`` is not sent: D1 bookmarks are not named)."""
        return await self._api.d1_bookmark(self._database_id)

    async def restore(self, bookmark: str) -> Restored:
        """``POST .../time_travel/restore?bookmark=``."""
        answer = await self._api.d1_restore(self._database_id, bookmark)
        return Restored(
            bookmark=_text(answer.get("bookmark")),
            previous_bookmark=_text(answer.get("previous_bookmark")),
            message=_text(answer.get("message")),
        )


class SqliteSnapshots:
    """Restore points for a local SQLite database: whole-file snapshots beside it."""

    kind = "file snapshot"

    def __init__(self, db: SqliteDatabase, directory: Path | None = None) -> None:
        """Keep snapshots in ``directory`` (default ``<database file>.restore-points``).

        Raises:
            MigrationError: the database is in memory, so there is no file to snapshot.
        """
        if db.path == ":memory:" or db.path.startswith("file::memory:"):
            raise MigrationError("an in-memory database has no file to snapshot")
        self._db = db
        self.directory = directory if directory is not None else Path(db.path + ".restore-points")

    def _next_name(self, label: str) -> str:
        taken = [path.name for path in self.directory.glob("*.sqlite")]
        number = 1 + max((int(name.split("-", 1)[0]) for name in taken), default=0)
        return f"{number:04d}-{_LABEL.sub('_', label) or 'point'}.sqlite"

    def path_of(self, bookmark: str) -> Path:
        """The snapshot file a ``snapshot:`` bookmark names.

        Raises:
            MigrationError: not a snapshot bookmark, or it names anything but a file here.
        """
        name = bookmark.removeprefix(SNAPSHOT_PREFIX)
        if not bookmark.startswith(SNAPSHOT_PREFIX) or "/" in name or name.startswith("."):
            raise MigrationError(
                f"{bookmark!r} is not a snapshot bookmark of this database (snapshot:NAME)"
            )
        return self.directory / name

    async def mark(self, label: str) -> str:
        """Snapshot the database now; the bookmark names the file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = self._next_name(label)
        await self._db.snapshot(self.directory / name)
        return SNAPSHOT_PREFIX + name

    async def restore(self, bookmark: str) -> Restored:
        """Snapshot the current state (to undo), then copy the named snapshot back."""
        source = self.path_of(bookmark)
        if not source.is_file():
            raise MigrationError(f"restore point {bookmark} is gone: no file {source}")
        previous = await self.mark("before-restore")
        await self._db.restore_from(source)
        return Restored(
            bookmark=bookmark,
            previous_bookmark=previous,
            message=f"database restored from {source.name}",
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
