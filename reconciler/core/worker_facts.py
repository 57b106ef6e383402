"""The platform's own Workers as facts: what the specs ask, what Cloudflare shows, what D1 recalls.

Pure values shared by ``core/desired.py`` (:func:`desired_worker`), ``core/observed.py``
(``Observed.workers``, ``Observed.worker_rollouts``) and ``core/plan_workers.py``. A Worker's
traffic is a *split*: ``((version number, percentage), ...)`` totalling 100, the largest share
first; production alone is ``((n, 100),)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.spec_view import WorkerDocument

Split = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class HealthGate:
    """The health check a rollout must pass: GET ``url`` answers one of ``expect``."""

    url: str
    expect: tuple[int, ...]
    steps: tuple[int, ...]  # percentages the new version takes before 100 %, each checked


@dataclass(frozen=True, slots=True)
class DesiredWorker:
    """One Worker document, derived: which versions serve, and how a move is checked."""

    name: str  # metadata.name
    script: str
    split: Split
    health: HealthGate | None


@dataclass(frozen=True, slots=True)
class ObservedWorker:
    """A Worker as its versions and deployments API shows it."""

    script: str
    versions: Mapping[int, str]  # number -> version id (every deployable version)
    serving: tuple[tuple[str, float], ...]  # the newest deployment: (version id, percentage)

    def split(self) -> Split | None:
        """The serving deployment as version numbers (None: it names an unknown version)."""
        numbers = {version_id: number for number, version_id in self.versions.items()}
        out: list[tuple[int, int]] = []
        for version_id, percentage in self.serving:
            if version_id not in numbers:
                return None
            out.append((numbers[version_id], round(percentage)))
        return tuple(sorted(out, key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True, slots=True)
class WorkerRollout:
    """A Worker's newest rollout when it is not simply live (D1 ``worker_rollouts``).

    ``turned_back``: the health gate returned traffic to ``returned_to``; ``checking``: a run
    deployed ``version`` and stopped before judging its health check (``return_to`` is the last
    good split, by version id), so the next pass checks again.
    """

    script: str
    version: int  # the version of the rollout
    returned_to: str  # the split traffic went back to, in words ("version 2 at 100 %")
    error: str
    at: float
    status: str = "turned_back"  # turned_back | checking
    return_to: tuple[tuple[str, float], ...] = ()


def desired_worker(name: str, worker: WorkerDocument) -> DesiredWorker:
    """A Worker spec as desired facts."""
    spec = worker.spec
    if spec.canary is None:
        split: Split = ((spec.production.version, 100),)
    else:
        canary = (spec.canary.version, spec.canary.percentage)
        production = (spec.production.version, 100 - spec.canary.percentage)
        split = tuple(sorted((production, canary), key=lambda item: (-item[1], item[0])))
    check = spec.health_check
    health = (
        None
        if check is None
        else HealthGate(url=check.url, expect=tuple(check.expect), steps=tuple(check.steps))
    )
    return DesiredWorker(name=name, script=spec.script, split=split, health=health)


def describe(split: Split) -> str:
    """``version 3 at 10 % and version 2 at 90 %``."""
    return " and ".join(f"version {number} at {percentage} %" for number, percentage in split)
