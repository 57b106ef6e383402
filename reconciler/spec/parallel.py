"""Read and parse spec files, in worker processes when the fleet is large enough to pay.

Used by ``spec/load.py``, which validates what this module hands back, in listing order, in its
own process. Reading and parsing are the half of loading a fleet that needs no shared state;
the other half, validation into pydantic models and the cross-document checks, stays in the
main process, because models cost more to send between processes than to build (pickling a
100,000-site fleet's models takes 6 s; its parsed data goes through ``marshal`` in 1 s).

``processes`` (a keyword of every loader): ``None`` (the default) reads in worker processes,
one per CPU, when the tree holds at least :data:`PARALLEL_FROM` spec files and the ``fork``
start method exists (Linux), else in this process; ``1`` always reads in this process; ``n``
> 1 always uses ``n`` workers (at most 8; ``fork`` needed). From a process of one thread (the
CLI) workers are forked, so they start at once with every module already imported; from a
process with other threads (the daemon) they start from a forkserver (:func:`start_method`),
because a forked child inherits the other threads' locks as held.
Results are identical:
the same documents, positions and problems, in the same order. The workers also check the
phone numbers and hostnames they meet (``models_base.e164_problem``, ``hostname_verdict``, both
cached per string) and hand the results over, so the main process's validation finds them
done. One difference: when a fleet exceeds ``Limits.max_files`` or ``max_total_bytes``, workers
may have read a few chunks past the file that crossed it; what they read is dropped, and the
problem is the same.
"""

from __future__ import annotations

import itertools
import marshal
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from reconciler.errors import LoadError
from reconciler.spec.documents import PlainFile, from_plain, parse_documents, to_plain
from reconciler.spec.models_base import (
    e164_problem,
    hostname_verdict,
    remember_e164,
    remember_hostnames,
)
from reconciler.spec.source import Limits, ParsedFile, SourceFile
from reconciler.spec.validate import checked_strings

__all__ = [
    "CHUNK_FILES",
    "PARALLEL_FROM",
    "FileRead",
    "automatic_processes",
    "read_files",
    "start_method",
]

PARALLEL_FROM = 20_000
"""Spec files from which ``processes=None`` reads in worker processes (about 13,000 sites)."""
CHUNK_FILES = 1_000
"""Files a worker reads and parses per task."""
_MAX_PROCESSES = 8


@dataclass(frozen=True, slots=True)
class FileRead:
    """One listed spec file, read and parsed, or refused without reading (rule 7)."""

    source: SourceFile
    length: int
    """Bytes read, at most ``Limits.max_file_bytes + 1`` (0 when refused)."""
    parsed: ParsedFile | None
    """Its documents and parse problems; None when refused (``source.refused`` says why)."""


def read_files(
    files: Iterable[SourceFile], limits: Limits, processes: int | None = None
) -> Generator[FileRead, None, None]:
    """Each file read and parsed, in listing order (see the module docstring for ``processes``).

    Raises:
        LoadError: a file could not be read, when the iteration reaches it.
    """
    listed: Iterator[SourceFile] = iter(files)
    if processes is None:
        head = list(itertools.islice(listed, PARALLEL_FROM))
        processes = automatic_processes() if len(head) == PARALLEL_FROM else 1
        listed = itertools.chain(head, listed)
    if processes < 1:
        raise ValueError("processes must be 1 or more (or None for automatic)")
    if processes == 1:
        return _read_serially(listed, limits)
    return _read_in_processes(listed, limits, min(processes, _MAX_PROCESSES))


def automatic_processes() -> int:
    """Workers ``processes=None`` uses above the threshold: one per CPU (1 without ``fork``)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return min(cpus, _MAX_PROCESSES)


def start_method() -> str:
    """``fork`` when this process runs one thread (the CLI), else ``forkserver``.

    A fork copies every lock as some other thread held it at that instant (a logging handler's,
    an HTTP client's pool); a child that touched one would wait forever. A daemon's other
    threads (its HTTP server, the lease's D1 connection, the status publisher) are such
    threads, so from them workers start from a clean server process instead: they import the
    loader first (about a second), then work the same, since chunks go to them pickled either
    way.
    """
    return "fork" if threading.active_count() == 1 else "forkserver"


def _read_serially(files: Iterator[SourceFile], limits: Limits) -> Generator[FileRead, None, None]:
    for source in files:
        if source.refused is not None:
            yield FileRead(source, 0, None)
            continue
        content = source.read(limits.max_file_bytes)
        yield FileRead(source, len(content), parse_documents(source.path, content, limits))


_Record = tuple[int, PlainFile] | str | None
"""One file as a worker hands it back: (bytes read, parsed file), why it could not be read
(a ``LoadError``'s message, the last record of its chunk), or None when refused."""


def _read_in_processes(
    files: Iterator[SourceFile], limits: Limits, processes: int
) -> Generator[FileRead, None, None]:
    """Chunks of the listing go to the workers as it is walked; a bounded window of them is in
    flight at a time, so the results waiting to be validated stay a few chunks' worth.

    The workers are forked at the first chunk, before the rest is listed: a worker inherits
    little, and what it inherits stays mostly shared (a forked copy of a 155,000-file listing
    became ~55 MB of private memory in each worker, as either side touched its objects).
    """
    window = 2 * processes + 1
    context = multiprocessing.get_context(start_method())
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        pending: deque[tuple[list[SourceFile], Future[bytes]]] = deque()
        chunks = _chunks(files)
        try:
            for chunk in itertools.islice(chunks, window):
                pending.append((chunk, pool.submit(_read_chunk, _fields(chunk), limits)))
            while pending:
                chunk, future = pending.popleft()
                following = next(chunks, None)
                if following is not None:
                    task = pool.submit(_read_chunk, _fields(following), limits)
                    pending.append((following, task))
                reads, failure = _unpacked(chunk, future, limits)
                yield from reads
                if failure is not None:
                    raise LoadError(failure)
        finally:
            for _, future in pending:
                future.cancel()


def _chunks(files: Iterator[SourceFile]) -> Iterator[list[SourceFile]]:
    while chunk := list(itertools.islice(files, CHUNK_FILES)):
        yield chunk


def _fields(chunk: list[SourceFile]) -> list[tuple[str, Callable[[int], bytes], str | None]]:
    # NB: plain tuples pickle 3x faster than the slotted SourceFile (its __getstate__ and
    # __setstate__ are Python functions): 0.2 s instead of 0.6 s for 155,000 files.
    return [(source.path, source.read, source.refused) for source in chunk]


def _unpacked(
    chunk: list[SourceFile], future: Future[bytes], limits: Limits
) -> tuple[list[FileRead], str | None]:
    """The reads of a chunk's files, and why the file after them could not be read (None
    when all could)."""
    records: list[_Record]
    records, phones, hostnames = marshal.loads(future.result())
    remember_e164(phones)
    remember_hostnames(hostnames)
    reads: list[FileRead] = []
    failure = None
    for source, record in zip(chunk, records, strict=False):
        if record is None:
            reads.append(FileRead(source, 0, None))
        elif isinstance(record, str):
            failure = record
        else:
            reads.append(FileRead(source, record[0], from_plain(record[1], limits)))
    return reads, failure


def _read_chunk(
    chunk: list[tuple[str, Callable[[int], bytes], str | None]], limits: Limits
) -> bytes:
    """In a worker: read and parse a chunk of files; ``marshal`` bytes of their records and of
    the checks of the phone numbers and hostnames met."""
    records: list[_Record] = []
    phones: dict[str, str | None] = {}
    hostnames: dict[str, tuple[bool, str]] = {}
    for path, read, refused in chunk:
        if refused is not None:
            records.append(None)
            continue
        try:
            content = read(limits.max_file_bytes)
        except LoadError as exc:
            records.append(str(exc))
            break
        parsed = parse_documents(path, content, limits)
        for raw in parsed.documents:
            found_phones, found_hostnames = checked_strings(raw.data)
            phones.update((value, e164_problem(value)) for value in found_phones)
            hostnames.update((value, hostname_verdict(value)) for value in found_hostnames)
        records.append((len(content), to_plain(parsed)))
    return marshal.dumps((records, phones, hostnames))
