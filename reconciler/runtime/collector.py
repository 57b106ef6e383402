"""collector: the garbage collector paused through a sweep's pass, its survivors frozen after.

Called by the daemon's pass (``runtime/daemon_pass.py``) around each sweep pass. It calls the
:mod:`gc` module only.

Why: a full collection walks every tracked object and holds the GIL throughout, whichever
thread starts it, so no worker thread can keep the event loop free of it. While a sweep builds
the observation, desired facts and plan of the whole fleet, the objects it allocates set off
full collections one after another (at 20,000 sites: 200 to 700 ms each, dozens a pass), each
one longer as the pass's values grow; at 100,000 sites each would hold the loop for seconds.

Rules:

1. While any sweep pass runs, automatic collection is off (a count, so passes may nest or
   overlap); the first pass to start turns it off, the last to end turns it back on, as
   before, only if it was on.
2. When the last one ends, the young generations are collected, then everything still alive
   is frozen (:func:`settle`; :func:`gc.freeze`, as the specs loader does with the specs:
   ``spec/load.py``): later collections do not walk it again. With collection off, all a pass
   allocated sits in the youngest generation, so that one young collection frees the pass's
   reference cycles (without it they would be frozen, kept for good, at every sweep) and never
   walks the older, long-lived state. What is frozen is still freed by reference counting
   when its last reference goes.
3. The daemon settles the same way when it installs new specs (``runtime/loop.py``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_collector", "settle"]


class _Pause:
    """How many paused blocks are open, and whether the collector was on before the first."""

    depth = 0
    was_enabled = False


@contextlib.contextmanager
def paused_collector() -> Iterator[None]:
    """Automatic collection off for the block; survivors frozen when the last block ends."""
    if _Pause.depth == 0:
        _Pause.was_enabled = gc.isenabled()
        gc.disable()
    _Pause.depth += 1
    try:
        yield
    finally:
        _Pause.depth -= 1
        if _Pause.depth == 0:
            settle()
            if _Pause.was_enabled:
                gc.enable()


def settle() -> None:
    """Collect the young generations, then freeze what survived (rule 2)."""
    gc.collect(1)
    gc.freeze()
