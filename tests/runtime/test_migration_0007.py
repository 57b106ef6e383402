"""Migration 0007: the DCV TXT columns of ``domains``, and older dunning rows of unknown outcome.

Before 0005 a send of unknown outcome was recorded ``failed``; ``failed`` now means nothing was
sent (a refused number), which a corrected number or a manual retry sends again. 0007 turns the
older rows into ``unknown`` so they are never sent again, and leaves a refused number ``failed``.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.actions.billing import UNKNOWN_SEND
from reconciler.runtime.migrate import migrate

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _migrate(path: Path, directory: Path) -> None:
    async def run() -> None:
        async with SqliteDatabase(path) as db:
            await migrate(db, directory)

    asyncio.run(run())


def test_older_unknown_sends_become_unknown_and_a_refused_number_stays_failed(
    tmp_path: Path,
) -> None:
    before = tmp_path / "up-to-0005"
    before.mkdir()
    for file in sorted(MIGRATIONS.glob("*.sql")):
        if int(file.name[:4]) <= 6:
            shutil.copy(file, before / file.name)
    database = tmp_path / "d1.sqlite"
    _migrate(database, before)
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO invoices (id, status) VALUES ('in_1', 'open')")
        connection.executemany(
            "INSERT INTO dunning_step_logs (invoice_id, step_code, status, error_message) "
            "VALUES ('in_1', ?, 'failed', ?)",
            [
                ("D0", UNKNOWN_SEND.format(error="timeout")),
                ("D3", "invalid number: +1 is not on WhatsApp"),
            ],
        )
    _migrate(database, MIGRATIONS)
    with sqlite3.connect(database) as connection:
        rows = dict(connection.execute("SELECT step_code, status FROM dunning_step_logs"))
        columns = {row[1] for row in connection.execute("PRAGMA table_info(domains)")}
    assert rows == {"D0": "unknown", "D3": "failed"}
    assert {"dcv_txt_name", "dcv_txt_value"} <= columns
