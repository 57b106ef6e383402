"""The performance budget check: pure, readable violations, limits inclusive."""

from __future__ import annotations

import pytest

from reconciler.core.budget import (
    BudgetMetric,
    BudgetViolation,
    check_budget,
    describe_violations,
)
from reconciler.spec.models import PerformanceBudget

BUDGET = PerformanceBudget(max_js_kb=250, max_css_kb=50, max_third_party_scripts=2)


def test_a_build_within_budget_has_no_violation() -> None:
    assert check_budget(js_kb=12, css_kb=3, third_party_scripts=1, budget=BUDGET) == ()
    assert describe_violations(()) == ""


def test_sizes_equal_to_the_limits_are_within_budget() -> None:
    assert check_budget(js_kb=250, css_kb=50, third_party_scripts=2, budget=BUDGET) == ()


def test_js_over_budget_reads_like_the_runbook() -> None:
    (violation,) = check_budget(js_kb=312, css_kb=3, third_party_scripts=0, budget=BUDGET)
    assert violation == BudgetViolation(
        metric=BudgetMetric.JS_KB,
        actual=312,
        limit=250,
        message="JS 312 KB is over the budget of 250 KB",
    )


def test_every_violation_is_reported_in_a_stable_order() -> None:
    violations = check_budget(js_kb=251, css_kb=51, third_party_scripts=5, budget=BUDGET)
    assert [v.metric for v in violations] == [
        BudgetMetric.JS_KB,
        BudgetMetric.CSS_KB,
        BudgetMetric.THIRD_PARTY_SCRIPTS,
    ]
    assert describe_violations(violations) == (
        "performance budget exceeded: JS 251 KB is over the budget of 250 KB; "
        "CSS 51 KB is over the budget of 50 KB; "
        "5 third-party scripts are over the budget of 2"
    )


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1, "1 third-party script is over the budget of 0"),
        (3, "3 third-party scripts are over the budget of 0"),
    ],
)
def test_third_party_messages_agree_in_number(count: int, message: str) -> None:
    budget = PerformanceBudget(max_js_kb=1, max_css_kb=1, max_third_party_scripts=0)
    (violation,) = check_budget(js_kb=0, css_kb=0, third_party_scripts=count, budget=budget)
    assert violation.message == message


def test_the_check_accepts_any_object_with_the_three_limits() -> None:
    class Limits:
        max_js_kb = 10
        max_css_kb = 10
        max_third_party_scripts = 10

    (violation,) = check_budget(js_kb=11, css_kb=1, third_party_scripts=1, budget=Limits())
    assert violation.metric is BudgetMetric.JS_KB
    assert violation.message == "JS 11 KB is over the budget of 10 KB"
