"""When a followed commit has converged, and how old the oldest unconverged drift is.

Called by the daemon loop (``runtime/loop.py``) when a new commit queues its keys, and by the
daemon's pass (``runtime/daemon_pass.py``) after every pass. It calls the metrics
(``commit_to_converged_seconds``, ``drift_age``) and the injected clock.

Rules (docs/daemon.md, "The loop"):

1. Converged means converged: a commit is reported converged (log, :attr:`converged`, the
   ``commit_to_converged_seconds`` metric, measured from the commit's committer date) only
   once every key it queued had a pass with nothing failed and nothing blocked. A full sweep
   that does so covers every key.
2. A newer commit converging supersedes the older ones still waiting: its specs replaced theirs.
3. Drift is pending work that failed: it ages from the first pass that left it failed until a
   pass covering its resource leaves it neither pending nor failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from reconciler.core.plan import Plan
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.scope import SWEEP_ALL

__all__ = ["Convergence"]

log = logging.getLogger("reconciler.runtime.loop")


class Convergence:
    """The commits waiting to converge and the drift still pending."""

    def __init__(self, *, clock: Callable[[], float], metrics: Metrics) -> None:
        """Count with ``metrics``; measure with ``clock``."""
        self._clock = clock
        self._metrics = metrics
        self._waiting: dict[str, tuple[float, float, set[str]]] = {}  # seen, committed, keys
        self._order: dict[str, int] = {}
        self._drift_since: dict[str, float] = {}
        self.converged: dict[str, float] = {}  # commit -> seconds from seen to converged

    def queued(self, commit: str, keys: Collection[str], *, seen: float, start: float) -> None:
        """``commit`` (seen at ``seen``, committed at ``start``) queued ``keys``."""
        self._order[commit] = len(self._order)
        if keys:
            self._waiting[commit] = (seen, start, set(keys))
        else:
            self._report(commit, seen, start)

    def note(self, key: str, failed: Mapping[str, object], plan: Plan) -> None:
        """A pass of ``key`` ended; converge the commits it completes (rules 1 and 2)."""
        if failed or plan.blocked:
            return
        for commit, (seen, start, outstanding) in list(self._waiting.items()):
            outstanding.discard(key)
            if key == SWEEP_ALL:
                outstanding.clear()
            if not outstanding:
                del self._waiting[commit]
                self._report(commit, seen, start)
                self._supersede(commit)

    def track_drift(
        self,
        key: str,
        pending: Collection[str],
        now: float,
        sites: Collection[str] | None = None,
    ) -> None:
        """Age the drift a pass of ``key`` left: ``pending``, its failed actions' owners;
        ``sites``: the only sites the pass covered (the moving hostname sweep's)."""
        for owner in pending:
            self._drift_since.setdefault(owner, now)
        for owner in list(self._drift_since):
            if sites is not None:
                covered = owner.removeprefix("Site/") in sites and owner.startswith("Site/")
            else:
                covered = key == owner or key.startswith("Sweep/")
            if covered and owner not in pending:
                del self._drift_since[owner]
        oldest = min(self._drift_since.values(), default=now)
        self._metrics.set_drift_age(now - oldest)

    def _supersede(self, commit: str) -> None:
        """Stop waiting for commits older than ``commit``: its specs replaced theirs."""
        for older in list(self._waiting):
            if self._order.get(older, 0) < self._order.get(commit, 0):
                del self._waiting[older]

    def _report(self, commit: str, seen: float, committed: float) -> None:
        """Report ``commit`` converged: ``converged`` keeps the seconds since it was seen, the
        metric the seconds since its committer date (poll delay included, rule 1)."""
        now = self._clock()
        seconds = max(0.0, now - seen)
        self.converged[commit] = seconds
        since_commit = max(0.0, now - committed)
        self._metrics.observe_converged(since_commit)
        log.info(
            "commit converged",
            extra={
                "commit": commit,
                "seconds": round(seconds, 3),
                "since_commit_s": round(since_commit, 3),
            },
        )
