"""The followed branch as a source with a condition: is the head commit's specs valid?

Called by the daemon loop (``runtime/loop.py``) for every new head the Git follower reports.
An invalid head is a condition of the source, not a crash and not silence: the
``Source/<branch>`` resource gets ``SpecsValid=False`` with every ``file:line`` problem in its
last error (``reconciler status``), the log gets the problems, the metrics
``reconciler_specs_valid`` and ``reconciler_specs_problems`` move, and ``/readyz`` says which
commit is served and which was refused. The last good commit keeps being served meanwhile.
Pure bookkeeping: no I/O; the loop writes the returned condition through the status store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.core.conditions_common import Condition, ConditionUpdate
from reconciler.errors import SpecError

__all__ = ["SourceState"]

MAX_PROBLEMS = 50
"""Problems kept for the condition and ``/readyz`` (the count is always exact)."""


@dataclass(slots=True)
class SourceState:
    """What the daemon knows about the followed branch's head."""

    branch: str
    serving: str | None = None  # the last commit whose specs were valid
    refused: str | None = None  # the head whose specs are invalid, if the head is
    problems: tuple[str, ...] = ()
    count: int = 0

    @property
    def resource(self) -> str:
        """The status key: ``Source/<branch>``."""
        return f"Source/{self.branch}"

    @property
    def valid(self) -> bool:
        """True unless the head commit was refused."""
        return self.refused is None

    def accept(self, commit: str) -> ConditionUpdate:
        """The head ``commit`` is valid and served now."""
        self.serving, self.refused, self.problems, self.count = commit, None, (), 0
        return ConditionUpdate(
            resource=self.resource,
            condition=Condition.SPECS_VALID.value,
            status=True,
            reason="Valid",
            message=f"the specs at {commit[:12]} are valid and served",
            commit=commit,
        )

    def refuse(self, commit: str, error: Exception) -> ConditionUpdate:
        """The head ``commit`` cannot be loaded; the last good commit stays served."""
        if isinstance(error, SpecError):
            lines = [problem.render() for problem in error.problems]
        else:
            lines = [str(error)]
        self.refused, self.count = commit, len(lines)
        self.problems = tuple(lines[:MAX_PROBLEMS])
        kept = f"still serving {self.serving[:12]}" if self.serving else "nothing served yet"
        return ConditionUpdate(
            resource=self.resource,
            condition=Condition.SPECS_VALID.value,
            status=False,
            reason="InvalidSpecs" if isinstance(error, SpecError) else "Unreadable",
            message=f"commit {commit[:12]}: {self.count} problem{'s' if self.count != 1 else ''}"
            f" in the specs; {kept}",
            last_error="\n".join(self.problems),
            commit=commit,
        )

    def readiness(self) -> dict[str, Any]:
        """The ``source`` detail of ``/readyz``."""
        detail: dict[str, Any] = {"branch": self.branch, "serving": self.serving}
        if self.refused is not None:
            detail["refused"] = self.refused
            detail["problems"] = list(self.problems)
            detail["problem_count"] = self.count
        detail["valid"] = self.valid
        return detail
