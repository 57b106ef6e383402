"""Publishing a daemon pass's conditions: the status rows, the resource gauges, the warnings.

Called by the daemon's pass (``runtime/daemon_pass.py``) after every pass that executed. It
calls the pure core's conditions (``core/conditions.py``) on what the pass decided, the status
store (``runtime/status.py``) and the metrics.

Rules (docs/daemon.md, "The loop"):

1. Every pass that leaves a resource ``Synced=False`` logs it at WARNING with the reason, and
   the ``blocked_resources``/``stuck_resources`` gauges count them by reason.
2. Resources that left the specs and the world leave the status and the gauges.
3. A sweep's conditions cover the whole fleet (seconds of CPU at 10,000 sites): they, the
   resources gone and the unsynced ones are worked out off the event loop
   (``runtime/offloop.py``), then written and counted in chunks that yield to it in between,
   so lease renewals and webhooks are served meanwhile.
4. A status store that cannot be written costs a warning, never the pass.
"""

from __future__ import annotations

import asyncio
import logging

from reconciler.core.conditions import conditions_for, gone_resources
from reconciler.core.conditions_common import Condition, ConditionUpdate, Coverage, status_text
from reconciler.core.desired import Desired
from reconciler.core.observed import Observed
from reconciler.core.outcome import Report
from reconciler.errors import ProviderError
from reconciler.runtime.metrics import Metrics, ResourceTally
from reconciler.runtime.offloop import off_loop
from reconciler.runtime.scope import SWEEP_ALL
from reconciler.runtime.status import StatusStore
from reconciler.spec.load import Specs

__all__ = ["StatusPublisher"]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger

_CHUNK = 5_000  # conditions written and counted between two yields to the event loop (rule 3)


class StatusPublisher:
    """Writes what a pass found to the status store and the resource gauges."""

    def __init__(self, *, status: StatusStore, metrics: Metrics) -> None:
        """Write to ``status``; count in ``metrics``."""
        self._status = status
        self._metrics = metrics
        self._tally = ResourceTally()

    async def publish(
        self,
        key: str,
        *,
        specs: Specs,
        desired: Desired,
        observed: Observed,
        report: Report,
        coverage: Coverage,
        now: float,
    ) -> None:
        """The conditions of what a pass of ``key`` covers: stored, counted, warned about."""

        sites = len(coverage.sites)

        def compute() -> tuple[list[ConditionUpdate], list[ConditionUpdate]]:
            found = conditions_for(
                desired=desired, observed=observed, report=report, coverage=coverage, now=now
            )
            return found, _unsynced(found)

        updates, unsynced = await off_loop(sites, compute)
        try:
            for start in range(0, len(updates), _CHUNK):  # rule 3: the loop is never held long
                await self._status.set_many(updates[start : start + _CHUNK])
                await asyncio.sleep(0)
            gone = await self._gone(key, specs, desired, report, sites)
        except ProviderError as exc:
            log.warning("conditions not written", extra={"key": key, "error": str(exc)})
            gone = set()
        tally = self._tally
        for index, update in enumerate(updates):
            if index and not index % _CHUNK:
                await asyncio.sleep(0)
            tally.record(
                update.resource, update.condition, status_text(update.status), update.reason
            )
        tally.drop(gone)
        if len(updates) > _CHUNK:  # the gauges are counted over every resource known
            await asyncio.to_thread(self._metrics.set_tally, tally)
        else:
            self._metrics.set_tally(tally)
        _warn_unsynced(key, unsynced)

    async def _gone(
        self, key: str, specs: Specs, desired: Desired, report: Report, sites: int
    ) -> set[str]:
        """Resources that left the specs and the world: their rows go (rule 2)."""
        kind, _, name = key.partition("/")
        removed = {name} if kind == "Site" and name not in specs.sites else set()
        stored = await self._status.resources() if key == SWEEP_ALL else None
        gone = await off_loop(
            sites,
            lambda: gone_resources(
                desired=desired, report=report, removed_sites=removed, stored=stored
            ),
        )
        if gone:
            await self._status.remove(gone)
            log.info("resources left the status", extra={"key": key, "resources": sorted(gone)})
        return gone


def _unsynced(updates: list[ConditionUpdate]) -> list[ConditionUpdate]:
    """The updates that leave a resource not Synced (rule 1)."""
    synced = Condition.SYNCED.value
    return [update for update in updates if update.condition == synced and update.status is False]


def _warn_unsynced(key: str, unsynced: list[ConditionUpdate]) -> None:
    """One WARNING per pass that leaves resources not Synced, with each one's reason (rule 1)."""
    if not unsynced:
        return
    log.warning(
        "resources not synced",
        extra={
            "key": key,
            "count": len(unsynced),
            "resources": {u.resource: f"{u.reason}: {u.message}" for u in unsynced[:20]},
        },
    )
