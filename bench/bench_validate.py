"""Benchmark: load and validate generated fleets from a directory and from a Git commit.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_validate [--sites N ...]``.
For each fleet size it generates a fleet with ``bench/fleetgen.py``, writes it under a temporary
directory, commits it into a temporary Git repository (GitPython), then runs each load in a fresh
child process so the figures are clean: wall time of the load itself, wall time of the whole
process (interpreter start, imports and load), CPU time, and peak memory (``ru_maxrss``).

Columns: ``load`` is the wall time of loading and validating; ``process`` adds interpreter start
and imports; ``cpu`` is the process's CPU time; ``peak RSS`` its ``VmHWM``; ``children`` the CPU
time of its child processes, the worker processes that read and parse a large fleet
(``spec/parallel.py``, from 20,000 files: the 100,000-site fleet) or the ``git`` commands of a
Git load, and the largest one's peak RSS. The memory target is checked against the main
process plus as many children as the load may run workers, each at that peak (an upper
bound: forked workers share pages with the main process).

``--processes N`` passes ``processes=N`` to the loaders (``1``: all in one process); without it
the loaders choose (automatic).

Targets: a 10,000-site fleet validates in under 3 s and under 400 MB (issue 2); a 100,000-site
fleet in under 12 s and under 1 GB (issue 13), each printed beside its figures (``target``
column: the wall-time and peak-RSS bounds, then ``met`` or what is over). The 100,000-site fleet
(about 155,000 files) is generated once per run into the run's temporary directory and loaded
from the directory only: committing it to Git would take longer than the benchmark itself. The
machine's load average is printed first, because on a shared machine it dominates the wall
times; ``cpu`` is then the fairer figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.fleetgen import generate

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DIRECTORY_ONLY_FROM = 100_000
"""Fleets this large are measured from the directory only (see the module docstring)."""
TARGETS = {10_000: (3.0, 400.0), 100_000: (12.0, 1000.0)}
"""Sites -> (seconds, MB) the load must stay under."""


def _child(mode: str, location: str, processes: int | None) -> int:
    """Run one load in this process and print its figures as JSON (called via --child)."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    from reconciler.spec.load import load_directory, load_git

    imported = time.perf_counter()
    if mode == "dir":
        specs = load_directory(Path(location), processes=processes)
    else:
        specs = load_git(Path(location), "HEAD", "specs", processes=processes)
    done = time.perf_counter()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "load_s": done - imported,
                "cpu_s": time.process_time() - cpu_start,
                "maxrss_mb": _peak_rss_mb(),
                "workers_cpu_s": workers.ru_utime + workers.ru_stime,
                "workers_maxrss_mb": workers.ru_maxrss / 1024,
                "workers": _worker_count(processes, workers.ru_utime + workers.ru_stime),
                "summary": specs.summary(),
            }
        )
    )
    return 0


class _ChildrenMemory:
    """Samples the private memory of process ``pid``'s children every 50 ms (Linux ``/proc``).

    It runs in the parent of the measured process, so the load runs in a process of one thread
    as under the CLI (a process with other threads starts its workers from a forkserver:
    ``spec/parallel.py``'s ``start_method``).

    Forked workers share the main process's pages until either side writes to them, so their
    RSS counts what they share; ``Private_Clean + Private_Dirty`` of ``smaps_rollup`` is what
    each holds alone. ``total_mb`` adds up each child's peak: None without ``/proc``.
    """

    def __init__(self, pid: int) -> None:
        self._peaks: dict[int, float] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._children = Path(f"/proc/{pid}/task/{pid}/children")
        self._readable = self._children.exists()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def total_mb(self) -> float | None:
        return sum(self._peaks.values()) if self._readable else None

    def _run(self) -> None:
        while not self._stopped.wait(0.05):
            try:
                children = self._children.read_text().split()
            except OSError:
                return
            for pid in children:
                private = _private_mb(pid)
                if private is not None:
                    self._peaks[int(pid)] = max(self._peaks.get(int(pid), 0.0), private)


def _private_mb(pid: str) -> float | None:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return None  # gone already
    kilobytes = sum(
        int(line.split()[1])
        for line in lines
        if line.startswith(("Private_Clean:", "Private_Dirty:"))
    )
    return kilobytes / 1024


def _worker_count(processes: int | None, children_cpu: float) -> int:
    """How many child processes to count at the largest one's peak: none when there were
    none, else as many as the load may have run as workers (an upper bound)."""
    from reconciler.spec import parallel

    if not children_cpu:
        return 0
    return processes if processes is not None else parallel.automatic_processes()


def _peak_rss_mb() -> float:
    """This process's own peak RSS in MB.

    ``/proc/self/status`` VmHWM belongs to the process's memory image, so it is not inflated
    by the parent: Linux carries ``ru_maxrss`` over ``execve`` from the forked copy of a large
    parent (``make bench`` runs every benchmark in one process). ``ru_maxrss`` elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(mode: str, location: Path, processes: int | None) -> dict[str, float | str | None]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "bench.bench_validate", "--child", mode, str(location)]
    if processes is not None:
        command += ["--processes", str(processes)]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    sampler = _ChildrenMemory(child.pid)
    sampler.start()
    stdout, stderr = child.communicate()
    sampler.stop()
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command, stdout, stderr)
    figures: dict[str, float | str | None] = json.loads(stdout)
    figures["workers_private_mb"] = sampler.total_mb()
    figures["process_s"] = time.perf_counter() - started
    return figures


def _verdict(size: int, figures: dict[str, float | str | None]) -> str:
    """``< 12 s, < 1000 MB: met``, or what is over; empty for a size without a target."""
    if size not in TARGETS:
        return ""
    seconds, megabytes = TARGETS[size]
    over = []
    if float(figures["load_s"] or 0) >= seconds:
        over.append("time")
    if _total_mb(figures) >= megabytes:
        over.append("memory")
    return f"< {seconds:g} s, < {megabytes:g} MB: {'over ' + '+'.join(over) if over else 'met'}"


def _total_mb(figures: dict[str, float | str | None]) -> float:
    """Peak RSS of the main process plus each child's peak private memory (without ``/proc``:
    as many children as there may be workers, each at the largest one's peak RSS)."""
    private = figures["workers_private_mb"]
    if private is None:
        private = float(figures["workers"] or 0) * float(figures["workers_maxrss_mb"] or 0)
    return float(figures["maxrss_mb"] or 0) + float(private)


def _commit(root: Path) -> None:
    import git

    repository = git.Repo.init(root)
    with repository:
        repository.git.add("specs")
        repository.git.commit("-q", "-m", "generated fleet", author="Bench <bench@example.invalid>")


def run(sizes: tuple[int, ...], seed: int, processes: int | None = None) -> list[str]:
    """Generate, commit and measure each fleet size; return the printed report lines."""
    lines = [
        f"bench_validate (seed {seed}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}, processes {processes or 'automatic'})",
        f"{'sites':>7} {'source':<6} {'load':>7} {'process':>8} {'cpu':>7} {'peak RSS':>9}  "
        f"{'children':<14} {'target':<22} fleet",
    ]
    print(lines[0])
    print(lines[1])
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"fleet-{size}"
            generate(root / "specs", size, seed)
            sources = [("dir", root / "specs")]
            if size < DIRECTORY_ONLY_FROM:
                _commit(root)
                sources.append(("git", root))
            for mode, location in sources:
                figures = _measure(mode, location, processes)
                line = (
                    f"{size:>7} {mode:<6} {figures['load_s']:>6.2f}s "
                    f"{figures['process_s']:>7.2f}s {figures['cpu_s']:>6.2f}s "
                    f"{figures['maxrss_mb']:>6.0f} MB  {_workers(figures):<14} "
                    f"{_verdict(size, figures):<22} {figures['summary']}"
                )
                print(line, flush=True)
                lines.append(line)
    return lines


def _workers(figures: dict[str, float | str | None]) -> str:
    """``7.50s, 160 MB`` (CPU and peak private memory of all children), or ``none``."""
    if not figures["workers"]:
        return "none"
    private = figures["workers_private_mb"]
    memory = float(private) if private is not None else float(figures["workers_maxrss_mb"] or 0)
    return f"{float(figures['workers_cpu_s'] or 0):.2f}s, {memory:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    """Command line entry; ``bench/run_all.py`` calls it without arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--processes", type=int, default=None, help="worker processes (default: automatic)"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "LOCATION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, location = args.child
        return _child(mode, location, args.processes)
    run(tuple(args.sites), args.seed, args.processes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
