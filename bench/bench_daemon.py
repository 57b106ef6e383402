"""Benchmark: a daemon following a converged fleet at rest; costs per hour against the targets.

Run with ``make bench`` (all benchmarks; 10,000 sites) or ``python -m bench.bench_daemon
[--sites N] [--idle SECONDS] [--billing-sample N] [--site-sample N]``; ``--sites 100000`` is
the scale of issue #13 (generation, seeding and the first full pass under the production
budget take most of its run). Generates a fleet (``bench/fleetgen.py``), commits it to a
temporary Git repository the daemon follows, starts the sandbox (Cloudflare and Evolution
simulators in this process; no localstripe: ``bench/converged.py``'s fake Stripe that knows
every customer, guarded like the real client) and seeds the converged state
(``bench/converged.py``). Then one :class:`~reconciler.runtime.loop.Daemon`, built by
:class:`~reconciler.wiring.DaemonWorld` with the production :class:`LoopSettings` and the
production Cloudflare budget (1,200 requests per 300 s), runs in real time through:

1. **start**: take the lease, fetch the branch, one full pass (``Sweep/all``): what a restart
   costs;
2. **rest** (``--idle`` seconds): nothing is due; lease renewals, Git polls (every 60 s);
3. **moving hostname sweep**: ``Sweep/moving-hostnames``, queued by hand (due every 600 s):
   the filtered listings of the statuses that can still move, and a pass over their sites;
4. **full hostname sweep** (up to 20,000 sites; above, its cost is its pages): ``Sweep/hostnames``
   (every 6 h, postponed by each full sweep, so it costs nothing per hour by default);
5. **billing sample** (``--billing-sample`` tenants): the billing sweep's per-tenant passes,
   queued by hand (the sweep queues every tenant once per 3,600 s);
6. **site sample** (``--site-sample`` sites): ``Site/<name>`` passes as a commit queues them
   (event-driven, so not part of the per-hour projection).

A scoped pass must cost what its scope costs, not what the fleet costs: the CPU of each billing
and site pass is printed (mean, median, max), with the cores the billing sweep needs (its CPU
per hour / 3,600) and the longest pass.

A full sweep cycle (6 h) cannot be shown in bounded real time, so the per-hour figures are
computed from the schedule (the sweeps' periods after the daemon's own budget check,
``runtime/daemon_sweep.py``) and the measured cost of each kind of pass. CPU is the process's
(``resource.getrusage``) minus the simulators' HTTP threads (``/proc/self/task/*/stat``);
memory is the process RSS (``/proc/self/status``) above the baseline measured after seeding,
sampled every 0.5 s; a loop-lag monitor (a 20 ms sleep, and how late it wakes) gives the
longest event-loop block of each phase and notes every time the lease stops being held. Each
phase prints the 1-minute load average (the machine may be shared). Printed, with the command:
every figure, then each target figure beside its target: Cloudflare calls per hour at rest
(<= 25 % of 14,400), the longest loop block (<= 1 s), the lease lost (no), the daemon's RSS at
rest (< 1,200 MiB).

Returns 1 when a target is missed or a pass failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import converged, fleetgen
from reconciler.core.lane import Lane
from reconciler.core.observed import Source
from reconciler.runtime.daemon_sweep import sweep_periods
from reconciler.runtime.loop import (
    SWEEP_ALL,
    SWEEP_HOSTNAMES,
    SWEEP_MOVING,
    Daemon,
    LoopSettings,
    guarded_client,
)
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.pipeline import Call, CallLog, Outcome, Simulated
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs, load_directory
from reconciler.wiring import DaemonWorld, load_settings

HOUR = 3600.0
CF_BUDGET_PER_HOUR = 1200 * HOUR / 300  # 14,400
CF_SHARE_TARGET = 0.25  # of the hourly budget, at rest
LAG_TARGET = 1.0  # seconds: the longest the event loop may be held
RSS_TARGET = 1200.0  # MiB of daemon at rest
MAX_FILES = 100_000  # the spec loader's limit (reconciler/spec/load.py, Limits.max_files)
FULL_HOSTNAME_SWEEP_UP_TO = 20_000  # sites; above, its cost is its pages (too slow to wait for)
SIM_THREADS = ("cloudflare-http", "evolution-http")
_TICK = os.sysconf("SC_CLK_TCK")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu(native_id: int) -> float:
    try:
        text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def daemon_cpu() -> float:
    """CPU seconds of this process so far, minus the simulators' server threads."""
    sims = sum(
        _thread_cpu(t.native_id)
        for t in threading.enumerate()
        if t.name in SIM_THREADS and t.native_id is not None
    )
    return _process_cpu() - sims


def rss_mib() -> float:
    """The process's resident set, MiB."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


class RouteCounts(CallLog):
    """A simulator's call log that keeps counts by route and status only.

    The simulators' own logs keep every exchange with its answer (a page of 50 hostnames each):
    they grow with every sweep after the baseline is measured, and the daemon's memory would be
    charged with them.
    """

    def __init__(self, clock: VirtualClock) -> None:
        """Count nothing yet."""
        super().__init__(clock)
        self._counting = threading.Lock()
        self._routes: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    def record(self, call: Call, template: str, outcome: Outcome, fault: str | None) -> None:
        """Count one exchange."""
        with self._counting:
            self.seq += 1
            self._routes[f"{call.method} {template}"] += 1
            self._statuses[str(outcome.status)] += 1

    def counts(self) -> dict[str, object]:
        """The counts, as ``CallLog.counts`` gives them."""
        with self._counting:
            return {
                "calls": sum(self._routes.values()),
                "by_route": dict(sorted(self._routes.items())),
                "by_status": dict(sorted(self._statuses.items())),
            }

    def clear(self) -> None:
        """Count from zero (sequence numbers keep growing)."""
        with self._counting:
            self._routes.clear()
            self._statuses.clear()

    def restart(self) -> None:
        """Count from zero, numbering from 1 again."""
        self.clear()
        self.seq = 0

    @classmethod
    def install(cls, sim: Simulated) -> None:
        """Give ``sim`` a counting log instead of its own."""
        sim.call_log = cls(sim.clock)


@dataclass
class Phase:
    """What one phase cost; ``pass_cpu`` is the CPU of each pass (timed per pass)."""

    name: str
    wall: float
    cpu: float
    calls: dict[str, int]
    passes: int
    pass_cpu: list[float] = field(default_factory=list)
    pass_wall: list[float] = field(default_factory=list)
    lag: float = 0.0  # the longest the event loop was held during the phase, seconds
    load: float = 0.0  # the 1-minute load average at its end


@dataclass
class Meter:
    """Counts calls by provider across the daemon's clients and the fake Stripe."""

    world: DaemonWorld
    stripe: converged.FakeStripe
    rss: list[float] = field(default_factory=list)

    def calls(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for part in (self.world.readers.requests(), self.world.writers.requests()):
            total.update(part)
        total["stripe"] += self.stripe.calls
        return dict(total)

    lag: float = 0.0  # the longest loop block since the last reset
    lease_lost: int = 0  # times the leader stopped leading before the stop was asked
    stopping: bool = False
    _leading: bool = False

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append(rss_mib())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)

    async def watch_loop(self, stop: asyncio.Event, tick: float = 0.02) -> None:
        """The loop-lag monitor: how late a short sleep wakes is how long the loop was held;
        it also notes each time the lease stops being held."""
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(tick)
            self.lag = max(self.lag, time.monotonic() - before - tick)
            leading = self.world.lease.is_leader
            if self._leading and not leading and not self.stopping:
                self.lease_lost += 1
            self._leading = leading

    def take_lag(self) -> float:
        """The longest block since the last call, and start again."""
        lag, self.lag = self.lag, 0.0
        return lag


async def _measure(
    name: str, meter: Meter, daemon: Daemon, until: Callable[[], bool], limit: float
) -> Phase:
    calls, cpu, passes = meter.calls(), daemon_cpu(), len(daemon.passes)
    started = time.monotonic()
    meter.take_lag()
    # The daemon offers no "pass finished" event to await: poll its pass list.
    while not until() and time.monotonic() - started < limit:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    if not until():
        raise RuntimeError(f"{name}: not finished within {limit:g} s")
    after = meter.calls()
    return Phase(
        name=name,
        wall=time.monotonic() - started,
        cpu=daemon_cpu() - cpu,
        calls={p: after.get(p, 0) - calls.get(p, 0) for p in sorted(after)},
        passes=len(daemon.passes) - passes,
        lag=meter.take_lag(),
        load=os.getloadavg()[0],
    )


async def _each(
    name: str, meter: Meter, daemon: Daemon, keys: list[str], lane: Lane, limit: float
) -> Phase:
    """One pass per key, one at a time, each timed on its own (CPU and wall)."""
    calls, cpu, passes = meter.calls(), daemon_cpu(), len(daemon.passes)
    started = time.monotonic()
    meter.take_lag()
    per_cpu: list[float] = []
    per_wall: list[float] = []
    for key in keys:
        count = sum(1 for p in daemon.passes if p.key == key)
        before_cpu, before_wall = daemon_cpu(), time.monotonic()
        daemon.queue.add(key, lane)
        done = _done(daemon, key, count + 1)
        while not done() and time.monotonic() - started < limit:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if not done():
            raise RuntimeError(f"{name}: {key} not finished within {limit:g} s")
        per_cpu.append(daemon_cpu() - before_cpu)
        per_wall.append(time.monotonic() - before_wall)
    after = meter.calls()
    return Phase(
        name=name,
        wall=time.monotonic() - started,
        cpu=daemon_cpu() - cpu,
        calls={p: after.get(p, 0) - calls.get(p, 0) for p in sorted(after)},
        passes=len(daemon.passes) - passes,
        pass_cpu=per_cpu,
        pass_wall=per_wall,
        lag=meter.take_lag(),
        load=os.getloadavg()[0],
    )


@dataclass
class Run:
    """What a run measured."""

    phases: list[Phase]
    memory: dict[str, float]
    problems: list[str]
    rates: Rates
    lease_lost: int


def _done(daemon: Daemon, key: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        return (
            sum(1 for p in daemon.passes if p.key == key) >= count
            and key not in daemon.queue.processing
            and not daemon.queue.is_queued(key)
        )

    return check


async def _run(
    sandbox: Sandbox,
    specs: Specs,
    repo: Path,
    workdir: Path,
    idle: float,
    sample: int,
    site_sample: int,
) -> Run:
    env = sandbox.settings_env()
    loop_settings = LoopSettings()  # production periods and budget
    world = DaemonWorld(
        load_settings(env),
        repo_url=repo.as_uri(),
        branch="main",
        workdir=workdir,
        holder="bench-daemon",
        clock=sandbox.clock.now,
    )
    stripe = converged.FakeStripe([t.spec.stripe.customer for t in specs.tenants.values()])
    clients = world.parts.observe_clients
    world.parts.observe_clients = replace(
        clients,
        stripe=guarded_client(
            stripe, provider="stripe", breakers=world.breakers, metrics=world.metrics
        ),
        gaps={k: v for k, v in clients.gaps.items() if k is not Source.STRIPE},
    )
    meter = Meter(world, stripe)
    stop = asyncio.Event()
    baseline = rss_mib()
    sampler = asyncio.create_task(meter.sample_rss(stop))
    watcher = asyncio.create_task(meter.watch_loop(stop))
    problems: list[str] = []
    async with world:
        daemon = Daemon(world.parts, loop_settings)
        task = asyncio.create_task(daemon.run())
        # a whole-fleet pass reads about 4,150 pages at 100,000 sites: over 1,000 s at 4 a second
        pass_limit = max(900.0, 0.02 * len(specs.sites))
        phases = [
            await _measure(
                "start + first full pass", meter, daemon, _done(daemon, SWEEP_ALL, 1), pass_limit
            )
        ]
        at_rest_from = len(meter.rss)
        rest_deadline = time.monotonic() + idle
        phases.append(
            await _measure(
                f"at rest ({idle:g} s)",
                meter,
                daemon,
                lambda: time.monotonic() >= rest_deadline,
                idle + 5,
            )
        )
        steady = meter.rss[at_rest_from:]
        daemon.queue.add(SWEEP_MOVING, Lane.SWEEP)
        phases.append(
            await _measure(
                "moving hostname sweep", meter, daemon, _done(daemon, SWEEP_MOVING, 1), pass_limit
            )
        )
        if len(specs.sites) <= FULL_HOSTNAME_SWEEP_UP_TO:
            daemon.queue.add(SWEEP_HOSTNAMES, Lane.SWEEP)
            phases.append(
                await _measure(
                    "full hostname sweep", meter, daemon, _done(daemon, SWEEP_HOSTNAMES, 1), 900
                )
            )
        tenants = _spread(sorted(specs.tenants), sample)
        phases.append(
            await _each(
                f"billing passes ({len(tenants)} tenants)",
                meter,
                daemon,
                [f"Tenant/{n}" for n in tenants],
                Lane.SWEEP,
                600,
            )
        )
        sites = _spread(sorted(specs.sites), site_sample)
        phases.append(
            await _each(
                f"site passes ({len(sites)} sites)",
                meter,
                daemon,
                [f"Site/{n}" for n in sites],
                Lane.CHANGE,
                600,
            )
        )
        problems = [
            f"{p.key}: {', '.join(f'{k}: {v}' for k, v in p.failed.items())}"
            for p in daemon.passes
            if p.failed
        ]
        bucket_waits = {"cloudflare": world.writers.cloudflare.bucket.waited}
        moving_pages = daemon.sweep.last_requests
        meter.stopping = True
        daemon.stop()
        await asyncio.wait_for(task, timeout=60)
    stop.set()
    await sampler
    await watcher
    memory = {
        "baseline": baseline,
        "peak": max(meter.rss, default=baseline) - baseline,
        "steady": (statistics.median(steady) if steady else baseline) - baseline,
        **{f"waited_{k}": v for k, v in bucket_waits.items()},
    }
    rates = Rates.of(loop_settings, specs, moving_pages)
    return Run(phases, memory, problems, rates, meter.lease_lost)


def _spread(names: list[str], count: int) -> list[str]:
    """``count`` names spread evenly over ``names`` (not just the first few)."""
    if count <= 0 or not names:
        return []
    step = max(1, len(names) // count)
    return names[::step][:count]


@dataclass(frozen=True)
class Rates:
    """How many of each pass an hour brings, from the schedule (the budget check included)."""

    full: float  # full sweeps (Sweep/all)
    moving: float  # moving hostname sweeps
    hostnames: float  # full hostname sweeps on their own (0: each full sweep postpones them)
    full_hostname_pages: int  # what one costs when it was not measured

    @classmethod
    def of(cls, settings: LoopSettings, specs: Specs, moving_pages: int) -> Rates:
        fit = sweep_periods(settings, declared=specs.domain_count, moving_pages=moving_pages)
        own = fit.full < settings.full_sweep
        return cls(
            full=HOUR / settings.full_sweep,
            moving=HOUR / fit.moving,
            hostnames=HOUR / fit.full if own else 0.0,
            full_hostname_pages=specs.domain_count // 50 + 1,
        )


def _phase(phases: list[Phase], prefix: str) -> Phase | None:
    return next((p for p in phases if p.name.startswith(prefix)), None)


def _per_hour(
    phases: list[Phase], rates: Rates, tenants: int, sample: int
) -> tuple[float, dict[str, float]]:
    full, rest, moving = phases[:3]
    per_second = {p: n / rest.wall for p, n in rest.calls.items()}
    cpu = rest.cpu / rest.wall * HOUR + rates.moving * moving.cpu + rates.full * full.cpu
    calls: dict[str, float] = {}
    for provider in sorted(set(full.calls) | set(rest.calls) | set(moving.calls)):
        calls[provider] = (
            per_second.get(provider, 0.0) * HOUR
            + rates.moving * moving.calls.get(provider, 0)
            + rates.full * full.calls.get(provider, 0)
        )
    hostnames = _phase(phases, "full hostname sweep")
    if rates.hostnames and hostnames is not None:
        cpu += rates.hostnames * hostnames.cpu
        for provider, count in hostnames.calls.items():
            calls[provider] = calls.get(provider, 0.0) + rates.hostnames * count
    elif rates.hostnames:
        calls["cloudflare"] = calls.get("cloudflare", 0.0) + (
            rates.hostnames * rates.full_hostname_pages
        )
    billing = _phase(phases, "billing passes")
    if sample and billing is not None:
        cpu += billing.cpu / sample * tenants
        for provider, count in billing.calls.items():
            calls[provider] = calls.get(provider, 0.0) + count / sample * tenants
    return cpu, calls


def _pass_figures(phase: Phase) -> str:
    if not phase.pass_cpu:
        return "no passes"
    ms = [c * 1000 for c in phase.pass_cpu]
    return (
        f"CPU per pass mean {statistics.mean(ms):.1f} ms, median {statistics.median(ms):.1f} ms, "
        f"max {max(ms):.1f} ms; longest pass {max(phase.pass_wall) * 1000:.0f} ms wall"
    )


def run(sites: int, seed: int, idle: float, sample: int, site_sample: int = 0) -> int:
    """Generate, seed, run the daemon through its phases; print every figure."""
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        repo = Path(tmp) / "fleet"
        started = time.perf_counter()
        fleet = _generate(repo / "specs", sites, seed)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "specs")
        _git(repo, "commit", "-q", "-m", "Generated fleet")
        specs = load_directory(repo / "specs")
        print(
            f"fleet: {fleet.sites} sites, {fleet.domains} domains, {fleet.tenants} tenants "
            f"(generated and committed in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        with Sandbox(with_stripe=False, state_dir=Path(tmp) / "sandbox") as world:
            started = time.perf_counter()
            converged.converge(world.cloudflare, world.cloudflare.d1_path, specs)
            print(f"converged sandbox seeded in {time.perf_counter() - started:.1f} s", flush=True)
            for sim in (world.cloudflare, world.evolution):
                if sim is not None:
                    RouteCounts.install(sim)
            result = asyncio.run(
                _run(world, specs, repo, Path(tmp) / "daemon", idle, sample, site_sample)
            )
            routes = world.cloudflare.summary()["by_route"]
    _print_phases(result, routes)
    cloudflare = _print_hourly(result, specs, sample)
    return _print_targets(result, cloudflare)


def _generate(root: Path, sites: int, seed: int) -> fleetgen.Fleet:
    """``fleetgen.generate``, one document a file; a fleet over the loader's file limit
    (100,000 files: 100,000 sites bring 150,000 documents) is bundled, ten a file."""
    fleet = fleetgen.build(sites, seed)
    per_file = 1 if len(fleet.files) <= MAX_FILES else 10
    bundles: dict[str, list[dict[str, object]]] = {}
    for index, (path, documents) in enumerate(sorted(fleet.files.items())):
        folder = Path(path).parent
        name = path if per_file == 1 else f"{folder}/bundle-{index // per_file:06d}.yaml"
        bundles.setdefault(name, []).extend(documents)
    for directory in {Path(path).parent for path in bundles}:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for path, documents in bundles.items():
        (root / path).write_text(fleetgen.render(path, documents), encoding="utf-8")
    return fleet


def _print_phases(result: Run, routes: object) -> None:
    phases, memory = result.phases, result.memory
    print("phases (real time, production loop settings and budget 1200/300 s):")
    for phase in phases:
        calls = ", ".join(f"{p} {n}" for p, n in phase.calls.items() if n) or "none"
        print(
            f"  {phase.name}: wall {phase.wall:.1f} s, daemon CPU {phase.cpu:.2f} s, "
            f"{phase.passes} passes, longest loop block {phase.lag * 1000:.0f} ms, "
            f"load {phase.load:.2f}, calls: {calls}"
        )
    for phase in phases:
        if phase.pass_cpu:
            print(f"  {phase.name}: {_pass_figures(phase)}")
    print(f"  Cloudflare calls by route over the run: {routes}")
    print(f"  Cloudflare client budget: callers waited {memory['waited_cloudflare']:.1f} s in all")
    print(
        f"memory: baseline after seeding {memory['baseline']:.0f} MiB (simulators + fleet); "
        f"daemon on top: peak {memory['peak']:.0f} MiB, at rest {memory['steady']:.0f} MiB"
    )
    rest = phases[1]
    print(
        f"at rest: {rest.cpu / rest.wall * 100:.2f} % of one core "
        f"({rest.cpu / rest.wall * HOUR:.0f} CPU s per hour before sweeps)"
    )


def _print_hourly(result: Run, specs: Specs, sample: int) -> float:
    rates = result.rates
    cpu, hourly = _per_hour(result.phases, rates, len(specs.tenants), sample)
    cloudflare = hourly.get("cloudflare", 0.0)
    print(
        f"per hour, from the schedule ({rates.full:g} full sweeps, {rates.moving:g} moving "
        f"hostname sweeps, {rates.hostnames:g} full hostname sweeps on their own, billing sweep "
        "of every tenant) and the measured passes:"
    )
    print(f"  daemon CPU: {cpu:.0f} s per hour ({cpu / HOUR * 100:.1f} % of one core)")
    billing = _phase(result.phases, "billing passes")
    if billing is not None and billing.pass_cpu:
        sweep_cpu = statistics.mean(billing.pass_cpu) * len(specs.tenants)
        print(
            f"  billing sweep: {len(specs.tenants):,} tenant passes x "
            f"{statistics.mean(billing.pass_cpu) * 1000:.1f} ms = {sweep_cpu:.0f} CPU s per hour "
            f"({sweep_cpu / HOUR:.3f} cores)"
        )
    print("  API calls: " + ", ".join(f"{p} {n:,.0f}" for p, n in sorted(hourly.items())))
    whatsapp = hourly.get("whatsapp", 0.0)
    if whatsapp > 1800:
        print(
            f"  NOTE: {whatsapp:,.0f} WhatsApp gateway reads per hour exceed the client's "
            "Evolution budget (30 per 60 s = 1,800 per hour): the billing sweep reads the "
            "gateway's connection state once per tenant pass"
        )
    return cloudflare


def _print_targets(result: Run, cloudflare: float) -> int:
    """Each figure beside its target; 1 when one is missed or a pass failed."""
    share = cloudflare / CF_BUDGET_PER_HOUR
    lag = max(p.lag for p in result.phases)
    rss = result.memory["steady"]
    checks = [
        (
            "Cloudflare calls per hour at rest",
            f"{cloudflare:,.0f} = {share * 100:.1f} % of {CF_BUDGET_PER_HOUR:,.0f}",
            f"<= {CF_SHARE_TARGET * 100:.0f} %",
            share <= CF_SHARE_TARGET,
        ),
        ("longest event-loop block", f"{lag:.3f} s", f"<= {LAG_TARGET:g} s", lag <= LAG_TARGET),
        (
            "leader lease lost",
            "yes" if result.lease_lost else "no",
            "no",
            not result.lease_lost,
        ),
        ("daemon RSS at rest", f"{rss:.0f} MiB", f"< {RSS_TARGET:.0f} MiB", rss < RSS_TARGET),
    ]
    print(f"targets (load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    for name, figure, target, ok in checks:
        print(f"  {name}: {figure} (target {target}) {'ok' if ok else 'MISSED'}")
    if result.problems:
        print(f"UNEXPECTED: {len(result.problems)} passes failed: {result.problems[:5]}")
    return 0 if all(ok for *_, ok in checks) and not result.problems else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds at rest to measure")
    parser.add_argument(
        "--billing-sample", type=int, default=50, help="tenant billing passes to measure"
    )
    parser.add_argument("--site-sample", type=int, default=20, help="site passes to measure")
    args = parser.parse_args(argv if argv is not None else [])
    print(
        f"command: python -m bench.bench_daemon --sites {args.sites} --seed {args.seed} "
        f"--idle {args.idle:g} --billing-sample {args.billing_sample} "
        f"--site-sample {args.site_sample}"
    )
    return run(args.sites, args.seed, args.idle, args.billing_sample, args.site_sample)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
