"""The platform's Workers pinned to versions: ``core/plan_workers.py``'s rules, with literals."""

from __future__ import annotations

import pytest

from reconciler.core.desired import derive
from reconciler.core.observed import Observed, Source
from reconciler.core.plan import ActionKind, Lane, build_plan
from reconciler.core.worker_facts import ObservedWorker, WorkerRollout
from reconciler.errors import SpecError
from reconciler.spec.load import SourceFile, load_files

from support.core import NOW, _reader

SCRIPT = "site-builder-api-production"
IDS = {1: "v1-id", 2: "v2-id", 3: "v3-id"}
WORKER = """\
apiVersion: sitebuilder/v1
kind: Worker
metadata: {{name: api}}
spec:
  script: site-builder-api-production
  production: {{version: {version}}}
{extra}"""


def specs(version: int = 3, extra: str = "") -> object:
    text = WORKER.format(version=version, extra=extra)
    return load_files([SourceFile("specs/workers/api.yaml", _reader(text))], revision="c0ffee")


def world(serving: tuple[tuple[str, float], ...] = (("v2-id", 100.0),), **more: object) -> Observed:
    worker = ObservedWorker(script=SCRIPT, versions=dict(IDS), serving=serving)
    return Observed(at=NOW, workers={SCRIPT: worker}, **more)  # type: ignore[arg-type]


def plan_of(specs_: object, observed: Observed) -> object:
    return build_plan(derive(specs_, {}, now=NOW), observed)  # type: ignore[arg-type]


def test_rule_1_a_bump_deploys_the_existing_version_with_the_split_to_return_to() -> None:
    plan = plan_of(specs(3), world())
    (action,) = plan.actions  # type: ignore[attr-defined]
    assert action.kind is ActionKind.DEPLOY_WORKER_VERSION and action.target == "Worker/api"
    assert action.after == {
        "script": SCRIPT,
        "versions": [{"number": 3, "percentage": 100, "version_id": "v3-id"}],
        "return_to": [{"number": 2, "percentage": 100, "version_id": "v2-id"}],
        "health": None,
    }
    assert action.reason == (
        "deploy site-builder-api-production to version 3 at 100 % (serving version 2 at 100 %)"
    )
    assert action.source == "specs/workers/api.yaml:6:16"
    assert plan.summary_counts()["deploy"] == 1  # type: ignore[attr-defined]


def test_rule_1_moving_back_is_an_urgent_rollback_and_agreement_plans_nothing() -> None:
    plan = plan_of(specs(1), world())
    (action,) = plan.actions  # type: ignore[attr-defined]
    assert action.kind is ActionKind.ROLLBACK_WORKER_VERSION and action.lane is Lane.URGENT
    assert plan_of(specs(2), world()).is_empty  # type: ignore[attr-defined]


def test_a_canary_is_a_split_between_two_existing_versions() -> None:
    canary = "  canary: {version: 3, percentage: 10}\n"
    plan = plan_of(specs(2, canary), world())
    (action,) = plan.actions  # type: ignore[attr-defined]
    assert action.after["versions"] == [
        {"number": 2, "percentage": 90, "version_id": "v2-id"},
        {"number": 3, "percentage": 10, "version_id": "v3-id"},
    ]
    split = (("v3-id", 10.0), ("v2-id", 90.0))
    assert plan_of(specs(2, canary), world(split)).is_empty  # type: ignore[attr-defined]


def test_rule_2_a_version_cloudflare_does_not_hold_is_blocked_never_uploaded() -> None:
    plan = plan_of(specs(7), world())
    assert not plan.actions  # type: ignore[attr-defined]
    (blocked,) = plan.blocked  # type: ignore[attr-defined]
    assert blocked.gate == "missing_worker_version"
    assert "version 7 of site-builder-api-production does not exist (versions: 1, 2, 3)" in (
        blocked.reason
    )
    assert blocked.source == "specs/workers/api.yaml:6:16"


def test_rule_3_an_unknown_script_or_an_unread_api_blocks() -> None:
    plan = plan_of(specs(3), Observed(at=NOW))
    assert [b.gate for b in plan.blocked] == ["missing_worker"]  # type: ignore[attr-defined]
    unread = Observed(at=NOW, incomplete={Source.WORKERS: "HTTP 503"})
    (blocked,) = plan_of(specs(3), unread).blocked  # type: ignore[attr-defined]
    assert blocked.gate == "incomplete" and "HTTP 503" in blocked.reason


def test_rule_4_a_version_turned_back_by_its_health_check_stays_blocked_until_the_spec_moves() -> (
    None
):
    rollout = WorkerRollout(SCRIPT, 3, "version 2 at 100 %", "GET /healthz answered 500", NOW)
    observed = world(worker_rollouts={SCRIPT: rollout})
    plan = plan_of(specs(3), observed)
    assert not plan.actions  # type: ignore[attr-defined]
    (blocked,) = plan.blocked  # type: ignore[attr-defined]
    assert blocked.gate == "health" and "traffic went back to version 2 at 100 %" in blocked.reason
    (note,) = plan.notes  # type: ignore[attr-defined]
    assert note.category == "rolled_back"
    assert plan_of(specs(2), observed).is_empty  # type: ignore[attr-defined]  # the revert agrees
    assert plan_of(specs(1), observed).actions  # type: ignore[attr-defined]  # another version


def test_the_health_check_travels_in_after() -> None:
    check = "  health_check:\n    url: https://api.example/healthz\n    expect: [200, 204]\n"
    check += "    steps: [10, 50]\n"
    (action,) = plan_of(specs(3, check), world()).actions  # type: ignore[attr-defined]
    assert action.after["health"] == {
        "url": "https://api.example/healthz",
        "expect": [200, 204],
        "steps": [10, 50],
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("  canary: {version: 3, percentage: 10}\n", "canary.version"),
        ("  health_check: {url: 'https://a.test/h', steps: [50, 10]}\n", "health_check.steps[1]"),
        ("  health_check: {url: 'https://a.test/h', expect: [42]}\n", "health_check.expect[0]"),
    ],
)
def test_bad_worker_specs_are_located_errors(extra: str, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        specs(3, extra)
    (problem,) = caught.value.problems
    assert (problem.path, problem.subject) == ("specs/workers/api.yaml", "Worker/api")
    assert problem.field.endswith(field)


def test_a_turned_back_worker_reports_synced_false_rolled_back_until_the_spec_moves() -> None:
    from reconciler.core.conditions import conditions_for
    from reconciler.core.conditions_common import Coverage
    from reconciler.core.outcome import Report

    rollout = WorkerRollout(SCRIPT, 3, "version 2 at 100 %", "GET /healthz answered 500", NOW)
    observed = world(worker_rollouts={SCRIPT: rollout})

    def synced(version: int) -> object:
        desired = derive(specs(version), {}, now=NOW)  # type: ignore[arg-type]
        report = Report(build_plan(desired, observed), ())
        updates = conditions_for(
            desired=desired, observed=observed, report=report, coverage=Coverage(), now=NOW
        )
        (found,) = [u for u in updates if u.resource == "Worker/api" and u.condition == "Synced"]
        return found

    held = synced(3)
    assert (held.status, held.reason) == (False, "RolledBack")  # type: ignore[attr-defined]
    assert "traffic went back to version 2 at 100 %" in held.message  # type: ignore[attr-defined]
    agreed = synced(2)  # the revert
    assert agreed.status is True  # type: ignore[attr-defined]


def test_the_pr_comment_shows_workers_under_the_platform() -> None:
    from reconciler.core.render import render_markdown

    text = render_markdown(plan_of(specs(1), world()), rates={})  # type: ignore[arg-type]
    assert "<b>Platform Workers</b>: 1 change" in text
    assert "| < | roll back Worker site-builder-api-production: version 1 at 100 % |" in text
