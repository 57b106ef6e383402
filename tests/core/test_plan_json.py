"""Saved plans read back (core/plan_json.py): the JSON the planner renders is the plan it was."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_plan import converged_world, plan_for

from reconciler.core.plan import Plan
from reconciler.core.plan_json import plan_from_json
from reconciler.core.render import Rate, plan_to_json, render_json
from reconciler.errors import PlanError

from support.core import billing, invoice

RATES = {"cloudflare": Rate(requests=1200, period=300)}


def saved(plan: Plan) -> Any:
    return json.loads(render_json(plan, rates=RATES))


def busy_plan() -> Plan:
    """A version bump plus a past-due tenant: publish, sync, locks, dunning, hostname updates."""
    return plan_for(converged_world(billing=billing(invoice("cus_acme", days=15))), version=3)


def test_a_saved_plan_reads_back_equal_to_the_plan_that_was_rendered() -> None:
    plan = busy_plan()
    assert len(plan.actions) >= 4
    assert plan_from_json(saved(plan)) == plan


def test_reading_back_keeps_dependency_order_and_dependencies() -> None:
    plan = busy_plan()
    restored = plan_from_json(saved(plan))
    assert [a.id for a in restored.actions] == [a.id for a in plan.actions]
    assert [a.depends_on for a in restored.actions] == [a.depends_on for a in plan.actions]


def test_an_edited_action_is_refused_because_its_id_no_longer_matches() -> None:
    document = saved(busy_plan())
    section = "changes" if document["changes"] else "drift"
    document[section][0]["after"]["tenant"] = "someone-else"
    with pytest.raises(PlanError, match="does not match"):
        plan_from_json(document)


def test_another_format_version_is_refused() -> None:
    document = plan_to_json(busy_plan(), rates=RATES)
    document["format_version"] = "2"
    with pytest.raises(PlanError, match="format_version '2'"):
        plan_from_json(document)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("observed_digest"), "observed_digest: expected a string"),
        (lambda d: d["order"].pop(), "order: must list every action exactly once"),
        (lambda d: d["order"].append("0123456789abcdef"), "is not among"),
        (lambda d: d.__setitem__("changes", "x"), "changes: expected a list"),
    ],
)
def test_a_malformed_saved_plan_names_the_bad_field(edit: Any, message: str) -> None:
    document = saved(busy_plan())
    edit(document)
    with pytest.raises(PlanError, match=message):
        plan_from_json(document)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PlanError, match="expected a JSON object"):
        plan_from_json(["not", "a", "plan"])
