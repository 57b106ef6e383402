"""Observe the platform's own Workers: versions and deployments, and the rollouts D1 recalls.

Called by ``runtime/observe.py`` after its other readings, for the Worker documents the specs
declare (two Cloudflare reads per Worker: deployable versions and deployments, in the sweep
lane) and one D1 query for the newest ``worker_rollouts`` row per script. A failed Cloudflare
reading marks :attr:`Source.WORKERS` incomplete; a missing script is simply absent (the
planner blocks it as ``missing_worker``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from reconciler.core.worker_facts import ObservedWorker, WorkerRollout
from reconciler.errors import MigrationError, NotFoundError
from reconciler.providers.d1 import Database, SqlError

__all__ = ["WorkersReader", "read_rollouts", "read_workers"]


class WorkersReader(Protocol):
    """The Workers reads (``providers/cloudflare.py``'s client)."""

    async def worker_versions(self, script: str) -> dict[int, str]:
        """Every deployable version: number -> id."""
        ...

    async def worker_serving(self, script: str) -> tuple[tuple[str, float], ...]:
        """The newest deployment's split."""
        ...


async def read_workers(reader: WorkersReader, scripts: list[str]) -> dict[str, ObservedWorker]:
    """Versions and the serving split of each script that exists (ProviderError on failure)."""
    found: dict[str, ObservedWorker] = {}
    for script in scripts:
        try:
            versions = await reader.worker_versions(script)
            serving = await reader.worker_serving(script)
        except NotFoundError:
            continue
        found[script] = ObservedWorker(script=script, versions=versions, serving=serving)
    return found


_NEWEST = (
    "SELECT r.script, r.version, r.status, r.return_to, r.returned_to, r.error, r.created_at "
    "FROM worker_rollouts r JOIN (SELECT script, MAX(id) AS id FROM worker_rollouts "
    "GROUP BY script) newest ON newest.id = r.id"
)


async def read_rollouts(db: Database) -> Mapping[str, WorkerRollout]:
    """Scripts whose newest rollout the health gate turned back, or was left unchecked.

    Raises:
        MigrationError: the database lacks ``worker_rollouts`` (migration 0008).
    """
    try:
        rows = await db.query(_NEWEST)
    except SqlError as exc:
        if "no such table" in str(exc):
            raise MigrationError(
                "D1 has no worker_rollouts table: run `reconciler migrate` (migration 0008)"
            ) from exc
        raise
    return {
        str(row["script"]): WorkerRollout(
            script=str(row["script"]),
            version=int(str(row["version"])),
            returned_to=str(row["returned_to"]),
            error=str(row["error"]),
            at=float(str(row["created_at"])),
            status=str(row["status"]),
            return_to=_split(str(row["return_to"])),
        )
        for row in rows
        if row["status"] in ("turned_back", "checking")
    }


def _split(text: str) -> tuple[tuple[str, float], ...]:
    items = json.loads(text or "[]")
    return tuple((str(version_id), float(percentage)) for version_id, percentage in items)
