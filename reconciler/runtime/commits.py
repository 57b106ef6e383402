"""What a followed commit brings the daemon: its specs, the keys its diff names, its approvals.

Called by the daemon loop (``runtime/loop.py``) for every new head the Git follower reports
(``runtime/gitfollow.py``) and once by ``run --once``. It calls the follower (in worker threads:
Git is blocking), the source state (``runtime/source.py``), the approvals ledger
(``runtime/approvals.py``) and the status store.

Rules (docs/daemon.md, "The loop"):

1. An invalid head commit is a condition of the source: the last good commit keeps being
   served (:meth:`CommitIntake.read` returns None).
2. A commit whose diff cannot be computed (the first, or one after specs without a revision)
   names everything (:data:`~reconciler.runtime.scope.SWEEP_ALL`).
3. A key's lane (:func:`lanes`): ``change``, or ``urgent`` for a site whose production version
   was lowered (a revert: a rollback to an existing deployment) and for a tenant whose manual
   lock was lifted in the specs. A tenant key named by a commit reads everything.
4. Deletions over the blast-radius cap go ahead only when a followed commit approves them by
   name (``Approve-Deletion: Site/<name>`` trailer): :meth:`CommitIntake.plan_settings`.
5. The commit's convergence is measured from its committer date (poll delay included), or
   from when it was seen when the committer date is later or unknown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from reconciler.core.conditions_common import ConditionUpdate
from reconciler.core.lane import Lane
from reconciler.core.plan import PlanSettings
from reconciler.errors import LoadError, ProviderError, SpecError
from reconciler.runtime.approvals import ApprovalLedger
from reconciler.runtime.daemon_parts import DaemonParts
from reconciler.runtime.gitfollow import ChangeSet
from reconciler.runtime.scope import SWEEP_ALL
from reconciler.runtime.source import SourceState
from reconciler.spec.load import Specs
from reconciler.spec.models import Access

__all__ = ["CommitIntake", "NewCommit", "lanes"]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger


@dataclass(frozen=True, slots=True)
class NewCommit:
    """A valid new head: its specs, what changed, whether it approved deletions, and when."""

    commit: str
    specs: Specs
    changes: ChangeSet
    approved: bool
    seen: float
    start: float  # the moment its convergence is measured from (rule 5)


class CommitIntake:
    """Reads new commits through the follower; keeps the source's state and the approvals."""

    def __init__(self, parts: DaemonParts) -> None:
        """Read through ``parts.follower``; write the source condition to ``parts.status``."""
        self._parts = parts
        self.source = SourceState(branch=parts.follower.branch)
        self.approvals = ApprovalLedger()

    async def read(self, new: str, previous: Specs | None) -> NewCommit | None:
        """The commit ``new`` read against the specs served (None: invalid, refused)."""
        follower = self._parts.follower
        seen = self._parts.clock()
        committed = await asyncio.to_thread(follower.committed_at, new)
        try:
            specs = await asyncio.to_thread(follower.specs_at, new)
        except (SpecError, LoadError) as exc:
            await self._refuse(new, exc)
            return None
        changes = (
            ChangeSet(all=True)
            if previous is None or previous.revision is None
            else await asyncio.to_thread(follower.changed, previous.revision, new)
        )
        approved = await self.read_approvals(previous, new, specs)
        start = committed if committed is not None and committed <= seen else seen
        return NewCommit(new, specs, changes, bool(approved), seen, start)

    async def accept(self, commit: str) -> None:
        """``commit``'s specs are served now: the source condition says so."""
        await self._write_source(self.source.accept(commit))

    async def read_approvals(self, previous: Specs | None, new: str, specs: Specs) -> list[str]:
        """Read the new commits' ``Approve-Deletion`` trailers; return the new approvals."""
        since = previous.revision if previous is not None else None
        try:
            found = await asyncio.to_thread(self._parts.follower.approvals, since, new)
        except LoadError as exc:
            log.warning("approvals not read", extra={"commit": new, "error": str(exc)})
            return []
        for value in found.ignored:
            log.warning(
                "approval ignored: name Site/<name> or Hostname/<name>", extra={"value": value}
            )
        if self.approvals.approved:  # a walk of every declared name: off the event loop
            await asyncio.to_thread(self.approvals.prune, specs)
        added = self.approvals.add(found)
        if added:
            log.info(
                "deletions approved in Git",
                extra={"commit": new, "approved": {k: found.approved[k] for k in added}},
            )
        return added

    def plan_settings(self) -> PlanSettings:
        """The planner's settings with the deletions approved in Git (rule 4)."""
        base = self._parts.plan_settings
        if not self.approvals.approved:
            return base
        return replace(
            base, approved_deletions={**base.approved_deletions, **self.approvals.approved}
        )

    async def _refuse(self, commit: str, error: Exception) -> None:
        """An invalid head: a condition of the source; the last good commit stays served."""
        update = self.source.refuse(commit, error)
        log.error(
            "the specs at the new commit are invalid; still reconciling the last good commit",
            extra={
                "commit": commit,
                "serving": self.source.serving,
                "error": str(error),
                "problems": list(self.source.problems),
            },
        )
        await self._write_source(update)

    async def _write_source(self, update: ConditionUpdate) -> None:
        self._parts.metrics.set_source(valid=self.source.valid, problems=self.source.count)
        try:
            await self._parts.status.set_many([update])
        except ProviderError as exc:
            log.warning("source condition not written", extra={"error": str(exc)})


def lanes(changes: ChangeSet, old: Specs | None, new: Specs) -> list[tuple[str, Lane]]:
    """The keys a commit's diff names, each with its lane (rules 2 and 3)."""
    if changes.all:
        return [(SWEEP_ALL, Lane.CHANGE)]
    queued: list[tuple[str, Lane]] = []
    named = changes.keys()
    for key in named:
        kind, _, name = key.partition("/")
        lane = Lane.CHANGE
        if kind == "Tenant":
            if _lock_lifted(old, new, name):
                lane = Lane.URGENT
        elif _version_lowered(old, new, name):
            lane = Lane.URGENT  # a revert: a rollback to an existing deployment
        queued.append((key, lane))
    return queued


def _version_lowered(old: Specs | None, new: Specs, site: str) -> bool:
    if old is None or site not in old.sites or site not in new.sites:
        return False
    return new.sites[site].spec.production.version < old.sites[site].spec.production.version


def _lock_lifted(old: Specs | None, new: Specs, tenant: str) -> bool:
    if old is None or tenant not in old.tenants or tenant not in new.tenants:
        return False
    locked = (Access.SOFT_LOCKED, Access.HARD_LOCKED)
    return old.tenants[tenant].spec.access in locked and (
        new.tenants[tenant].spec.access not in locked
    )
