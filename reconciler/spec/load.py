"""Load spec documents from a directory or a Git commit into a validated, typed ``Specs``.

Called by ``commands/validate.py``, the demo, plan/apply/run and the daemon. The steps live in
their own modules and are re-exported here: ``spec/files.py`` reads files (``load_directory``)
or the blobs of a commit's tree (``load_git``, GitPython, no checkout); ``spec/documents.py``
parses YAML safely (``parse_documents``, with ``spec/yaml_plain.py``); ``spec/validate.py``
validates each document against the pydantic kinds of ``spec/models.py``; ``spec/fleet.py``
does the cross-document checks. ``spec/source.py`` holds the values they hand each other.

Rules this module enforces:

1. Every problem in every file is collected and raised at once as one sorted ``SpecError``;
   each problem carries the file, 1-based line and column, the document and the field path.
2. YAML is parsed as plain data only: strings, numbers, booleans, null, lists and mappings.
   Any other tag (``!!python/...``, ``!!binary``, custom tags) is an error. Scalars resolve as
   in YAML 1.2's core schema: ``yes``/``no``/``on``/``off`` and dates stay strings.
3. A key repeated in one mapping is an error (PyYAML would silently keep the last one).
4. Aliases are expanded while building values, within a budget of values per document, so an
   alias bomb ("billion laughs") fails fast with a located error; recursive aliases are errors.
   Merge keys (``<<``) are not supported.
5. Files larger than ``Limits.max_file_bytes`` (1 MiB by default), files with NUL bytes
   (binary), files that are not UTF-8, and files without any document are errors. In a
   multi-document file, empty documents (a stray ``---``) are skipped, as ``kubectl`` does.
6. Only ``*.yaml`` and ``*.yml`` files are read; other files and dot-directories are ignored.
7. Nothing outside the specs root is read. From a directory, a symbolic link (to a file or a
   directory, whatever its name) and anything that is not a regular file is refused with a
   located problem that names the link, never its target or the target's content; files are
   opened with ``O_NOFOLLOW``, so a link swapped in after the listing is refused too. A root
   that is itself a symbolic link is refused. In a Git commit, symbolic links are never read.
8. A fleet is bounded as a whole, not only per file: more than ``Limits.max_files`` spec files
   or ``Limits.max_total_bytes`` bytes in total is refused (one problem; the rest is not read).

Paths in problems and locations are relative to the parent of the specs root, so they start
with the root's own name (``specs/sites/acme.yaml``) whether loaded from a directory or from
``specs/`` in a Git commit.

Speed: a file in the usual block style (plain or simply quoted scalars, one per line) is read
by ``spec/yaml_plain.py``'s line-by-line fast path, which gives the same values and positions as
the event builder and steps aside for anything else; its positions are worked out only when the
document is located. Other files go through the C parser (``yaml.CSafeLoader``, libyaml), whose
events are built into values here, never through PyYAML's node graph or constructors: that one
pass gives duplicate-key detection, the alias budget and the per-field line map. Without the C
extension, the pure-Python ``SafeLoader`` produces the same events, only slower. From 20,000
files on, ``spec/parallel.py`` reads and parses in forked worker processes (``processes``, on
every loader) while this process validates, in the same order: a 100,000-site fleet (155,000
files) loads in about 9 s and 840 MB in all on two cores (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reconciler.errors import Problem, SpecError
from reconciler.spec.documents import parse_documents
from reconciler.spec.files import directory_files, git_commit
from reconciler.spec.fleet import check_fleet
from reconciler.spec.models import BillingPolicy, Kind, Site, Tenant, Worker
from reconciler.spec.parallel import read_files
from reconciler.spec.source import (
    DEFAULT_LIMITS,
    SPEC_SUFFIXES,
    DocumentSource,
    Limits,
    ParsedFile,
    RawDocument,
    SourceFile,
    SourceLocation,
)
from reconciler.spec.validate import LoadedDocument, declared_name, validate_document

__all__ = [
    "DEFAULT_LIMITS",
    "SPEC_SUFFIXES",
    "DocumentSource",
    "Limits",
    "LoadedDocument",
    "ParsedFile",
    "RawDocument",
    "SourceFile",
    "SourceLocation",
    "Specs",
    "declared_name",
    "load_directory",
    "load_files",
    "load_git",
    "parse_documents",
    "validate_document",
]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Specs:
    """The validated desired state of the whole fleet.

    ``revision`` is the Git commit sha when loaded from Git, else ``None``.
    """

    tenants: Mapping[str, Tenant]
    sites: Mapping[str, Site]
    policies: Mapping[str, BillingPolicy]
    revision: str | None
    workers: Mapping[str, Worker] = field(default_factory=dict)  # the platform's own Workers
    _documents: Mapping[tuple[Kind, str], DocumentSource] = field(
        default_factory=dict, repr=False, compare=False
    )

    def location(self, kind: Kind, name: str, field: str = "") -> SourceLocation:
        """Best-known position of a dotted field inside a document.

        ``field`` looks like ``spec.production.version`` or ``spec.domains[1].hostname``; an
        unknown field falls back to its nearest parent, then to the document start.

        Raises:
            KeyError: when there is no document of that kind and name.
        """
        return self._documents[(Kind(kind), name)].locate(field)

    @property
    def domain_count(self) -> int:
        """How many custom hostnames the sites declare in total."""
        return sum(len(site.spec.domains) for site in self.sites.values())

    def summary(self) -> str:
        """``3 tenants, 2 policies, 5 sites, 8 domains``."""
        return ", ".join(
            _plural(count, noun)
            for count, noun in (
                (len(self.tenants), "tenant"),
                (len(self.policies), "policy"),
                (len(self.sites), "site"),
                (self.domain_count, "domain"),
            )
        ) + (f", {_plural(len(self.workers), 'worker')}" if self.workers else "")


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def load_files(
    files: Iterable[SourceFile],
    *,
    revision: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    processes: int | None = None,
) -> Specs:
    """Parse, validate and cross-check spec files; the shared core of every loader.

    ``processes``: how many worker processes read and parse the files; None (the default) is
    automatic, in this process below ``spec/parallel.py``'s ``PARALLEL_FROM`` files (20,000).
    The result is the same either way.

    Raises:
        SpecError: with every problem of every file, sorted by file and position.
    """
    with _gc_paused():
        return _load_files(files, revision=revision, limits=limits, processes=processes)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # NB: loading a large fleet allocates millions of long-lived, acyclic objects (values,
    # models, positions); the cyclic collector would rescan them again and again, which costs
    # more than the parsing itself. Nothing here creates cycles worth collecting early.
    # On success the survivors are frozen (gc.freeze) before the collector is turned back on:
    # otherwise its first pass rescans every one of them at once (about 3 s for 100,000 sites).
    # They are still freed by reference counting when the specs are dropped. After a failure
    # nothing is frozen: the traceback's frames would be kept alive.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except BaseException:
        if was_enabled:
            gc.enable()
        raise
    if was_enabled:
        gc.freeze()
        gc.enable()


def _load_files(
    files: Iterable[SourceFile], *, revision: str | None, limits: Limits, processes: int | None
) -> Specs:
    loaded, declared, problems = _validated(files, limits, processes)
    problems.extend(check_fleet(loaded, declared))
    if problems:
        raise SpecError(problems)
    return _specs(loaded, revision)


def _validated(
    files: Iterable[SourceFile], limits: Limits, processes: int | None
) -> tuple[list[LoadedDocument], list[tuple[Kind, str]], list[Problem]]:
    """Read, parse and validate each file: the valid documents, the kind and name the invalid
    ones declare, and every problem met."""
    problems: list[Problem] = []
    loaded: list[LoadedDocument] = []
    declared: list[tuple[Kind, str]] = []
    count = total = 0
    with contextlib.closing(read_files(files, limits, processes)) as reads:
        for read in reads:
            source, parsed = read.source, read.parsed
            if parsed is None:
                problems.append(Problem(source.path, 0, 0, "", "", source.refused or ""))
                continue
            count, total = count + 1, total + min(read.length, limits.max_file_bytes)
            if count > limits.max_files or total > limits.max_total_bytes:
                problems.append(Problem(source.path, 0, 0, "", "", _too_big(limits)))
                break
            problems.extend(parsed.problems)
            for raw in parsed.documents:
                document, found = validate_document(raw)
                problems.extend(found)
                if document is not None:
                    loaded.append(document)
                else:
                    name = declared_name(raw)
                    if name is not None:
                        declared.append(name)
    return loaded, declared, problems


def _specs(loaded: list[LoadedDocument], revision: str | None) -> Specs:
    """The fleet of valid documents, each kind sorted by name."""
    tenants: dict[str, Tenant] = {}
    sites: dict[str, Site] = {}
    policies: dict[str, BillingPolicy] = {}
    workers: dict[str, Worker] = {}
    documents: dict[tuple[Kind, str], DocumentSource] = {}
    for document in loaded:
        model = document.model
        if isinstance(model, Tenant):
            tenants[document.name] = model
        elif isinstance(model, Site):
            sites[document.name] = model
        elif isinstance(model, Worker):
            workers[document.name] = model
        else:
            policies[document.name] = model
        documents[(document.kind, document.name)] = document.source
    return Specs(
        tenants=_sorted(tenants),
        sites=_sorted(sites),
        policies=_sorted(policies),
        revision=revision,
        workers=_sorted(workers),
        _documents=documents,
    )


def _sorted(items: dict[str, _T]) -> dict[str, _T]:
    return {name: items[name] for name in sorted(items)}


def _too_big(limits: Limits) -> str:
    return (
        f"the fleet is too large: more than {limits.max_files} spec files or "
        f"{limits.max_total_bytes} bytes in total; nothing after this file was read"
    )


def load_directory(
    root: Path, *, limits: Limits = DEFAULT_LIMITS, processes: int | None = None
) -> Specs:
    """Load and validate every ``*.yaml``/``*.yml`` file under ``root``.

    ``processes`` as for :func:`load_files`.

    Raises:
        LoadError: when ``root`` is not a readable directory.
        SpecError: with every problem found.
    """
    return load_files(directory_files(root), limits=limits, processes=processes)


def load_git(
    repo: Path,
    ref: str = "HEAD",
    subdir: str = "specs",
    *,
    limits: Limits = DEFAULT_LIMITS,
    processes: int | None = None,
) -> Specs:
    """Load and validate the specs under ``subdir`` at commit ``ref`` of a Git repository.

    Blobs are read from the commit's tree through GitPython; nothing is checked out, so the
    working tree (and uncommitted edits) play no part. ``Specs.revision`` is the commit sha.
    ``processes`` as for :func:`load_files`.

    Raises:
        LoadError: no repository at ``repo``, an unknown ``ref``, or no ``subdir`` there.
        SpecError: with every problem found.
    """
    with git_commit(repo, ref, subdir) as commit:
        return load_files(
            commit.files(limits), revision=commit.sha, limits=limits, processes=processes
        )
