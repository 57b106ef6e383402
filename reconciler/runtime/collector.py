"""collector: no full garbage collection through a sweep's pass; its survivors frozen after.

Called by the daemon's pass (``runtime/daemon_pass.py``) around each sweep pass. It calls the
:mod:`gc` module only.

Why: a full collection walks every tracked object and holds the GIL throughout, whichever
thread starts it, so no worker thread can keep the event loop free of it. While a sweep builds
the observation, desired facts and plan of the whole fleet, the objects it allocates set off
full collections one after another (at 20,000 sites: 200 to 700 ms each, dozens a pass), each
one longer as the pass's values grow; at 100,000 sites each would hold the loop for seconds.

Rules:

1. While any sweep pass runs, full collections are off (the oldest generation's threshold is
   raised out of reach; a count, so passes may nest or overlap, and the first to start saves
   the thresholds the last to end puts back). Young collections go on as usual: they walk only
   the objects allocated since the last one, so they cost milliseconds, and they free the
   pass's short-lived reference cycles (exceptions and their tracebacks, tasks) as it goes.
2. When the last one ends, everything still alive is frozen (:func:`gc.freeze`, as the specs
   loader does with the specs: ``spec/load.py``): later full collections do not walk it again.
   Nothing is collected then: a collection of all a 100,000-site pass allocated would hold the
   loop for about a second. What is frozen is still freed by reference counting when its last
   reference goes; only cycles that outlived two young collections during the pass and died
   later in it stay frozen for good (none is fleet-sized: the pass's values are acyclic).
3. The daemon settles new specs (:func:`settle`, ``runtime/loop.py``): the loader froze them
   already; what the install allocated is collected young, then frozen too.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_collector", "settle"]


class _Pause:
    """How many paused blocks are open, and the thresholds before the first."""

    depth = 0
    thresholds: tuple[int, int, int] = (0, 0, 0)


_OUT_OF_REACH = 1 << 30
"""A full collection's threshold no pass reaches (rule 1)."""


@contextlib.contextmanager
def paused_collector() -> Iterator[None]:
    """Full collections off for the block; survivors frozen when the last block ends."""
    if _Pause.depth == 0:
        _Pause.thresholds = gc.get_threshold()
        young, middle, _ = _Pause.thresholds
        gc.set_threshold(young, middle, _OUT_OF_REACH)
    _Pause.depth += 1
    try:
        yield
    finally:
        _Pause.depth -= 1
        if _Pause.depth == 0:
            gc.freeze()
            gc.set_threshold(*_Pause.thresholds)


def settle() -> None:
    """Collect the young generations, then freeze what survived (rule 3)."""
    gc.collect(1)
    gc.freeze()
