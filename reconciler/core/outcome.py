"""Outcomes: what happened to each action of a plan, and what that means for the next pass.

``runtime/execute.py`` produces one :class:`Outcome` per action; ``core/render.py``-style views
and the daemon read them. :func:`next_delay` is the pure rule the daemon uses to decide when to
look again (controller-runtime's ``RequeueAfter``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.core.plan import JsonValue, Plan


class Status(StrEnum):
    """The fate of one action."""

    APPLIED = "applied"  # the side effect happened and was recorded
    UNCHANGED = "unchanged"  # on a second look the world already matched (resume, races)
    FAILED_TRANSIENT = "failed_transient"  # try again later (network, 5xx, 429, gateway down)
    FAILED_PERMANENT = "failed_permanent"  # retrying cannot help until something changes
    BLOCKED = "blocked"  # a dependency failed; not attempted
    STUCK = "stuck"  # gave up after the allowed attempts; a human must act


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one action."""

    action_id: str
    status: Status
    message: str = ""
    retry_after: float | None = None
    data: Mapping[str, JsonValue] = field(default_factory=dict)  # ids, URLs, provider responses

    @property
    def succeeded(self) -> bool:
        """True when the world now matches what the action asked for."""
        return self.status in (Status.APPLIED, Status.UNCHANGED)


@dataclass(frozen=True, slots=True)
class Report:
    """A plan and the outcome of each of its actions, in plan order."""

    plan: Plan
    outcomes: Sequence[Outcome]

    @property
    def ok(self) -> bool:
        """True when every action succeeded."""
        return all(outcome.succeeded for outcome in self.outcomes)

    def counts(self) -> dict[str, int]:
        """Outcomes counted by status, every status present."""
        counts = {status.value: 0 for status in Status}
        for outcome in self.outcomes:
            counts[outcome.status.value] += 1
        return counts


def next_delay(
    report: Report, *, resync: float, attempt: int, base: float = 5.0, cap: float = 300.0
) -> float:
    """Seconds until the next pass should look again.

    Success and permanent failures wait for the resync interval (a permanent error never
    hot-loops); transient failures wait the largest server hint, or a capped exponential
    backoff by ``attempt`` when there is none.
    """
    transient = [o for o in report.outcomes if o.status is Status.FAILED_TRANSIENT]
    if not transient:
        return resync
    hints = [o.retry_after for o in transient if o.retry_after is not None]
    backoff: float = min(cap, base * 2.0 ** max(0, attempt))
    return min(resync, max([backoff, *hints]))
