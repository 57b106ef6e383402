"""Full collections are off through nested sweep passes and back after, survivors frozen."""

from __future__ import annotations

import gc
import weakref

from reconciler.runtime.collector import paused_collector, settle


def test_full_collections_are_off_until_the_last_pause_ends_then_survivors_are_frozen() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with paused_collector():
        paused = gc.get_threshold()
        with paused_collector():
            assert gc.get_threshold() == paused
        assert gc.get_threshold() == paused
        survivor = [object()]
    assert paused[:2] == before[:2]  # young collections as usual
    assert paused[2] > 1_000_000  # the oldest generation out of reach
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > frozen
    assert survivor


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_collector():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_young_collections_free_a_pass_s_short_lived_cycles_as_it_goes() -> None:
    with paused_collector():
        cycle = _Cycle()
        marker = weakref.ref(cycle)
        del cycle  # garbage only a collection can free
        churn = [[index] for index in range(20 * gc.get_threshold()[0])]  # young collections
        assert marker() is None
        assert churn


def test_settling_collects_the_young_then_freezes() -> None:
    cycle = _Cycle()
    marker = weakref.ref(cycle)
    del cycle
    frozen = gc.get_freeze_count()
    settle()
    assert marker() is None
    assert gc.get_freeze_count() >= frozen
