"""Plan and carry out a restore of the database to the point before a migration (runbook 5).

Called by ``commands/migrate.py`` (``reconciler migrate --restore-before NNNN`` and
``--restore-to BOOKMARK``). :func:`plan_restore` reads the ledger (``d1_migrations`` and
``runtime/restore_points.py``) and says what a restore undoes: which applied migrations, and
every write since the point was taken, app data included, over which time span. Nothing is
restored without that plan: the command prints it and asks (or takes ``--yes``), then
:func:`restore` sends it through a :class:`~reconciler.providers.d1_restore.RestorePoints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.errors import MigrationError
from reconciler.providers.d1 import Database, SqlValue, Statement
from reconciler.providers.d1_restore import Restored, RestorePoints
from reconciler.runtime.restore_points import RestorePoint, read_restore_points

__all__ = ["RestorePlan", "UndoneMigration", "plan_restore", "render_plan", "restore"]

_MIGRATIONS = "d1_migrations"


@dataclass(frozen=True, slots=True)
class UndoneMigration:
    """An applied migration that the restore takes away."""

    name: str
    applied_at: str


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """What restoring to ``bookmark`` does, computed before anything is changed."""

    bookmark: str
    target: str | None  # the migration whose restore point it is (None: not in the ledger)
    taken_at: str | None  # when the point was taken (None: unknown)
    now: str  # the database's clock when planned
    undone: tuple[UndoneMigration, ...]

    @property
    def span(self) -> str | None:
        """``"1h 02m 05s"`` between the point and now, when both are known."""
        if self.taken_at is None:
            return None
        seconds = int((_parse(self.now) - _parse(self.taken_at)).total_seconds())
        hours, rest = divmod(max(seconds, 0), 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}h {minutes:02d}m {secs:02d}s"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("T", " "))


async def _applied(db: Database) -> list[tuple[int, str, str]]:
    present = await db.query(
        "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?", (_MIGRATIONS,)
    )
    if not present:
        return []
    rows = await db.query(f"SELECT id, name, applied_at FROM {_MIGRATIONS} ORDER BY id")
    return [(int(str(row["id"])), str(row["name"]), str(row["applied_at"])) for row in rows]


def _matches(name: str, selector: str) -> bool:
    """``0006``, ``6``, ``0006_x`` and ``0006_x.sql`` all name ``0006_x.sql``."""
    stem = name.removesuffix(".sql")
    if selector in (name, stem):
        return True
    head = stem.split("_", 1)[0]
    return selector.isdigit() and head.isdigit() and int(head) == int(selector)


def _find_point(points: dict[str, RestorePoint], selector: str) -> RestorePoint:
    found = [point for name, point in points.items() if _matches(name, selector)]
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(point.name for point in found)
        raise MigrationError(f"{selector!r} names several migrations ({names}); give the file name")
    raise MigrationError(
        f"no restore point recorded before migration {selector!r}: only migrations applied by "
        "`reconciler migrate` since restore points were kept have one "
        "(`reconciler migrate --status` lists them)"
    )


def _undone_after(
    applied: list[tuple[int, str, str]], points: dict[str, RestorePoint], point: RestorePoint
) -> tuple[UndoneMigration, ...]:
    """Applied migrations that came at or after ``point``: the target and everything later."""
    by_name = {name: (row_id, applied_at) for row_id, name, applied_at in applied}
    if point.name in by_name:
        first = by_name[point.name][0]
        return tuple(UndoneMigration(n, at) for row_id, n, at in applied if row_id >= first)
    order = list(points)  # ledger order: the point's own migration failed or was never applied
    later = set(order[order.index(point.name) + 1 :])
    return tuple(UndoneMigration(n, at) for _, n, at in applied if n in later)


async def plan_restore(
    db: Database, *, before: str | None = None, bookmark: str | None = None
) -> RestorePlan:
    """What a restore to the point before migration ``before`` (or to ``bookmark``) undoes.

    Raises:
        MigrationError: no such restore point, or the selector is ambiguous.
    """
    if (before is None) == (bookmark is None):
        raise ValueError("give exactly one of before= and bookmark=")
    points = await read_restore_points(db)
    applied = await _applied(db)
    now = str((await db.query("SELECT CURRENT_TIMESTAMP AS now"))[0]["now"])
    if before is not None:
        point: RestorePoint | None = _find_point(points, before)
    else:
        point = next((p for p in points.values() if p.bookmark == bookmark), None)
    if point is None:
        unknown = bookmark or ""
        return RestorePlan(bookmark=unknown, target=None, taken_at=None, now=now, undone=())
    return RestorePlan(
        bookmark=point.bookmark,
        target=point.name,
        taken_at=point.taken_at,
        now=now,
        undone=_undone_after(applied, points, point),
    )


def render_plan(plan: RestorePlan, where: str) -> list[str]:
    """The plan as the lines the command prints before asking."""
    lines = [f"restore {where} to {plan.bookmark}"]
    if plan.target is not None:
        lines.append(f"  the point taken before {plan.target} at {plan.taken_at} UTC")
        lines.append(
            f"  every write since then is undone ({plan.span} up to {plan.now} UTC), "
            "app data as well as schema"
        )
    else:
        lines.append(
            "  this bookmark is not in the restore-point ledger: every write since it was "
            "taken is undone, and which migrations that takes away cannot be listed beforehand"
        )
    if plan.undone:
        lines.append(f"  migrations undone ({len(plan.undone)}):")
        lines.extend(f"    {item.name}  applied at {item.applied_at}" for item in plan.undone)
    elif plan.target is not None:
        lines.append("  migrations undone: none (the migration did not apply)")
    lines.append("  afterwards `reconciler migrate` applies pending migrations again")
    return lines


async def restore(points: RestorePoints, plan: RestorePlan, db: Database) -> Restored:
    """Carry out ``plan``: the whole database back to its bookmark, but for the leader lease.

    The ``leases`` table says which live process leads now (``runtime/lease.py``); a restore
    point taken while a migration held it would otherwise bring back a lease of a process that
    is gone. Its rows are read before the restore and written back after it.
    """
    leases = await _leases(db)
    done = await points.restore(plan.bookmark)
    if leases is not None:
        statements = [Statement("DELETE FROM leases")]
        for row in leases:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            statements.append(
                Statement(f"INSERT INTO leases ({names}) VALUES ({marks})", tuple(row.values()))
            )
        await db.batch(statements)
    return done


async def _leases(db: Database) -> list[dict[str, SqlValue]] | None:
    present = await db.query(
        "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'leases'"
    )
    if not present:
        return None
    return [dict(row) for row in await db.query("SELECT * FROM leases")]
