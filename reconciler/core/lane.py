"""Lanes: the one priority vocabulary of plans, the work queue and the request budget.

A plan's action is ``urgent`` (rollbacks, unlocks) or ``change``; the daemon's queue and the
shared rate limiter also know ``sweep`` (drift sweeps and plan-time observation). Lower
:attr:`Lane.rank` goes first. The values are what plan JSON and the queue metrics show.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Lane"]


class Lane(StrEnum):
    """Priority: urgent work before changes, changes before sweeps (by :attr:`rank`)."""

    URGENT = "urgent"  # rollbacks, unlocks
    CHANGE = "change"  # publishes, domain fixes, dunning
    SWEEP = "sweep"  # drift sweeps and plan-time observation (never a plan's action)

    @property
    def rank(self) -> int:
        """The lane's priority: 0 is served first (compare lanes by this, not as text)."""
        return _RANKS[self]


_RANKS = {Lane.URGENT: 0, Lane.CHANGE: 1, Lane.SWEEP: 2}
