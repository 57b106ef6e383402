"""Publish records: ``publish_versions`` rows from ``building`` to ``live`` or ``failed``.

The handlers' writes (a publish's row, a rollback's new live row, a blocked publish's failure)
and the reads a publish needs first (the unfinished or live row, the version's content snapshot
in ``site_versions``, the stored budget). A publish going live supersedes the previous live row
and refreshes ``performance_budgets`` in the same batch (the partial unique index allows one
live row per site and environment). A publish's statements are built here and sent by its
handler or, sharing round trips, by the executor with the intent journal's batches
(``runtime/journal.py`` rule 5). The observer's read is :mod:`.site_ledgers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.providers.d1 import Row, SqlValue, Statement, StatementResult
from reconciler.runtime.records.budgets import SIZE_COLUMNS, BuildSizes, size_values, went_live
from reconciler.runtime.records.sql import TableGroup, ensure_site, iso, to_int, to_str

__all__ = [
    "BuildRecord",
    "BuildSizes",
    "OpenedPublish",
    "PublishRecords",
    "PublishRow",
    "PublishTarget",
]


@dataclass(frozen=True, slots=True)
class PublishRow:
    """A row of ``publish_versions``."""

    id: int
    site: str
    environment: str
    version: int
    status: str
    deployment_id: str | None
    attempts: int
    content_hash: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class OpenedPublish:
    """What :meth:`PublishRecords.open_publish` found and wrote, in one batch."""

    row_id: int  # the publish row this attempt writes to
    reused: bool  # an unfinished (building or deploying) row of the version was reused
    content: tuple[str, str | None] | None  # (content_json, content_hash); None: no snapshot
    budget: dict[str, int] | None  # the limits stored in performance_budgets, if any


@dataclass(frozen=True, slots=True)
class PublishTarget:
    """Which publish a row is of: the site (its tenant, its Pages project), where, what."""

    site: str
    tenant: str
    project: str
    environment: str
    version: int
    commit: str | None


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """What a publish row records of the build it deployed (written when it goes live)."""

    content_hash: str
    sizes: BuildSizes
    identity: str | None
    inputs: str | None


_PUBLISH_COLUMNS = (
    "id, site_id, environment, version_number, status, deployment_id, attempts, content_hash, "
    "error_message"
)
_UNFINISHED = (
    "FROM publish_versions WHERE site_id = ? AND environment = ? AND version_number = ? "
    "AND status IN ('building', 'deploying')"
)
_NONE_UNFINISHED = f"NOT EXISTS (SELECT 1 {_UNFINISHED})"
_CONTENT = "SELECT content_json, content_hash FROM site_versions WHERE site_id = ? "
_BUDGET = (
    "SELECT max_js_kb, max_css_kb, max_third_party_scripts FROM performance_budgets "
    "WHERE site_id = ?"
)


def _publish_row(row: Mapping[str, SqlValue]) -> PublishRow:
    return PublishRow(
        id=to_int(row["id"]),
        site=str(row["site_id"]),
        environment=str(row["environment"]),
        version=to_int(row["version_number"]),
        status=str(row["status"]),
        deployment_id=to_str(row["deployment_id"]),
        attempts=to_int(row["attempts"], 1),
        content_hash=to_str(row["content_hash"]),
        error_message=to_str(row["error_message"]),
    )


def _content(rows: Sequence[Row]) -> tuple[str, str | None] | None:
    if not rows or to_str(rows[0]["content_json"]) is None:
        return None
    return str(rows[0]["content_json"]), to_str(rows[0]["content_hash"])


def _budget(rows: Sequence[Row]) -> dict[str, int] | None:
    return {key: to_int(value) for key, value in rows[0].items()} if rows else None


class PublishRecords(TableGroup):
    """The handlers' ``publish_versions`` rows, and the reads a publish needs first."""

    async def _one_publish(self, where: str, params: tuple[SqlValue, ...]) -> PublishRow | None:
        rows = await self.db.query(f"SELECT {_PUBLISH_COLUMNS} {where}", params)
        return _publish_row(rows[0]) if rows else None

    async def live_publish(self, site: str, environment: str) -> PublishRow | None:
        """The ``live`` row of a site and environment, if any."""
        return await self._one_publish(
            "FROM publish_versions WHERE site_id = ? AND environment = ? AND status = 'live' "
            "ORDER BY id DESC LIMIT 1",
            (site, environment),
        )

    async def latest_publish(self, site: str, environment: str) -> PublishRow | None:
        """The newest ``publish_versions`` row of a site and environment, if any."""
        return await self._one_publish(
            "FROM publish_versions WHERE site_id = ? AND environment = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            (site, environment),
        )

    def open_statements(
        self,
        target: PublishTarget,
        *,
        attempt: int,
        now: float,
        unless: Statement | None = None,
    ) -> list[Statement]:
        """Reuse the unfinished row of this version or start a ``building`` one; read inputs.

        Without an unfinished row the tenant and site rows are upserted and a ``building`` row
        inserted (each statement guarded by :func:`_only_if_new`); with one, nothing is
        written. The same statements read the version's content snapshot and the stored
        budget, which the build needs next. ``unless`` (a condition and its parameters, from
        the intent journal) guards the writes further: when it is false nothing is written.
        """
        site, version = target.site, target.version
        key: tuple[SqlValue, ...] = (site, target.environment, version)
        start = ensure_site(site, target.tenant, target.project, now, update=True)
        start.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "commit_sha, attempts, created_at, build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'building', ?, ?, ?, NULL, NULL) RETURNING id",
                (site, version, target.environment, target.commit, attempt, iso(now)),
            )
        )
        return [
            Statement(f"SELECT id {_UNFINISHED} ORDER BY id DESC LIMIT 1", key),
            *(_only_if_new(statement, key, unless) for statement in start),
            Statement(_CONTENT + "AND version_number = ?", (site, version)),
            Statement(_BUDGET, (site,)),
        ]

    def opened(self, results: Sequence[StatementResult]) -> OpenedPublish:
        """What :meth:`open_statements` found and wrote, from their results in order."""
        unfinished, inserted = results[0].rows, results[3]
        if unfinished:
            row_id = to_int(unfinished[0]["id"])
        elif inserted.rows:
            row_id = to_int(inserted.rows[0]["id"])
        else:
            row_id = inserted.last_row_id
        return OpenedPublish(
            row_id=row_id,
            reused=bool(unfinished),
            content=_content(results[4].rows),
            budget=_budget(results[5].rows),
        )

    def unused(self, opened: OpenedPublish) -> list[Statement]:
        """Delete the ``building`` row :meth:`opened` started, when the publish was done already."""
        if opened.reused:
            return []
        return [
            Statement(
                "DELETE FROM publish_versions WHERE id = ? AND status = 'building'",
                (opened.row_id,),
            )
        ]

    def failed_statements(
        self,
        row_id: int,
        message: str,
        *,
        now: float,
        sizes: BuildSizes | None = None,
        deployment_id: str | None = None,
        build_identity: str | None = None,
        build_inputs: str | None = None,
        content_hash: str | None = None,
    ) -> list[Statement]:
        """The attempt failed: ``failed`` with ``error_message`` (runbook 1 reads it).

        With the build identity it failed under (when given) and what is known of the build.
        """
        statements = []
        if build_identity is not None:
            statements.append(
                Statement(
                    "UPDATE publish_versions SET build_identity = ?, build_inputs = ? WHERE id = ?",
                    (build_identity, build_inputs, row_id),
                )
            )
        statements.append(
            Statement(
                "UPDATE publish_versions SET status = 'failed', error_message = ?, "
                "completed_at = ?, js_kb = COALESCE(?, js_kb), css_kb = COALESCE(?, css_kb), "
                "third_party_scripts = COALESCE(?, third_party_scripts), "
                "image_kb = COALESCE(?, image_kb), page_weight_kb = COALESCE(?, page_weight_kb), "
                "deployment_id = COALESCE(?, deployment_id), "
                "content_hash = COALESCE(?, content_hash) WHERE id = ?",
                (message, iso(now), *size_values(sizes), deployment_id, content_hash, row_id),
            )
        )
        return statements

    async def record_publish_failure(
        self,
        target: PublishTarget,
        *,
        content_hash: str | None,
        error_message: str,
        sizes: BuildSizes | None,
        now: float,
        build_identity: str | None = None,
        build_inputs: str | None = None,
    ) -> None:
        """One batch: the tenant and site rows if missing, and one ``failed`` publish row.

        For a publish the planner blocked because its in-memory build failed or was over
        budget: nothing was uploaded, so the row has no deployment.
        """
        statements = ensure_site(target.site, target.tenant, target.project, now, update=False)
        statements.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                f"content_hash, commit_sha, attempts, {SIZE_COLUMNS}, error_message, "
                "created_at, completed_at, build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'failed', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    target.site,
                    target.version,
                    target.environment,
                    content_hash,
                    target.commit,
                    *size_values(sizes),
                    error_message,
                    iso(now),
                    iso(now),
                    build_identity,
                    build_inputs,
                ),
            )
        )
        await self.db.batch(statements)

    def live_statements(
        self,
        row_id: int,
        target: PublishTarget,
        *,
        deployment_id: str,
        url: str,
        now: float,
        build: BuildRecord,
        budget: Mapping[str, int] | None,
    ) -> list[Statement]:
        """The row goes ``live`` with what it built, the previous live row ``superseded``,
        the site's version and the budget's sizes: statements for one batch."""
        statements = went_live(target, keep=row_id, now=now, sizes=build.sizes, budget=budget)
        statements.insert(
            1,
            Statement(
                "UPDATE publish_versions SET status = 'live', deployment_id = ?, "
                "deployment_url = ?, completed_at = ?, error_message = NULL, content_hash = ?, "
                "js_kb = ?, css_kb = ?, third_party_scripts = ?, image_kb = ?, page_weight_kb = ?, "
                "commit_sha = COALESCE(?, commit_sha), "
                "build_identity = COALESCE(?, build_identity), "
                "build_inputs = COALESCE(?, build_inputs) WHERE id = ?",
                (
                    deployment_id,
                    url or None,
                    iso(now),
                    build.content_hash,
                    *size_values(build.sizes),
                    target.commit,
                    build.identity,
                    build.inputs,
                    row_id,
                ),
            ),
        )
        return statements

    async def _earlier_build(
        self, deployment_id: str
    ) -> tuple[Mapping[str, SqlValue], BuildSizes | None]:
        """The newest row of ``deployment_id``: its columns, and its sizes when it has them."""
        earlier = await self.db.query(
            f"SELECT content_hash, {SIZE_COLUMNS}, build_identity, build_inputs "
            "FROM publish_versions WHERE deployment_id = ? ORDER BY id DESC LIMIT 1",
            (deployment_id,),
        )
        known = earlier[0] if earlier else {}
        if known.get("js_kb") is None or known.get("css_kb") is None:
            return known, None
        return known, BuildSizes(
            js_kb=to_int(known["js_kb"]),
            css_kb=to_int(known["css_kb"]),
            third_party_scripts=to_int(known.get("third_party_scripts")),
            image_kb=to_int(known.get("image_kb")),
            page_weight_kb=to_int(known.get("page_weight_kb")),
        )

    async def record_rollback(
        self,
        target: PublishTarget,
        *,
        deployment_id: str,
        url: str,
        now: float,
        budget: Mapping[str, int] | None = None,
    ) -> None:
        """One batch: a new ``live`` row for ``deployment_id``, superseding the live one."""
        known, sizes = await self._earlier_build(deployment_id)
        live = went_live(target, keep=None, now=now, sizes=sizes, budget=budget)
        site, environment = target.site, target.environment
        statements = ensure_site(site, target.tenant, target.project, now, update=True)
        statements.append(
            Statement(
                "UPDATE publish_versions SET status = 'superseded', error_message = "
                "COALESCE(error_message, ?), completed_at = ? WHERE site_id = ? "
                "AND environment = ? AND status IN ('building', 'deploying')",
                (
                    f"interrupted; production rolled back to deployment {deployment_id}",
                    iso(now),
                    site,
                    environment,
                ),
            )
        )
        statements.append(live[0])  # the previous live row: superseded
        statements.append(
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, environment, status, "
                "deployment_id, deployment_url, content_hash, commit_sha, attempts, "
                f"{SIZE_COLUMNS}, created_at, completed_at, build_identity, build_inputs) "
                "VALUES (?, ?, ?, 'live', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    site,
                    target.version,
                    environment,
                    deployment_id,
                    url or None,
                    to_str(known.get("content_hash")),
                    target.commit,
                    *size_values(sizes),
                    iso(now),
                    iso(now),
                    to_str(known.get("build_identity")),
                    to_str(known.get("build_inputs")),
                ),
            )
        )
        statements += live[1:]  # the site's version, the budget's sizes
        await self.db.batch(statements)


def _only_if_new(
    statement: Statement, key: tuple[SqlValue, ...], unless: Statement | None
) -> Statement:
    """``INSERT ... VALUES (v) tail`` as ``INSERT ... SELECT v WHERE <no unfinished row> tail``.

    ``key`` is (site, environment, version); ``unless`` a further condition (``AND``-ed). The
    values hold only placeholders and literals without parentheses, and the tail
    (``ON CONFLICT ...``, ``RETURNING id``) no placeholder, so the guards' parameters follow
    the values'.
    """
    head, _, rest = statement.sql.partition(" VALUES (")
    values, _, tail = rest.partition(")")
    where, params = _NONE_UNFINISHED, (*statement.params, *key)
    if unless is not None:
        where, params = f"{where} AND {unless.sql}", (*params, *unless.params)
    return Statement(f"{head} SELECT {values} WHERE {where}{tail}", params)
