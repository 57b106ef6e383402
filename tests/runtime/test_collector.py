"""The garbage collector is off through nested sweep passes and back on, survivors frozen."""

from __future__ import annotations

import gc
import weakref

from reconciler.runtime.collector import paused_collector


def test_the_collector_is_off_until_the_last_pause_ends_then_on_with_survivors_frozen() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with paused_collector():
        assert not gc.isenabled()
        with paused_collector():
            assert not gc.isenabled()
        assert not gc.isenabled()
        survivor = [object()]
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen
    assert survivor


def test_a_collector_that_was_off_stays_off() -> None:
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


def test_a_pass_s_reference_cycles_are_collected_before_its_survivors_are_frozen() -> None:
    found: list[object] = []
    with paused_collector():
        cycle = _Cycle()
        marker = weakref.ref(cycle)
        del cycle  # garbage only a collection can free
        found.append(marker)
    assert marker() is None  # collected, not frozen for good
    assert found
