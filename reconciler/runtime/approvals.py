"""Deletion approvals that live in Git: ``Approve-Deletion: Site/<name>`` commit trailers.

Called by the daemon loop (through :meth:`GitFollower.approvals
<reconciler.runtime.gitfollow.GitFollower.approvals>`, for the commits between the last head
and the new one) and by ``reconciler plan``/``apply`` (for ``--repo``/``--ref`` the commit
itself, in PR mode the pull request's commits). The result goes to
:attr:`reconciler.core.plan.PlanSettings.approved_deletions`, and the planner lets a deletion
over the blast-radius cap through only when its hostname or its site is named
(``core/policy.py`` rule 5; docs/plan.md, "Deletion safety").

Rules:

1. An approval is a trailer of a commit message, in Git's own trailer syntax (the last
   paragraph, ``Key: value`` lines), read by ``git log``'s trailer parser, so it is as
   auditable as the commit: who, when, and in which change. One trailer names one resource,
   ``Site/<name>`` or ``Hostname/<name>``; a commit may carry several.
2. A value that names neither is ignored (it approves nothing) and reported, so a typo never
   approves more than it says.
3. Each approval remembers where it was given, ``commit <sha12> (<subject>)``, which the plan
   shows next to every deletion it lets through.
4. The daemon keeps the approvals of the commits it followed (:class:`ApprovalLedger`) until
   the named resource is declared again: re-adding a site to the specs ends its approval, so
   an old approval never deletes it a second time. A restarted daemon starts with the head
   commit's own approvals only (it fails closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.policy import APPROVAL_TRAILER
from reconciler.errors import LoadError
from reconciler.spec.load import Specs

__all__ = ["ApprovalLedger", "CommitApprovals", "parse_log", "read_approvals"]

_TARGET = re.compile(r"^(Site/[a-z0-9]([a-z0-9-]*[a-z0-9])?|Hostname/[a-z0-9.*_-]+)$")
_FIELD, _RECORD, _VALUE = "\x1f", "\x1d", "\x1e"
LOG_FORMAT = (
    f"%H{_FIELD}%s{_FIELD}%(trailers:key={APPROVAL_TRAILER},valueonly,separator=%x1e){_RECORD}"
)
"""``git log --format`` that prints sha, subject and the approval trailers of each commit."""


@dataclass(frozen=True, slots=True)
class CommitApprovals:
    """What a range of commits approves, and the trailer values that named nothing valid."""

    approved: dict[str, str]  # "Site/acme-shop" -> "commit 1a2b3c4d5e6f (Remove acme-shop)"
    ignored: tuple[str, ...]  # "Site/Acme Shop (in 1a2b3c4d5e6f)"


def parse_log(text: str) -> CommitApprovals:
    """Parse ``git log --format=LOG_FORMAT`` output, newest commit first (rule 1-3).

    The oldest commit naming a resource is the one remembered: it is where the approval was
    first given.
    """
    approved: dict[str, str] = {}
    ignored: list[str] = []
    for record in text.split(_RECORD):
        fields = record.strip("\n").split(_FIELD)
        if len(fields) != 3:
            continue
        sha, subject, values = fields
        for value in _values(values):
            target = _canonical(value)
            if target is None:
                ignored.append(f"{value} (in {sha[:12]})")
                continue
            approved[target] = f"commit {sha[:12]} ({subject.strip()})"
    return CommitApprovals(approved=dict(sorted(approved.items())), ignored=tuple(ignored))


def _values(text: str) -> Iterable[str]:
    return (value.strip() for value in text.split(_VALUE) if value.strip())


def _canonical(value: str) -> str | None:
    kind, _, name = value.partition("/")
    if kind == "Hostname":
        name = name.lower().rstrip(".")
    candidate = f"{kind}/{name}"
    return candidate if _TARGET.match(candidate) else None


def read_approvals(repo: Path | str, revisions: str) -> CommitApprovals:
    """The approvals in ``revisions`` of the repository at ``repo`` (blocking git).

    Args:
        repo: a repository (bare or not).
        revisions: what ``git log`` walks: ``old..new``, or ``-1 <sha>`` for one commit.

    Raises:
        LoadError: git cannot read that range.
    """
    import git

    try:
        repository = git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise LoadError(f"{repo} is not a Git repository") from exc
    try:
        text = repository.git.log(f"--format={LOG_FORMAT}", *revisions.split(), "--")
    except git.GitCommandError as exc:
        raise LoadError(f"cannot read the commits {revisions}: {exc.stderr.strip()}") from exc
    finally:
        repository.close()
    return parse_log(str(text))


class ApprovalLedger:
    """The approvals of the commits a daemon followed (rule 4)."""

    def __init__(self) -> None:
        """Start with no approval."""
        self.approved: dict[str, str] = {}

    def add(self, found: CommitApprovals) -> list[str]:
        """Keep ``found``'s approvals; return the keys that are new."""
        new = [key for key in found.approved if key not in self.approved]
        self.approved.update(found.approved)
        return sorted(new)

    def prune(self, specs: Specs) -> None:
        """Drop approvals of resources the specs declare again."""
        declared = {f"Site/{name}" for name in specs.sites} | {
            f"Hostname/{domain.canonical}"
            for site in specs.sites.values()
            for domain in site.spec.domains
        }
        for key in [key for key in self.approved if key in declared]:
            del self.approved[key]
