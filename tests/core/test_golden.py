"""Golden files pin the plan's text, JSON and Markdown renderings, scenario by scenario.

Each scenario of ``support/golden.py`` is planned (``derive`` + ``build_plan`` at a fixed
NOW) and rendered as terminal text (colour off), versioned JSON and a Markdown PR comment; the
bytes must equal ``tests/core/golden/<scenario>/plan.txt``, ``plan.json`` and ``plan.md``.

To accept an intended change of wording or layout, regenerate the files and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/core/test_golden.py
    git diff tests/core/golden/

With ``UPDATE_GOLDEN=1`` the comparison tests rewrite the files instead of comparing (they
still pass); the other tests here check properties every rendering must keep: identical bytes
on every run, the JSON contract (``format_version``, per-action fields, drift apart from
changes), phone numbers masked outside JSON, no secret-looking strings, the Markdown limit.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import pytest

from reconciler.core.plan import FORMAT_VERSION, Plan
from reconciler.core.render import (
    GITHUB_COMMENT_LIMIT,
    mask_phone,
    render_json,
    render_markdown,
    render_text,
)

from support.core import WHATSAPP
from support.golden import (
    LARGE_SITES,
    RATES,
    REVISION,
    SCENARIOS,
    Scenario,
    past_due_day_0,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@cache
def scenario(name: str) -> Scenario:
    return SCENARIOS[name]()


@cache
def planned(name: str) -> Plan:
    return scenario(name).plan()


def render(plan: Plan, fmt: str) -> str:
    if fmt == "plan.txt":
        return render_text(plan, rates=RATES, color=False)
    if fmt == "plan.json":
        return render_json(plan, rates=RATES)
    return render_markdown(plan, rates=RATES)


CASES = [(name, fmt) for name in SCENARIOS for fmt in SCENARIOS[name]().formats]


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}/{f}" for n, f in CASES])
def test_rendering_matches_the_golden_file(name: str, fmt: str) -> None:
    path = GOLDEN / name / fmt
    text = render(planned(name), fmt)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        return
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text.encode() == path.read_bytes(), (
        f"{name}/{fmt} differs from its golden file; if the change is intended, "
        "regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def test_every_golden_directory_belongs_to_a_scenario() -> None:
    directories = {p.name for p in GOLDEN.iterdir() if p.is_dir()}
    assert directories == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_planning_and_rendering_twice_gives_identical_bytes(name: str) -> None:
    first, second = SCENARIOS[name]().plan(), SCENARIOS[name]().plan()
    for fmt in SCENARIOS[name]().formats:
        assert render(first, fmt).encode() == render(second, fmt).encode()


def test_a_converged_world_plans_nothing_and_says_so() -> None:
    plan = planned("converged")
    assert plan.is_empty
    assert render(plan, "plan.txt").startswith("No changes.")
    document = json.loads(render(plan, "plan.json"))
    assert document["changes"] == [] and document["drift"] == [] and document["blocked"] == []


@pytest.mark.parametrize(
    ("name", "empty", "blocked"),
    [
        ("converged", True, False),
        ("domain_removed_retain", True, False),
        ("unmanaged_hostname", True, False),
        ("version_bump", False, False),
        ("revert", False, False),
        ("past_due_day_15", False, False),
        ("budget_exceeded", False, True),
        ("mass_deletion", False, True),
        ("hard_locked_publish", False, True),
        ("incomplete_hostnames", False, True),
    ],
)
def test_exit_code_semantics_follow_from_the_plan(name: str, empty: bool, blocked: bool) -> None:
    plan = planned(name)
    assert plan.is_empty is empty
    assert bool(plan.blocked) is blocked


ACTION_FIELDS = {"kind", "target", "before", "after", "reason", "source", "predicted_calls"}


@pytest.mark.parametrize("name", sorted(n for n in SCENARIOS if n != "large_fleet"))
def test_plan_json_is_versioned_and_every_action_is_complete(name: str) -> None:
    document = json.loads(render(planned(name), "plan.json"))
    assert document["format_version"] == FORMAT_VERSION == "1"
    actions = document["changes"] + document["drift"]
    assert len(actions) == len(document["order"]) == len(planned(name).actions)
    for action in actions:
        assert set(action) >= ACTION_FIELDS, action["target"]
        assert action["reason"]
        assert action["predicted_calls"]
    assert all(a["cause"] == "change" for a in document["changes"])
    assert all(a["cause"] == "drift" for a in document["drift"])


def test_drift_and_requested_changes_are_kept_apart() -> None:
    document = json.loads(render(planned("past_due_day_0"), "plan.json"))
    assert [a["kind"] for a in document["drift"]] == ["sync_billing"]
    assert [a["kind"] for a in document["changes"]] == ["send_dunning"]


def test_phone_numbers_are_masked_in_text_and_markdown_but_kept_in_json() -> None:
    plan = past_due_day_0().plan()
    text, markdown = render(plan, "plan.txt"), render(plan, "plan.md")
    masked = mask_phone(WHATSAPP)
    assert masked != WHATSAPP
    for view in (text, markdown):
        assert WHATSAPP not in view
        assert masked in view
    document = json.loads(render(plan, "plan.json"))
    assert [a["after"]["phone"] for a in document["changes"]] == [WHATSAPP]


SECRET_PATTERNS = [
    re.compile(r"\b[sr]k_(live|test)_\w+"),  # Stripe secret / restricted keys
    re.compile(r"\bwhsec_\w+"),  # Stripe webhook signing secrets
    re.compile(r"\bBearer\s+\S+", re.IGNORECASE),
    re.compile(r"\bapikey\b", re.IGNORECASE),
    re.compile(r"\b[A-Za-z0-9_\-]{40,}\b"),  # Cloudflare API tokens are 40 characters
]


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}/{f}" for n, f in CASES])
def test_no_secret_or_token_like_string_appears(name: str, fmt: str) -> None:
    text = render(planned(name), fmt)
    text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:DIGEST", text)  # the observed digest
    text = text.replace(REVISION, "REVISION")  # a Git commit id is public
    for pattern in SECRET_PATTERNS:
        assert pattern.search(text) is None, f"{name}/{fmt}: {pattern.search(text)}"


def test_the_large_fleet_comment_is_truncated_within_githubs_limit_with_a_note() -> None:
    plan = planned("large_fleet")
    assert len({a.site for a in plan.actions if a.site}) == LARGE_SITES
    # one routing-table write per tenant covers its sites' new domains
    assert sum(1 for a in plan.actions if a.kind.value == "write_routes") == 20
    full_size = len(render_markdown(plan, rates=RATES, limit=10**9))
    assert full_size > GITHUB_COMMENT_LIMIT
    markdown = render(plan, "plan.md")
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert "**Truncated:**" in markdown
    assert "reconciler plan --format json" in markdown
    assert markdown.count("<details>") == markdown.count("</details>")
    assert markdown.startswith("### Reconciler plan")
