"""Benchmark: load and validate generated fleets from a directory and from a Git commit.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_validate [--sites N ...]``.
For each fleet size it generates a fleet with ``bench/fleetgen.py``, writes it under a temporary
directory, commits it into a temporary Git repository (GitPython), then runs each load in a fresh
child process so the figures are clean: wall time of the load itself, wall time of the whole
process (interpreter start, imports and load), CPU time, and peak memory (``ru_maxrss``).

Columns: ``load`` is the wall time of loading and validating; ``process`` adds interpreter start
and imports; ``cpu`` is the process's CPU time (what an idle machine's wall time would be);
``peak RSS`` its ``ru_maxrss``.

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
import time
from pathlib import Path

from bench.fleetgen import generate

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DIRECTORY_ONLY_FROM = 100_000
"""Fleets this large are measured from the directory only (see the module docstring)."""
TARGETS = {10_000: (3.0, 400.0), 100_000: (12.0, 1000.0)}
"""Sites -> (seconds, MB) the load must stay under."""


def _child(mode: str, location: str) -> int:
    """Run one load in this process and print its figures as JSON (called via --child)."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    from reconciler.spec.load import load_directory, load_git

    imported = time.perf_counter()
    if mode == "dir":
        specs = load_directory(Path(location))
    else:
        specs = load_git(Path(location), "HEAD", "specs")
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "load_s": done - imported,
                "cpu_s": time.process_time() - cpu_start,
                "maxrss_mb": _peak_rss_mb(),
                "summary": specs.summary(),
            }
        )
    )
    return 0


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


def _measure(mode: str, location: Path) -> dict[str, float | str]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "bench.bench_validate", "--child", mode, str(location)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, float | str] = json.loads(completed.stdout)
    figures["process_s"] = time.perf_counter() - started
    return figures


def _verdict(size: int, figures: dict[str, float | str]) -> str:
    """``< 12 s, < 1000 MB: met``, or what is over; empty for a size without a target."""
    if size not in TARGETS:
        return ""
    seconds, megabytes = TARGETS[size]
    over = []
    if float(figures["load_s"]) >= seconds:
        over.append("time")
    if float(figures["maxrss_mb"]) >= megabytes:
        over.append("memory")
    return f"< {seconds:g} s, < {megabytes:g} MB: {'over ' + '+'.join(over) if over else 'met'}"


def _commit(root: Path) -> None:
    import git

    repository = git.Repo.init(root)
    with repository:
        repository.git.add("specs")
        repository.git.commit("-q", "-m", "generated fleet", author="Bench <bench@example.invalid>")


def run(sizes: tuple[int, ...], seed: int) -> list[str]:
    """Generate, commit and measure each fleet size; return the printed report lines."""
    lines = [
        f"bench_validate (seed {seed}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f})",
        f"{'sites':>7} {'source':<6} {'load':>7} {'process':>8} {'cpu':>7} {'peak RSS':>9}  "
        f"{'target':<22} fleet",
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
                figures = _measure(mode, location)
                line = (
                    f"{size:>7} {mode:<6} {figures['load_s']:>6.2f}s "
                    f"{figures['process_s']:>7.2f}s {figures['cpu_s']:>6.2f}s "
                    f"{figures['maxrss_mb']:>6.0f} MB  {_verdict(size, figures):<22} "
                    f"{figures['summary']}"
                )
                print(line, flush=True)
                lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line entry; ``bench/run_all.py`` calls it without arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "LOCATION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)
    run(tuple(args.sites), args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
