"""The Worker spec: which version of one of the platform's own Workers serves, and its health check.

Per-document checks: the canary is another version than production, the health check expects
HTTP statuses and its split steps rise within 1-99. ``reconciler.spec.models`` wraps the spec in
its document and re-exports it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, model_validator

from reconciler.spec.models_base import FieldCheck, Strict, raise_unless_deferred

__all__ = [
    "HealthCheck",
    "HealthUrl",
    "WorkerCanary",
    "WorkerScriptName",
    "WorkerSpec",
    "WorkerVersion",
]

# --- Worker ------------------------------------------------------------------------------

WorkerScriptName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$",
        max_length=63,
        description="The Worker script's name on the account, e.g. site-builder-api-production.",
    ),
]
HealthUrl = Annotated[
    str,
    Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        max_length=2048,
        description="The URL the health check GETs (http:// only for loopback test worlds).",
    ),
]


class WorkerVersion(Strict):
    """A Worker version, by Cloudflare's sequential version number."""

    version: int = Field(ge=1, description="The version's number (as `wrangler versions list`).")


class WorkerCanary(Strict):
    """A gradual split: this version takes ``percentage`` of the traffic, production the rest."""

    version: int = Field(ge=1)
    percentage: int = Field(ge=1, le=99)


class HealthCheck(Strict):
    """What a healthy rollout answers: ``url`` must return one of ``expect``."""

    url: HealthUrl
    expect: tuple[int, ...] = Field(default=(200,), min_length=1)
    steps: tuple[int, ...] = Field(
        default=(),
        description="Split schedule: percentages the new version takes, checked at each step, "
        "before it takes 100 % (e.g. [10, 50]).",
    )

    def checks(self) -> list[FieldCheck]:
        """Statuses are HTTP statuses; steps rise strictly within 1-99."""
        found: list[FieldCheck] = []
        for index, status in enumerate(self.expect):
            if not 100 <= status <= 599:
                found.append((f"expect[{index}]", f"{status} is not an HTTP status"))
        for index, step in enumerate(self.steps):
            low = self.steps[index - 1] if index else 0
            if not low < step < 100:
                found.append((f"steps[{index}]", "steps rise strictly, each from 1 to 99"))
        return found


class WorkerSpec(Strict):
    """One of the platform's own Workers: which version serves production (runbook 6)."""

    script: WorkerScriptName
    production: WorkerVersion
    canary: WorkerCanary | None = None
    health_check: HealthCheck | None = None

    def checks(self) -> list[FieldCheck]:
        """The canary is another version than production; the health check's own checks."""
        found: list[FieldCheck] = []
        if self.canary is not None and self.canary.version == self.production.version:
            found.append(("canary.version", "the canary must be another version than production"))
        if self.health_check is not None:
            found.extend((f"health_check.{f}", m) for f, m in self.health_check.checks())
        return found

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> WorkerSpec:
        raise_unless_deferred(self, info)
        return self
