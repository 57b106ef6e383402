"""PR mode: what a pull request changes, what drift already existed, and which bumps it reverts.

Called by ``commands/plan.py`` for ``reconciler plan --base REF --head REF``. It loads the specs
at both commits (:func:`reconciler.spec.load.load_git`), reads Git history through GitPython
for revert detection, and post-processes plans built by the pure core; it observes nothing
itself.

Rules:

1. The scope is the set of sites whose spec differs between base and head (added, removed or
   changed), plus every site of a tenant whose spec differs, plus every site of a tenant whose
   billing policy differs. Only the scope is observed (DESIGN.md section 7).
2. Hostnames the base declared for a scoped site but the head does not are looked up too, so a
   removed domain can be deleted or retained by its policy.
3. Drift that predates the PR: the base specs are planned against the same observation (with
   the head's revision, so identical actions get identical ids); actions of the head plan that
   the base plan also has go into ``Plan.preexisting``.
4. A production version that the head moves back is recognised as a revert when either a
   commit in ``base..head`` says ``This reverts commit <sha>`` and that commit touched the
   site's spec file, or the site file's history (reachable from base) has a commit that bumped
   the version from the head's value to the base's. The rollback or publish action is
   annotated ``reverts <sha7> (<subject>)``.
5. A ``kind: Worker`` spec that differs between base and head has its script observed; a
   commit in ``base..head`` that says ``This reverts commit <sha>`` of a commit that touched
   the Worker's spec file annotates that Worker's deployment or rollback the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from reconciler.core.desired import Desired
from reconciler.core.plan import ActionKind, Plan
from reconciler.errors import LoadError
from reconciler.spec.load import Specs, load_git
from reconciler.spec.models import Kind

__all__ = [
    "HISTORY_DEPTH",
    "PullRequest",
    "annotate",
    "changed_scope",
    "find_reverts",
    "load_pull_request",
]

HISTORY_DEPTH = 50
"""How many commits of a site file's history are searched for the bump a head reverts."""

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
_SITE_ACTIONS = (ActionKind.ROLLBACK, ActionKind.PUBLISH, ActionKind.RETRY_PUBLISH)
_WORKER_ACTIONS = (ActionKind.ROLLBACK_WORKER_VERSION, ActionKind.DEPLOY_WORKER_VERSION)


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The two sides of a PR and what the head changes."""

    base: Specs
    head: Specs
    scope: frozenset[str]  # site names (head or base) whose world is observed
    removed_hostnames: tuple[str, ...]  # declared at base by a scoped site, gone at head
    reverts: Mapping[str, str]  # site -> "reverts abc1234 (Bump acme-home to 13)"
    workers: frozenset[str] = frozenset()  # Worker scripts whose spec differs
    worker_reverts: Mapping[str, str] = field(default_factory=dict)  # Worker name -> note


def _tenant_sites(specs: Specs, tenants: set[str]) -> set[str]:
    return {name for name, site in specs.sites.items() if site.spec.tenant in tenants}


def changed_scope(base: Specs, head: Specs) -> frozenset[str]:
    """Site names whose observation the change needs (module rule 1)."""
    sites = {
        name
        for name in set(base.sites) | set(head.sites)
        if base.sites.get(name) != head.sites.get(name)
    }
    tenants = {
        name
        for name in set(base.tenants) | set(head.tenants)
        if base.tenants.get(name) != head.tenants.get(name)
    }
    policies = {
        name
        for name in set(base.policies) | set(head.policies)
        if base.policies.get(name) != head.policies.get(name)
    }
    for specs in (base, head):
        tenants |= {n for n, t in specs.tenants.items() if t.spec.policy in policies}
    return frozenset(sites | _tenant_sites(base, tenants) | _tenant_sites(head, tenants))


def _removed_hostnames(base: Specs, head: Specs, scope: Iterable[str]) -> tuple[str, ...]:
    removed: set[str] = set()
    for name in scope:
        before = base.sites.get(name)
        if before is None:
            continue
        after = head.sites.get(name)
        kept = {d.canonical for d in after.spec.domains} if after is not None else set()
        removed |= {d.canonical for d in before.spec.domains} - kept
    return tuple(sorted(removed))


def load_pull_request(repo: Path, base_ref: str, head_ref: str, subdir: str) -> PullRequest:
    """Load both sides, compute the scope and find the reverts.

    Raises:
        LoadError: no repository, an unknown ref, or no specs directory at a ref.
        SpecError: the specs at either side are invalid (head problems are what a PR must fix).
    """
    head = load_git(repo, head_ref, subdir)
    base = load_git(repo, base_ref, subdir)
    scope = changed_scope(base, head)
    workers = _changed_workers(base, head)
    return PullRequest(
        base=base,
        head=head,
        scope=scope,
        removed_hostnames=_removed_hostnames(base, head, scope),
        reverts=find_reverts(repo, base, head, scope),
        workers=frozenset(w.spec.script for n, w in head.workers.items() if n in workers),
        worker_reverts=_worker_reverts(repo, base, head, workers),
    )


def _changed_workers(base: Specs, head: Specs) -> set[str]:
    """Worker names whose spec the head adds or changes (rule 5)."""
    return {name for name, worker in head.workers.items() if base.workers.get(name) != worker}


def _worker_reverts(repo: Path, base: Specs, head: Specs, names: set[str]) -> dict[str, str]:
    """Rule 5: Workers whose spec file a ``This reverts commit`` commit of the PR touched."""
    if not names or base.revision is None or head.revision is None:
        return {}
    repository = _open(repo)
    try:
        paths = {name: {head.location(Kind.WORKER, name).path} for name in names}
        found = _reverted_in(repository, f"{base.revision}..{head.revision}", paths)
    finally:
        repository.close()
    return found


def _site_version(text: str, site: str) -> int | None:
    """The production version a spec file's text gives ``site``, if it declares it."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return None
    for doc in documents:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == Kind.SITE.value
            and isinstance(doc.get("metadata"), dict)
            and doc["metadata"].get("name") == site
        ):
            spec = doc.get("spec")
            production = spec.get("production") if isinstance(spec, dict) else None
            version = production.get("version") if isinstance(production, dict) else None
            return version if isinstance(version, int) else None
    return None


def _version_at(repository: Any, sha: str, path: str, site: str) -> int | None:
    import git

    try:
        text = repository.git.show(f"{sha}:{path}")
    except git.GitCommandError:
        return None
    return _site_version(str(text), site)


def find_reverts(repo: Path, base: Specs, head: Specs, scope: Iterable[str]) -> dict[str, str]:
    """Annotations for sites whose production version the head moves back (module rule 4)."""
    if base.revision is None or head.revision is None:
        return {}
    moved = {
        name: (base.sites[name].spec.production.version, head.sites[name].spec.production.version)
        for name in scope
        if name in base.sites
        and name in head.sites
        and base.sites[name].spec.production.version != head.sites[name].spec.production.version
    }
    if not moved:
        return {}
    repository = _open(repo)
    try:
        base_paths = {name: base.location(Kind.SITE, name).path for name in moved}
        paths = {name: {head.location(Kind.SITE, name).path, base_paths[name]} for name in moved}
        found = _reverted_in(repository, f"{base.revision}..{head.revision}", paths)
        for name, (base_version, head_version) in sorted(moved.items()):
            if name in found:
                continue
            path = base_paths[name]
            for commit in repository.iter_commits(
                base.revision, paths=path, max_count=HISTORY_DEPTH
            ):
                if not commit.parents:
                    break
                now = _version_at(repository, commit.hexsha, path, name)
                before = _version_at(repository, commit.parents[0].hexsha, path, name)
                if now == before:
                    continue
                if now == base_version and before == head_version:
                    found[name] = _label(commit)
                break  # only the latest change of the version can be the one reverted
    finally:
        repository.close()
    return found


def _open(repo: Path) -> Any:
    """The Git repository at ``repo`` (close it after use)."""
    import git

    try:
        return git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise LoadError(f"{repo} is not a Git repository") from exc


def _reverted_in(repository: Any, span: str, paths: dict[str, set[str]]) -> dict[str, str]:
    """Each name one of whose ``paths`` a commit reverted by a ``This reverts commit`` commit
    of ``span`` touched, with the label of the reverted commit (the newest revert first)."""
    import git

    found: dict[str, str] = {}
    for commit in repository.iter_commits(span):
        match = _REVERTS.search(str(commit.message))
        if match is None:
            continue
        try:
            reverted = repository.commit(match.group(1))
        except (git.BadName, ValueError):
            continue
        touched = set(reverted.stats.files)
        for name, wanted in paths.items():
            if name not in found and wanted & touched:
                found[name] = _label(reverted)
    return found


def _label(commit: Any) -> str:
    subject = str(commit.message).strip().splitlines()[0] if commit.message else ""
    return f"reverts {commit.hexsha[:7]} ({subject})"


def annotate(
    head_plan: Plan,
    base_plan: Plan,
    reverts: Mapping[str, str],
    worker_reverts: Mapping[str, str] | None = None,
) -> Plan:
    """The head plan with ``preexisting`` (module rule 3) and revert ``annotations`` set."""
    base_ids = {action.id for action in base_plan.actions}
    preexisting = frozenset(a.id for a in head_plan.actions if a.id in base_ids)
    annotations = dict(head_plan.annotations)
    for name, label in (worker_reverts or {}).items():
        for action in head_plan.actions:
            if action.target == f"Worker/{name}" and action.kind in _WORKER_ACTIONS:
                annotations[action.id] = label
    for action in head_plan.actions:
        note = reverts.get(action.site or "")
        if (
            note is not None
            and action.kind in _SITE_ACTIONS
            and action.target == f"Site/{action.site}:production"
        ):
            annotations[action.id] = note
    return replace(
        head_plan, preexisting=preexisting, annotations=dict(sorted(annotations.items()))
    )


def base_desired(base: Desired, head_revision: str | None) -> Desired:
    """The base's desired facts under the head's revision, so equal actions share ids."""
    return replace(base, revision=head_revision)
