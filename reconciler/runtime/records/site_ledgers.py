"""Publish records as the observer reads them: one :class:`SiteLedger` per site, and contents.

``publish_versions`` and ``site_versions`` of the whole fleet (or of a scope) in one query per
table and chunk (package rule 4), and the ``sites`` rows' Pages projects.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Collection, Sequence

from reconciler.core.identity import inputs_from_json
from reconciler.core.observed import PublishRecord, SiteLedger
from reconciler.providers.d1 import Database, Row
from reconciler.runtime.records.sql import epoch, read_rows, to_text

__all__ = ["content_digest", "read_contents", "read_projects", "read_site_ledgers"]


async def read_site_ledgers(db: Database, sites: Collection[str] | None) -> dict[str, SiteLedger]:
    """Every site's publish rows and content versions, as one ledger per site."""
    publishes = await read_rows(
        db,
        "SELECT site_id, version_number, environment, status, deployment_id, attempts, "
        "error_message, created_at, id, build_identity, build_inputs FROM publish_versions",
        "site_id",
        sites,
    )
    # The content digest is the editor's content_hash column; content_json is read only
    # where that column is NULL (then hashed here), so a pass never reads every snapshot.
    versions = await read_rows(
        db,
        "SELECT site_id, version_number, content_hash, CASE WHEN content_hash IS NULL "
        "THEN content_json END AS content_json FROM site_versions",
        "site_id",
        sites,
    )

    def build() -> dict[str, SiteLedger]:
        live, latest = _publish_records(publishes)
        known, digests = _version_digests(versions)
        names = set(live) | set(latest) | set(known)
        return {
            name: SiteLedger(
                site=name,
                live=dict(sorted(live.get(name, {}).items())),
                latest={env: rec for env, (_, rec) in sorted(latest.get(name, {}).items())},
                versions=frozenset(known.get(name, set())),
                content_digests=dict(sorted(digests.get(name, {}).items())),
            )
            for name in sorted(names)
        }

    # A whole fleet's ledgers take seconds to build: off the event loop (the lease renews).
    return build() if sites is not None else await asyncio.to_thread(build)


async def read_projects(db: Database) -> dict[str, str]:
    """Our record of every site's Pages project (whole-fleet reads only)."""
    rows = await read_rows(db, "SELECT id, pages_project FROM sites")
    return {str(row["id"]): str(row["pages_project"]) for row in rows}


async def read_contents(
    db: Database, pairs: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """``site_versions.content_json`` for each (site, version) pair that has one.

    One query per chunk of sites; only the pairs asked for are kept.
    """
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = await read_rows(
        db,
        "SELECT site_id, version_number, content_json FROM site_versions",
        "site_id",
        {site for site, _ in wanted},
    )
    found: dict[tuple[str, int], str] = {}
    for row in rows:
        key = (str(row["site_id"]), int(row["version_number"] or 0))
        if key in wanted and isinstance(row["content_json"], str):
            found[key] = row["content_json"]
    return found


def content_digest(column: str | None, content_json: str | None) -> str | None:
    """A version's content digest: its ``content_hash`` column, else the SHA-256 of its JSON."""
    if column:
        return column.lower()
    if content_json is not None:
        return hashlib.sha256(content_json.encode("utf-8")).hexdigest()
    return None


_Latest = dict[str, dict[str, tuple[tuple[float, int], PublishRecord]]]


def _publish_records(
    publishes: list[Row],
) -> tuple[dict[str, dict[str, PublishRecord]], _Latest]:
    """Per site and environment: the live record, and the newest with its sort key."""
    live: dict[str, dict[str, PublishRecord]] = defaultdict(dict)
    latest: _Latest = defaultdict(dict)
    for row in publishes:
        record = PublishRecord(
            site=str(row["site_id"]),
            environment=str(row["environment"]),
            version=int(row["version_number"] or 0),
            status=str(row["status"]),
            deployment_id=to_text(row["deployment_id"]),
            attempts=int(row["attempts"] or 0),
            error_message=to_text(row["error_message"]),
            created_at=epoch(row["created_at"]) or 0.0,
            build_identity=to_text(row["build_identity"]),
            build_inputs=inputs_from_json(to_text(row["build_inputs"])),
        )
        if record.status == "live":
            live[record.site][record.environment] = record
        order = (record.created_at, int(row["id"] or 0))
        newest = latest[record.site].get(record.environment)
        if newest is None or order > newest[0]:
            latest[record.site][record.environment] = (order, record)
    return live, latest


def _version_digests(
    versions: list[Row],
) -> tuple[dict[str, set[int]], dict[str, dict[int, str]]]:
    """Per site: the version numbers it has, and each one's content digest."""
    known: dict[str, set[int]] = defaultdict(set)
    digests: dict[str, dict[int, str]] = defaultdict(dict)
    for row in versions:
        number = int(row["version_number"] or 0)
        known[str(row["site_id"])].add(number)
        digest = content_digest(to_text(row["content_hash"]), to_text(row["content_json"]))
        if digest is not None:
            digests[str(row["site_id"])][number] = digest
    return known, digests
