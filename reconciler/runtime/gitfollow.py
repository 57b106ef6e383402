"""Git following: fetch the branch the daemon follows, and say what changed between two commits.

Called by the daemon loop (``runtime/loop.py``): :meth:`GitFollower.watch` fetches on an
interval and whenever the push webhook calls :meth:`GitFollower.nudge`, and hands each new head
to the loop, which asks :meth:`GitFollower.changed` which sites and tenants to reconcile first
and :meth:`GitFollower.specs_at` for the desired state. It calls GitPython (``git`` processes,
run in a worker thread by the async methods), :func:`reconciler.spec.load.load_git` and
:func:`reconciler.runtime.prmode.changed_scope` (the same site scope PR plans use).

Rules:

1. The follower keeps a bare repository in ``repo_dir`` and fetches only the followed branch,
   into ``refs/remotes/origin/<branch>``. The remote URL is passed on each fetch and never
   written to the repository's config; any credentials in it are masked in messages and logs.
2. A fetch failure is weather: a ``TransientError`` (``PermanentError`` when the branch does not
   exist at the remote). ``watch`` logs it, keeps the last known head and tries again at the
   next interval or nudge.
3. Nudges collapse: however many arrive during a fetch (or while the new commit is handled),
   they cause exactly one more fetch.
4. ``changed(old, new)`` looks at the spec files the diff touches. None touched: nothing
   changed. Otherwise both sides are loaded and compared document by document: a changed,
   added or deleted Site marks that site; a changed Tenant marks it and all its sites (at
   either commit); a changed BillingPolicy marks it, its tenants and their sites. When either
   side cannot be loaded (invalid specs, a commit gone after a force push), the change set says
   ``all`` (with whatever documents could still be named), so the loop looks at everything.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.errors import LoadError, PermanentError, SpecError, TransientError
from reconciler.runtime.approvals import CommitApprovals, read_approvals
from reconciler.runtime.prmode import changed_scope
from reconciler.runtime.waiting import event_or_timer
from reconciler.spec.compact import share_fields_sets
from reconciler.spec.load import SPEC_SUFFIXES, Specs, declared_name, load_git, parse_documents
from reconciler.spec.models import Kind

__all__ = ["PROVIDER", "ChangeSet", "GitFollower", "mask_url"]

PROVIDER = "git"
_SPECS_CACHE = 4  # Specs kept by sha: the last applied commit and the new one, with slack

_log = logging.getLogger(__name__)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")

OnNewCommit = Callable[[str | None, str], Awaitable[None]]


class FetchObserver(Protocol):
    """Hears of every fetch (``Metrics.git_fetch``)."""

    def __call__(self, seconds: float, *, ok: bool, at: float) -> None:
        """One fetch took ``seconds`` and worked (``ok``) at clock time ``at``."""


def mask_url(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What a new commit changed, by name; ``sites`` already includes the tenants' sites."""

    sites: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    policies: frozenset[str] = frozenset()
    all: bool = False  # look at everything: the two sides could not be compared
    files: tuple[str, ...] = ()  # spec files the diff touched, repository paths

    @property
    def is_empty(self) -> bool:
        """True when the commit changed nothing the reconciler acts on."""
        return not (self.all or self.sites or self.tenants or self.policies)

    def keys(self) -> list[str]:
        """Work-queue keys to reconcile first: ``Tenant/<name>`` then ``Site/<name>``, sorted."""
        return [f"Tenant/{name}" for name in sorted(self.tenants)] + [
            f"Site/{name}" for name in sorted(self.sites)
        ]


class GitFollower:
    """Follows ``branch`` of ``remote_url`` in a bare repository at ``repo_dir``."""

    def __init__(
        self,
        repo_dir: Path | str,
        remote_url: str,
        branch: str,
        *,
        specs_subdir: str = "specs",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_fetch: FetchObserver | None = None,
    ) -> None:
        """Prepare (without touching disk or network) to follow ``branch``.

        Args:
            repo_dir: where the bare repository lives; created on the first fetch.
            remote_url: the remote (``https://…``, ``git@…``, ``file://…`` or a path).
            branch: the branch to follow, e.g. ``main``.
            specs_subdir: the specs directory inside the repository.
            clock: time of the last fetch, for readiness and metrics.
            sleep: waits the poll interval (``asyncio.sleep``; tests pass a virtual one).
            on_fetch: told of every fetch: its wall time, whether it worked, and the clock
                time (``Metrics.git_fetch``).
        """
        self.repo_dir = Path(repo_dir)
        self.remote_url = remote_url
        self.branch = branch
        self.specs_subdir = specs_subdir.strip("/")
        self._clock = clock
        self._sleep = sleep
        self._nudged = asyncio.Event()
        self._specs: OrderedDict[str, Specs] = OrderedDict()
        self._lock = threading.Lock()
        self.head: str | None = None  # last fetched head
        self.fetched_at: float | None = None  # clock time of the last successful fetch
        self.last_error: Exception | None = None  # the last fetch failure, cleared on success
        self.fetches = 0  # fetch attempts, for metrics
        self._on_fetch = on_fetch

    @property
    def remote(self) -> str:
        """The remote URL with any credentials masked, for messages."""
        return mask_url(self.remote_url)

    # ---------------------------------------------------------------- fetching

    async def fetch(self) -> str:
        """Fetch the branch and return its head sha (blocking git runs in a worker thread).

        Raises:
            TransientError: the remote could not be reached or the fetch failed.
            PermanentError: the branch does not exist at the remote, or git is missing.
        """
        self.fetches += 1
        started = time.monotonic()
        try:
            sha = await asyncio.to_thread(self.fetch_blocking)
        except (TransientError, PermanentError) as exc:
            self.last_error = exc
            if self._on_fetch is not None:
                self._on_fetch(time.monotonic() - started, ok=False, at=self._clock())
            raise
        if self._on_fetch is not None:
            self._on_fetch(time.monotonic() - started, ok=True, at=self._clock())
        self.head = sha
        self.fetched_at = self._clock()
        self.last_error = None
        return sha

    def fetch_blocking(self) -> str:
        """:meth:`fetch` without the bookkeeping, for callers already in a thread."""
        import git

        refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        try:
            repository = self._repository(create=True)
            try:
                repository.git.fetch("--quiet", "--no-tags", self.remote_url, refspec)
                return str(
                    repository.git.rev_parse(
                        "--verify", f"refs/remotes/origin/{self.branch}^{{commit}}"
                    )
                ).strip()
            finally:
                repository.close()
        except git.GitCommandNotFound as exc:
            raise PermanentError(PROVIDER, "the git executable was not found") from exc
        except git.GitCommandError as exc:
            detail = mask_url(_last_line(exc.stderr) or str(exc.status))
            if "couldn't find remote ref" in str(exc.stderr):
                raise PermanentError(
                    PROVIDER, f"branch {self.branch!r} does not exist at {self.remote}"
                ) from exc
            raise TransientError(
                PROVIDER, f"fetching {self.branch!r} from {self.remote} failed: {detail}"
            ) from exc

    def _repository(self, *, create: bool = False) -> Any:
        import git

        if not (self.repo_dir / "HEAD").exists() and not (self.repo_dir / ".git").exists():
            if not create:
                raise LoadError(f"{self.repo_dir} holds no repository yet; fetch first")
            self.repo_dir.mkdir(parents=True, exist_ok=True)
            return git.Repo.init(self.repo_dir, bare=True)
        return git.Repo(self.repo_dir)

    # ---------------------------------------------------------------- watching

    def nudge(self) -> None:
        """Ask for a fetch now (the push webhook); nudges during a fetch collapse into one."""
        self._nudged.set()

    async def watch(
        self, interval: float, on_new_commit: OnNewCommit, *, since: str | None = None
    ) -> None:
        """Fetch every ``interval`` seconds and on each nudge; report each new head.

        Runs until cancelled. ``on_new_commit(old, new)`` is awaited for every head that differs
        from the previous one (``old`` is ``since`` at first, None when unknown); an exception
        it raises ends the watch (a bug, not weather). Fetch failures are logged and retried
        at the next interval or nudge (module rule 2).

        Args:
            interval: seconds between fetches when nothing nudges.
            on_new_commit: the loop's handler of a new head.
            since: the last commit the loop applied (from its ledger), if any.
        """
        last = since
        while True:
            # NB: cleared before fetching, so nudges that arrive during the fetch or the
            # handler set it again and cause exactly one more fetch (module rule 3).
            self._nudged.clear()
            try:
                sha = await self.fetch()
            except (TransientError, PermanentError) as exc:
                _log.warning(
                    "git fetch failed",
                    extra={"remote": self.remote, "branch": self.branch, "error": str(exc)},
                )
            else:
                if sha != last:
                    _log.info(
                        "new commit",
                        extra={"branch": self.branch, "old": last, "new": sha},
                    )
                    await on_new_commit(last, sha)
                    last = sha
            await self._wait(interval)

    async def _wait(self, interval: float) -> None:
        await event_or_timer(self._nudged, self._sleep(interval))

    # ---------------------------------------------------------------- reading commits

    def specs_at(self, sha: str) -> Specs:
        """The validated specs at commit ``sha`` (blocking; the last few are cached).

        Raises:
            LoadError: an unknown commit or no specs directory there.
            SpecError: the specs at that commit are invalid.
        """
        with self._lock:
            cached = self._specs.get(sha)
            if cached is not None:
                self._specs.move_to_end(sha)
                return cached
        specs = load_git(self.repo_dir, sha, self.specs_subdir)
        share_fields_sets(specs)  # kept while followed: compact (spec/compact.py)
        with self._lock:
            self._specs[sha] = specs
            while len(self._specs) > _SPECS_CACHE:
                self._specs.popitem(last=False)
        return specs

    def approvals(self, old_sha: str | None, new_sha: str) -> CommitApprovals:
        """The ``Approve-Deletion`` trailers of the commits after ``old_sha`` up to
        ``new_sha`` (``new_sha`` alone when ``old_sha`` is None or unknown; blocking git)."""
        if old_sha is not None:
            try:
                return read_approvals(self.repo_dir, f"{old_sha}..{new_sha}")
            except LoadError:
                pass  # the old commit is gone (a force push): the new head alone
        return read_approvals(self.repo_dir, f"-1 {new_sha}")

    def committed_at(self, sha: str) -> float | None:
        """The committer date of ``sha``, epoch seconds (None when git cannot say; blocking)."""
        import git

        try:
            repository = self._repository()
        except LoadError:
            return None
        try:
            return float(repository.commit(sha).committed_date)
        except (git.GitCommandError, ValueError):
            return None
        finally:
            repository.close()

    def changed(self, old_sha: str | None, new_sha: str) -> ChangeSet:
        """What changed between two commits (module rule 4; blocking git and YAML work).

        Args:
            old_sha: the last applied commit, or None when there is none (everything changed).
            new_sha: the new head.
        """
        if old_sha is None:
            return ChangeSet(all=True)
        if old_sha == new_sha:
            return ChangeSet()
        try:
            files = self._changed_files(old_sha, new_sha)
        except LoadError:
            return ChangeSet(all=True)
        if not files:
            return ChangeSet()
        try:
            old = self.specs_at(old_sha)
            new = self.specs_at(new_sha)
        except (LoadError, SpecError):
            return self._changed_documents(old_sha, new_sha, files)
        return _compare(old, new, files)

    def _changed_files(self, old_sha: str, new_sha: str) -> tuple[str, ...]:
        import git

        repository = self._repository()
        try:
            listing = repository.git.diff(
                "--name-only",
                "--no-renames",
                "-z",
                old_sha,
                new_sha,
                "--",
                self.specs_subdir or ".",
            )
        except git.GitCommandError as exc:
            raise LoadError(f"cannot diff {old_sha[:12]}..{new_sha[:12]}") from exc
        finally:
            repository.close()
        prefix = f"{self.specs_subdir}/" if self.specs_subdir else ""
        return tuple(
            sorted(
                path
                for path in str(listing).split("\0")
                if path
                and path.endswith(SPEC_SUFFIXES)
                and not any(part.startswith(".") for part in path[len(prefix) :].split("/"))
            )
        )

    def _changed_documents(self, old_sha: str, new_sha: str, files: Iterable[str]) -> ChangeSet:
        """Fallback when a side does not load: name what the touched files' documents say."""
        import git

        repository = self._repository()
        names: dict[Kind, set[str]] = {kind: set() for kind in Kind}
        try:
            for path in files:
                before = _documents(repository, git, old_sha, path)
                after = _documents(repository, git, new_sha, path)
                for key in set(before) | set(after):
                    if before.get(key) != after.get(key):
                        names[key[0]].add(key[1])
        finally:
            repository.close()
        return ChangeSet(
            sites=frozenset(names[Kind.SITE]),
            tenants=frozenset(names[Kind.TENANT]),
            policies=frozenset(names[Kind.BILLING_POLICY]),
            all=True,
            files=tuple(files),
        )


def _documents(repository: Any, git: Any, sha: str, path: str) -> dict[tuple[Kind, str], Any]:
    try:
        data: bytes = repository.git.show(f"{sha}:{path}", stdout_as_string=False)
    except git.GitCommandError:
        return {}  # the file does not exist on that side
    parsed = parse_documents(path, data)
    found: dict[tuple[Kind, str], Any] = {}
    for raw in parsed.documents:
        name = declared_name(raw)
        if name is not None:
            found[name] = raw.data
    return found


def _differing(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {name for name in set(before) | set(after) if before.get(name) != after.get(name)}


def _compare(old: Specs, new: Specs, files: tuple[str, ...]) -> ChangeSet:
    policies = _differing(dict(old.policies), dict(new.policies))
    tenants = _differing(dict(old.tenants), dict(new.tenants))
    for specs in (old, new):
        tenants |= {name for name, t in specs.tenants.items() if t.spec.policy in policies}
    return ChangeSet(
        sites=changed_scope(old, new),
        tenants=frozenset(tenants),
        policies=frozenset(policies),
        files=files,
    )


def _last_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else ""
