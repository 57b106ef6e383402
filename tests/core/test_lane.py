from __future__ import annotations

from reconciler.core.lane import Lane


def test_lanes_are_served_urgent_then_change_then_sweep_whatever_their_text_sorts_as() -> None:
    assert sorted(Lane, key=lambda lane: lane.rank) == [Lane.URGENT, Lane.CHANGE, Lane.SWEEP]
    assert sorted(Lane) != list(Lane)  # as text "change" < "sweep" < "urgent": use rank
    assert [lane.value for lane in Lane] == ["urgent", "change", "sweep"]  # plan JSON, metrics
