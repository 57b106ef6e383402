"""The Pages simulator's values: a project, its deployments and their staged lifecycle.

Held by :class:`~reconciler.sandbox.cloudflare_pages.PagesStore` (which re-exports them); pure
values that read time only from the ``now`` they are given.

Stages are computed lazily from the virtual clock: a deployment created at ``t`` runs stage
``i`` (queued, initialize, clone_repo, build, deploy) from ``t + i·d`` to ``t + (i+1)·d``, with
``d`` = ``stage_seconds``. A behaviour can make it fail at a stage (that stage ends in
``failure`` and later ones stay ``idle``) or stick in one (that stage stays ``active``).
The live production deployment is the one that most recently became live: a production
deployment becomes live when its deploy stage succeeds, a rollback target when it is rolled
back to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.sandbox.cloudflare_common import iso

STAGES = ("queued", "initialize", "clone_repo", "build", "deploy")

Mode = Literal["normal", "fail", "stick"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a deployment moves: normally, failing at ``stage``, or stuck in ``stage``."""

    mode: Mode = "normal"
    stage: str = "deploy"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Behaviour:
        """Parse ``{"mode": "fail"|"stick"|"normal", "stage": "build"}``."""
        mode = data.get("mode", "normal")
        stage = data.get("stage", "deploy")
        if mode not in ("normal", "fail", "stick"):
            raise ValueError("mode must be normal, fail or stick")
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        return cls(mode=mode, stage=stage)


NORMAL = Behaviour()


@dataclass(slots=True)
class Deployment:
    """One deployment and what it was created from."""

    id: str
    project: str
    environment: str
    branch: str
    commit_hash: str
    commit_message: str
    commit_dirty: bool
    manifest: dict[str, str]
    files: list[str]
    created: float
    stage_seconds: float
    behaviour: Behaviour
    missing_assets: list[str] = field(default_factory=list)
    rolled_back_at: float | None = None

    @property
    def short_id(self) -> str:
        """The 8-character short id."""
        return self.id[:8]

    def stage_list(self, now: float) -> list[dict[str, Any]]:
        """The five stages as of ``now``."""
        out: list[dict[str, Any]] = []
        stop = STAGES.index(self.behaviour.stage) if self.behaviour.mode != "normal" else None
        for i, name in enumerate(STAGES):
            start = self.created + i * self.stage_seconds
            end = start + self.stage_seconds
            halted = stop is not None and i > stop
            if halted or now < start:
                out.append({"name": name, "started_on": None, "ended_on": None, "status": "idle"})
                continue
            stuck = stop == i and self.behaviour.mode == "stick"
            if stuck or now < end:
                out.append(
                    {"name": name, "started_on": iso(start), "ended_on": None, "status": "active"}
                )
                continue
            failed = stop == i and self.behaviour.mode == "fail"
            out.append(
                {
                    "name": name,
                    "started_on": iso(start),
                    "ended_on": iso(end),
                    "status": "failure" if failed else "success",
                }
            )
        return out

    def succeeded_at(self) -> float | None:
        """When the deploy stage succeeds (possibly in the future); None if it never does."""
        if self.behaviour.mode != "normal":
            return None
        return self.created + len(STAGES) * self.stage_seconds

    def is_success(self, now: float) -> bool:
        """Whether the deploy stage has succeeded by ``now``."""
        done = self.succeeded_at()
        return done is not None and done <= now

    def modified(self, now: float) -> float:
        """The last transition at or before ``now``."""
        last = self.created
        for i in range(len(STAGES) + 1):
            t = self.created + i * self.stage_seconds
            if t <= now:
                last = t
        if self.behaviour.mode != "normal":
            stop = STAGES.index(self.behaviour.stage)
            limit = self.created + (stop + (0 if self.behaviour.mode == "stick" else 1)) * (
                self.stage_seconds
            )
            last = min(last, limit)
        if self.rolled_back_at is not None and self.rolled_back_at <= now:
            last = max(last, self.rolled_back_at)
        return last


@dataclass(slots=True)
class Project:
    """One Pages project and its deployments (insertion order = creation order)."""

    id: str
    name: str
    production_branch: str
    created: float
    deployments: dict[str, Deployment] = field(default_factory=dict)
    queued_behaviours: list[Behaviour] = field(default_factory=list)
    default_behaviour: Behaviour = NORMAL
    upload_jwts: dict[str, float] = field(default_factory=dict)
    assets: set[str] = field(default_factory=set)
    asset_bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def subdomain(self) -> str:
        """``<name>.pages.dev``."""
        return f"{self.name}.pages.dev"

    def next_behaviour(self) -> Behaviour:
        """The behaviour for the next deployment (queued ones first)."""
        if self.queued_behaviours:
            return self.queued_behaviours.pop(0)
        return self.default_behaviour

    def live(self, now: float) -> Deployment | None:
        """The deployment serving production at ``now`` (see the module docstring)."""
        best: tuple[float, int, Deployment] | None = None
        for order, dep in enumerate(self.deployments.values()):
            if dep.environment != "production":
                continue
            times = []
            done = dep.succeeded_at()
            if done is not None and done <= now:
                times.append(done)
            if dep.rolled_back_at is not None and dep.rolled_back_at <= now:
                times.append(dep.rolled_back_at)
            if times:
                candidate = (max(times), order, dep)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
        return best[2] if best else None
