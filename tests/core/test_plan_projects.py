"""A Pages project no Site claims is shown as unmanaged (core/plan.py rule 3)."""

from __future__ import annotations

from dataclasses import replace

from test_plan import converged_world, plan_for


def notes(plan: object) -> list[tuple[str, str, str]]:
    return [(n.category, n.target, n.reason) for n in plan.notes]  # type: ignore[attr-defined]


def test_a_project_recorded_for_a_removed_site_is_noted_unmanaged_and_nothing_is_planned() -> None:
    world = replace(converged_world(), unclaimed_projects={"old-site": "old-site-project"})
    plan = plan_for(world)
    assert plan.actions == ()
    [(category, target, reason)] = [n for n in notes(plan) if n[1].startswith("PagesProject/")]
    assert (category, target) == ("unmanaged", "PagesProject/old-site-project")
    assert "site old-site, which no spec declares" in reason
    assert "never deleted" in reason


def test_a_project_another_site_now_claims_is_not_noted() -> None:
    world = replace(converged_world(), unclaimed_projects={"renamed": "acme-home"})
    assert not [n for n in notes(plan_for(world)) if n[1].startswith("PagesProject/")]


def test_the_digest_of_a_world_without_unclaimed_projects_is_unchanged_by_the_new_fact() -> None:
    world = converged_world()
    assert world.digest() == replace(world, unclaimed_projects={}).digest()
    assert world.digest() != replace(world, unclaimed_projects={"old": "old"}).digest()
