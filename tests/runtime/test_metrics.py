"""The daemon's metrics: a private registry, one method per update, Prometheus text out."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.runtime.breaker import Breakers, BreakerSettings, BreakerState
from reconciler.runtime.metrics import CONTENT_TYPE, Metrics, ResourceTally, error_kind

EXPECTED_NAMES = {
    "reconciler_passes_total",
    "reconciler_pass_duration_seconds",
    "reconciler_queue_depth",
    "reconciler_api_calls_total",
    "reconciler_api_errors_total",
    "reconciler_rate_limited_total",
    "reconciler_breaker_state",
    "reconciler_resources",
    "reconciler_drift_age_seconds",
    "reconciler_commit_to_converged_seconds",
    "reconciler_webhook_requests_total",
    "reconciler_leader",
}


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, keyed by name and sorted labels."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def filled() -> Metrics:
    metrics = Metrics()
    metrics.pass_finished(1.5)
    metrics.pass_finished(0.2, ok=False)
    metrics.set_queue_depth("urgent", 3)
    metrics.set_queue_depth("sweep", 40)
    metrics.api_call("cloudflare", 200)
    metrics.api_call("cloudflare", 429)
    metrics.api_error("cloudflare", TransientError("cloudflare", "slow down", status=429))
    metrics.provider_failure(TransientError("stripe", "timed out"))
    metrics.set_breaker_state("whatsapp", BreakerState.OPEN)
    metrics.set_resources({("Ready", "True"): 7, ("Stuck", "True"): 1})
    metrics.set_drift_age(90)
    metrics.observe_converged(1.2)
    metrics.webhook("git", "accepted")
    metrics.webhook("stripe", "bad_signature")
    metrics.set_leader(True)
    return metrics


def test_rendered_text_names_every_metric_of_the_issue() -> None:
    text = filled().render().decode()
    for name in EXPECTED_NAMES:
        assert name in text, name
    assert CONTENT_TYPE.startswith("text/plain")


def test_updates_show_up_with_their_labels_and_values() -> None:
    found = samples(filled())
    assert found[("reconciler_passes_total", (("result", "ok"),))] == 1
    assert found[("reconciler_passes_total", (("result", "error"),))] == 1
    assert found[("reconciler_pass_duration_seconds_count", ())] == 2
    assert found[("reconciler_pass_duration_seconds_sum", ())] == pytest.approx(1.7)
    assert found[("reconciler_queue_depth", (("lane", "sweep"),))] == 40
    assert found[("reconciler_api_calls_total", (("provider", "cloudflare"), ("status", "429")))]
    assert found[("reconciler_api_calls_total", (("provider", "stripe"), ("status", "error")))]
    assert found[("reconciler_rate_limited_total", (("provider", "cloudflare"),))] == 1
    assert (
        found[
            ("reconciler_api_errors_total", (("kind", "rate_limited"), ("provider", "cloudflare")))
        ]
        == 1
    )
    assert found[("reconciler_api_errors_total", (("kind", "transient"), ("provider", "stripe")))]
    assert found[("reconciler_breaker_state", (("provider", "whatsapp"),))] == 2
    assert found[("reconciler_resources", (("condition", "Ready"), ("status", "True")))] == 7
    assert found[("reconciler_drift_age_seconds", ())] == 90
    assert found[("reconciler_commit_to_converged_seconds_count", ())] == 1
    assert found[("reconciler_webhook_requests_total", (("result", "accepted"), ("source", "git")))]
    assert found[("reconciler_leader", ())] == 1


def test_resource_counts_are_replaced_not_accumulated() -> None:
    metrics = filled()
    metrics.set_resources({("Ready", "False"): 2})
    found = samples(metrics)
    assert found[("reconciler_resources", (("condition", "Ready"), ("status", "False")))] == 2
    assert ("reconciler_resources", (("condition", "Ready"), ("status", "True"))) not in found
    assert ("reconciler_resources", (("condition", "Stuck"), ("status", "True"))) not in found


def test_two_metrics_objects_never_share_values_nor_the_global_registry() -> None:
    first, second = Metrics(), Metrics()
    first.set_leader(True)
    first.api_call("d1", 200)
    assert samples(second)[("reconciler_leader", ())] == 0
    assert not any(name.startswith("reconciler_") for name in REGISTRY._names_to_collectors)


def test_breaker_changes_can_drive_the_gauge() -> None:
    metrics = Metrics()
    now = [0.0]
    breakers = Breakers(
        settings=BreakerSettings(1), clock=lambda: now[0], on_change=metrics.set_breaker_state
    )
    breakers.record_failure(TransientError("whatsapp", "gateway down"))
    assert samples(metrics)[("reconciler_breaker_state", (("provider", "whatsapp"),))] == 2


def test_error_kinds_separate_429_transient_and_permanent_failures() -> None:
    assert error_kind(TransientError("cloudflare", "x", status=429)) == "rate_limited"
    assert error_kind(TransientError("cloudflare", "x", status=503)) == "transient"
    assert error_kind(NotFoundError("stripe", "x", status=404)) == "not_found"
    assert error_kind(PermanentError("stripe", "x", status=400)) == "permanent"
    assert error_kind(KeyError("x")) == "other"


def test_negative_ages_are_clamped_to_zero() -> None:
    metrics = Metrics()
    metrics.set_drift_age(-5)
    assert samples(metrics)[("reconciler_drift_age_seconds", ())] == 0


def test_process_build_git_and_workqueue_metrics_use_the_usual_names() -> None:
    from reconciler.runtime.workqueue import Failure, WorkQueue

    metrics = Metrics()
    now = [100.0]
    queue = WorkQueue(clock=lambda: now[0], observer=metrics.workqueue)
    queue.add("Site/a")
    queue.add("Site/a")  # de-duplicated: one add
    now[0] = 102.0
    key = queue.get_nowait()
    assert key == "Site/a"
    metrics.workqueue.watch(queue.running)
    now[0] = 102.5
    running = metrics.render().decode()
    assert 'workqueue_longest_running_processor_seconds{name="reconciler"} 0.5' in running
    assert 'workqueue_unfinished_work_seconds{name="reconciler"} 0.5' in running
    now[0] = 102.0
    queue.failure(key, Failure("boom"))
    now[0] = 103.0
    queue.done(key)
    metrics.git_fetch(0.25, ok=True, at=1_700_000_000.0)
    metrics.git_fetch(1.0, ok=False, at=1_700_000_060.0)
    text = metrics.render().decode()
    for line in (
        'workqueue_adds_total{name="reconciler"} 2.0',  # the add and the backoff re-queue
        'workqueue_retries_total{name="reconciler"} 1.0',
        'workqueue_queue_duration_seconds_sum{name="reconciler"} 2.0',
        'workqueue_work_duration_seconds_sum{name="reconciler"} 1.0',
        'reconciler_git_fetches_total{result="ok"} 1.0',
        'reconciler_git_fetches_total{result="error"} 1.0',
        "reconciler_git_last_successful_fetch_timestamp_seconds 1.7e+09",
    ):
        assert line in text, line
    assert "workqueue_depth{" in text
    assert "process_cpu_seconds_total" in text or "process_start_time_seconds" in text
    assert 'reconciler_build_info{python="' in text


def test_the_tally_keeps_its_counts_as_conditions_change_and_resources_leave() -> None:
    tally = ResourceTally()
    tally.record("Site/a", "Synced", "False", "blocked: budget")
    tally.record("Site/b", "Synced", "False", "blocked: budget")
    tally.record("Site/b", "Stuck", "True", "publish failed 3 times")
    tally.record("Site/c", "Synced", "True", "")
    assert tally.counts() == {("Synced", "False"): 2, ("Stuck", "True"): 1, ("Synced", "True"): 1}
    assert tally.by_reason("Synced", "False") == {"blocked: budget": 2}

    tally.record("Site/a", "Synced", "True", "")  # a's change went through
    assert tally.counts()[("Synced", "False")] == 1
    assert tally.counts()[("Synced", "True")] == 2

    tally.drop(["Site/b", "Site/unknown"])  # b left the specs and the world
    assert tally.counts() == {("Synced", "True"): 2}
    assert tally.by_reason("Synced", "False") == {}
    assert tally.by_reason("Stuck", "True") == {}
