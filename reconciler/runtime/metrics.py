"""The daemon's Prometheus metrics, in a registry of its own.

Who calls it: the daemon loop (passes, queue depth, resources, drift, convergence time, leader),
the provider call path (API calls, errors, 429s), the breakers (``breaker_state``) and
``runtime/server.py`` (webhook requests; ``GET /metrics`` serves :meth:`Metrics.render`). What
it calls: ``prometheus_client`` only. Each :class:`Metrics` owns a fresh
``CollectorRegistry`` (never the process-global one), so two daemons in one test process, or
one test after another, never share counters.

Every metric of the daemon is named ``reconciler_<name>``; the work queue's follow
controller-runtime (``workqueue_adds_total``, ``workqueue_retries_total``,
``workqueue_depth``, ``workqueue_queue_duration_seconds``, ``workqueue_work_duration_seconds``,
label ``name``), and the process ones every Prometheus client exports (``process_*``,
``python_info``). docs/daemon.md lists them with their labels.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import (
    Counter as PromCounter,
)

from reconciler import __version__
from reconciler.errors import NotFoundError, PermanentError, ProviderError, TransientError

__all__ = ["CONTENT_TYPE", "NAMESPACE", "Metrics", "error_kind"]

NAMESPACE = "reconciler"
CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`Metrics.render`'s output (Prometheus text format 0.0.4)."""

PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
QUEUE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
CONVERGE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


def error_kind(error: BaseException) -> str:
    """Classify a failed call for ``api_errors_total{kind}``.

    Returns:
        ``rate_limited`` (a 429), ``transient``, ``not_found``, ``permanent`` or ``other``
        (not a provider error at all: a bug).
    """
    if isinstance(error, TransientError):
        return "rate_limited" if error.status == 429 else "transient"
    if isinstance(error, NotFoundError):
        return "not_found"
    if isinstance(error, PermanentError):
        return "permanent"
    return "other"


_DECLARED: Mapping[str, tuple[str, ...]] = {
    # name (under the namespace; ``_total`` is added to counters): help text, label names
    "workqueue_adds": ("Total number of adds handled by workqueue.", "name"),
    "workqueue_retries": ("Total number of retries handled by workqueue.", "name"),
    "workqueue_depth": ("Current depth of workqueue.", "name"),
    "workqueue_queue_duration_seconds": (
        "How long in seconds an item stays in workqueue before being requested.",
        "name",
    ),
    "workqueue_work_duration_seconds": (
        "How long in seconds processing an item from workqueue takes.",
        "name",
    ),
    "workqueue_unfinished_work_seconds": (
        "How many seconds of work has been done that is in progress and hasn't been "
        "observed by work_duration.",
        "name",
    ),
    "workqueue_longest_running_processor_seconds": (
        "How many seconds has the longest running processor for workqueue been running.",
        "name",
    ),
    "build_info": (
        "Always 1; the labels say which reconciler and Python run.",
        "version",
        "python",
    ),
    "git_fetches": ("Fetches of the followed branch, by result (ok, error).", "result"),
    "git_fetch_duration_seconds": ("Wall time of one fetch of the followed branch.",),
    "git_last_successful_fetch_timestamp_seconds": (
        "When the followed branch was last fetched successfully (epoch seconds).",
    ),
    "passes": ("Reconciliation passes finished, by result (ok or error).", "result"),
    "pass_duration_seconds": ("Wall time of one reconciliation pass.",),
    "queue_depth": ("Resources waiting in the work queue, by priority lane.", "lane"),
    "api_calls": (
        "Calls to external APIs, by provider and HTTP status ('error' when none came back).",
        "provider",
        "status",
    ),
    "api_errors": (
        "Failed external API calls, by provider and kind "
        "(transient, rate_limited, permanent, not_found, other).",
        "provider",
        "kind",
    ),
    "rate_limited": ("HTTP 429 answers received, by provider.", "provider"),
    "breaker_state": (
        "Circuit breaker state by provider: 0 closed, 1 half-open, 2 open.",
        "provider",
    ),
    "resources": (
        "Resources by condition type and status (True, False, Unknown).",
        "condition",
        "status",
    ),
    "blocked_resources": (
        "Resources not Synced, by reason (BlastRadius, WaitingForReading, PublishFailed...).",
        "reason",
    ),
    "stuck_resources": (
        "Resources Stuck (a human must act), by reason (RetriesExhausted, RecreateLimit...).",
        "reason",
    ),
    "specs_valid": (
        "1 while the followed branch's head has valid specs, 0 while it is refused (the "
        "last good commit is still served).",
    ),
    "specs_problems": ("Problems in the specs at the followed branch's head (0 when valid).",),
    "drift_age_seconds": (
        "Age of the oldest unresolved drift (0 when the world matches the specs).",
    ),
    "commit_to_converged_seconds": (
        "Time from a specs commit (its committer date) to the world converged on it.",
    ),
    "webhook_requests": (
        "Webhook requests by source (git, stripe) and result (accepted, rejected reason).",
        "source",
        "result",
    ),
    "leader": ("1 while this process holds the leader lease, 0 while it stands by.",),
}
"""Every metric the daemon declares: its help text and label names (docs/daemon.md lists them)."""


@dataclass(frozen=True, slots=True)
class _Declare:
    """Registers the metrics ``_DECLARED`` describes in one registry, under one namespace."""

    registry: CollectorRegistry
    namespace: str = NAMESPACE

    def counter(self, name: str) -> PromCounter:
        """The counter ``name`` (exported with ``_total``)."""
        documentation, *labels = _DECLARED[name]
        return PromCounter(
            name, documentation, labels, namespace=self.namespace, registry=self.registry
        )

    def gauge(self, name: str) -> Gauge:
        """The gauge ``name``."""
        documentation, *labels = _DECLARED[name]
        return Gauge(name, documentation, labels, namespace=self.namespace, registry=self.registry)

    def histogram(self, name: str, buckets: tuple[float, ...]) -> Histogram:
        """The histogram ``name``, with these buckets."""
        documentation, *labels = _DECLARED[name]
        return Histogram(
            name,
            documentation,
            labels,
            namespace=self.namespace,
            buckets=buckets,
            registry=self.registry,
        )


_K = TypeVar("_K", bound=Hashable)


class ResourceTally:
    """The last known status and reason of every (resource, condition), for the gauges.

    The loop feeds it each pass's condition updates and the resources that are gone;
    :meth:`Metrics.set_tally` turns it into ``resources``, ``blocked_resources`` (``Synced``
    False, by reason) and ``stuck_resources`` (``Stuck`` True, by reason).
    """

    def __init__(self) -> None:
        """Start empty."""
        self._rows: dict[str, dict[str, tuple[str, str]]] = {}  # resource -> condition -> row
        # every distinct (status, reason) once: a fleet's million rows share a few dozen tuples
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        # kept as the rows change, so a pass of one tenant costs what it records, not the fleet
        self._counts: Counter[tuple[str, str]] = Counter()  # (condition, status)
        self._reasons: Counter[tuple[str, str, str]] = Counter()  # (condition, status, reason)

    def record(self, resource: str, condition: str, status: str, reason: str) -> None:
        """Remember one condition's status (``True``/``False``/``Unknown``) and reason."""
        conditions = self._rows.setdefault(resource, {})
        old = conditions.get(condition)
        if old is not None:
            self._forget(condition, old)
        pair = (status, reason)
        conditions[condition] = self._pairs.setdefault(pair, pair)
        self._counts[(condition, status)] += 1
        self._reasons[(condition, status, reason)] += 1

    def drop(self, resources: Iterable[str]) -> None:
        """Forget every condition of ``resources`` (they left the specs and the world)."""
        for resource in set(resources):
            for condition, old in self._rows.pop(resource, {}).items():
                self._forget(condition, old)

    def counts(self) -> dict[tuple[str, str], int]:
        """Resources by (condition, status)."""
        return dict(self._counts)

    def by_reason(self, condition: str, status: str) -> dict[str, int]:
        """Resources whose ``condition`` has ``status``, by reason."""
        return {
            reason: count
            for (name, value, reason), count in self._reasons.items()
            if name == condition and value == status
        }

    def _forget(self, condition: str, row: tuple[str, str]) -> None:
        status, reason = row
        _decrement(self._counts, (condition, status))
        _decrement(self._reasons, (condition, status, reason))


def _decrement(counter: Counter[_K], key: _K) -> None:
    """One fewer of ``key``; a count that reaches zero leaves (its gauge label goes too)."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class WorkQueueMetrics:
    """The work queue's metrics in controller-runtime's names (``workqueue_*``, label
    ``name``), fed by :class:`reconciler.runtime.workqueue.WorkQueue` as its observer."""

    def __init__(self, registry: CollectorRegistry, name: str = "reconciler") -> None:
        """Register the workqueue metrics in ``registry`` for the queue called ``name``."""
        self.name = name
        wq = _Declare(registry, namespace="")
        self.adds = wq.counter("workqueue_adds")
        self.retries = wq.counter("workqueue_retries")
        self.depth = wq.gauge("workqueue_depth")
        self.queue_duration = wq.histogram("workqueue_queue_duration_seconds", QUEUE_BUCKETS)
        self.work_duration = wq.histogram("workqueue_work_duration_seconds", QUEUE_BUCKETS)
        self.unfinished = wq.gauge("workqueue_unfinished_work_seconds")
        self.longest = wq.gauge("workqueue_longest_running_processor_seconds")
        for metric in (self.adds, self.retries, self.depth):
            metric.labels(name=name)
        self.watch(list)

    def watch(self, running: Callable[[], list[float]]) -> None:
        """Read work in progress from ``running`` (``WorkQueue.running``) at each scrape."""
        self.unfinished.labels(name=self.name).set_function(lambda: sum(running()))
        self.longest.labels(name=self.name).set_function(lambda: max(running(), default=0.0))

    def added(self, depth: int) -> None:
        """A key was queued."""
        self.adds.labels(name=self.name).inc()
        self.depth.labels(name=self.name).set(depth)

    def taken(self, depth: int, waited: float) -> None:
        """A key was handed out after ``waited`` seconds in the queue."""
        self.depth.labels(name=self.name).set(depth)
        self.queue_duration.labels(name=self.name).observe(waited)

    def finished(self, seconds: float) -> None:
        """A key's pass took ``seconds``."""
        self.work_duration.labels(name=self.name).observe(seconds)

    def retried(self) -> None:
        """A failed key was re-queued with backoff."""
        self.retries.labels(name=self.name).inc()


class Metrics:
    """Every metric the daemon exports, with one plain method per update."""

    def __init__(self) -> None:
        """Create the registry and register every metric (all start at zero or empty)."""
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # process_* (CPU, memory, open files, start time) and python_info, as every
        # Prometheus client exports them.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        declare = _Declare(registry)
        self.build_info = declare.gauge("build_info")
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)
        self.workqueue = WorkQueueMetrics(registry)
        self.git_fetches = declare.counter("git_fetches")
        self.git_fetch_duration = declare.histogram("git_fetch_duration_seconds", PASS_BUCKETS)
        self.git_last_fetch = declare.gauge("git_last_successful_fetch_timestamp_seconds")
        self.passes = declare.counter("passes")
        self.pass_duration = declare.histogram("pass_duration_seconds", PASS_BUCKETS)
        self.queue_depth = declare.gauge("queue_depth")
        self.api_calls = declare.counter("api_calls")
        self.api_errors = declare.counter("api_errors")
        self.rate_limited = declare.counter("rate_limited")
        self.breaker_state = declare.gauge("breaker_state")
        self.resources = declare.gauge("resources")
        self.blocked_resources = declare.gauge("blocked_resources")
        self.stuck_resources = declare.gauge("stuck_resources")
        self.specs_valid = declare.gauge("specs_valid")
        self.specs_problems = declare.gauge("specs_problems")
        self.drift_age = declare.gauge("drift_age_seconds")
        self.commit_to_converged = declare.histogram(
            "commit_to_converged_seconds", CONVERGE_BUCKETS
        )
        self.webhook_requests = declare.counter("webhook_requests")
        self.leader = declare.gauge("leader")

    # ------------------------------------------------------------------ loop

    def pass_finished(self, duration: float, *, ok: bool = True) -> None:
        """Count one pass and observe its duration.

        Args:
            duration: seconds the pass took.
            ok: false when the pass ended in an error.
        """
        self.passes.labels(result="ok" if ok else "error").inc()
        self.pass_duration.observe(duration)

    def set_queue_depth(self, lane: str, depth: int) -> None:
        """Set how many resources wait in ``lane``."""
        self.queue_depth.labels(lane=lane).set(depth)

    def set_resources(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the resource counts: ``{(condition, status): count}``.

        Combinations absent from ``counts`` disappear from the output, so a condition no
        resource carries any more does not linger with a stale value.
        """
        self.resources.clear()
        for (condition, status), count in sorted(counts.items()):
            self.resources.labels(condition=condition, status=status).set(count)

    def set_tally(self, tally: ResourceTally) -> None:
        """Publish the resource gauges from ``tally``, stale label sets removed."""
        self.set_resources(tally.counts())
        self.blocked_resources.clear()
        for reason, count in sorted(tally.by_reason("Synced", "False").items()):
            self.blocked_resources.labels(reason=reason).set(count)
        self.stuck_resources.clear()
        for reason, count in sorted(tally.by_reason("Stuck", "True").items()):
            self.stuck_resources.labels(reason=reason).set(count)

    def set_source(self, *, valid: bool, problems: int) -> None:
        """Whether the followed head's specs are valid, and how many problems they have."""
        self.specs_valid.set(1 if valid else 0)
        self.specs_problems.set(problems)

    def set_drift_age(self, seconds: float) -> None:
        """Set the age of the oldest unresolved drift (0 for none)."""
        self.drift_age.set(max(0.0, seconds))

    def observe_converged(self, seconds: float) -> None:
        """Observe the time from a commit being seen to the world converged on it."""
        self.commit_to_converged.observe(max(0.0, seconds))

    def git_fetch(self, seconds: float, *, ok: bool, at: float) -> None:
        """Count one fetch of the followed branch and observe how long it took."""
        self.git_fetches.labels(result="ok" if ok else "error").inc()
        self.git_fetch_duration.observe(max(0.0, seconds))
        if ok:
            self.git_last_fetch.set(at)

    def set_leader(self, leader: bool) -> None:
        """Set whether this process is the leader."""
        self.leader.set(1 if leader else 0)

    # ------------------------------------------------------------------ providers

    def api_call(self, provider: str, status: int | str) -> None:
        """Count one API call by its HTTP status; a 429 is also counted as rate-limited.

        Args:
            provider: ``cloudflare``, ``stripe``, ``d1``, ``whatsapp`` ...
            status: the HTTP status, or a word (``error``, ``timeout``) when none came back.
        """
        self.api_calls.labels(provider=provider, status=str(status)).inc()
        if str(status) == "429":
            self.rate_limited.labels(provider=provider).inc()

    def api_error(self, provider: str, error: BaseException) -> None:
        """Count one failed API call by kind (see :func:`error_kind`).

        The ``provider`` label is the one given, not ``error.provider``, so callers choose
        one vocabulary for every metric.
        """
        self.api_errors.labels(provider=provider, kind=error_kind(error)).inc()

    def provider_failure(self, error: ProviderError) -> None:
        """Count a failed call from the error alone: its provider, status and kind."""
        self.api_call(error.provider, error.status if error.status is not None else "error")
        self.api_error(error.provider, error)

    def set_breaker_state(self, provider: str, state: int) -> None:
        """Set a provider's breaker state (0 closed, 1 half-open, 2 open)."""
        self.breaker_state.labels(provider=provider).set(int(state))

    # ------------------------------------------------------------------ webhooks

    def webhook(self, source: str, result: str) -> None:
        """Count one webhook request by source and result (``accepted``, ``bad_signature``...)."""
        self.webhook_requests.labels(source=source, result=result).inc()

    # ------------------------------------------------------------------ output

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format (see :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
