"""offloop: a pass's CPU-heavy pure steps run off the event loop when they cover a large fleet.

Called by the observation (``runtime/observe.py``, ``runtime/observe_routes.py``) and the pass
pipeline (``runtime/pipeline.py``) around each step whose cost grows with the sites it covers
(joining the listings with D1, the Pages and build needs, derive and plan). It calls
:func:`asyncio.to_thread`.

Rules:

1. A step over more than :data:`OFF_LOOP_SITES` sites (or the whole fleet) runs on a worker
   thread, so the event loop keeps renewing the lease and serving webhooks meanwhile; the
   interpreter switches threads every few milliseconds (``sys.getswitchinterval``) even while
   the step holds the GIL. A smaller step costs milliseconds and runs inline.
2. A step run off the loop reads values nothing else mutates while it runs (frozen specs, the
   observation's own readings) and returns a new value; it performs no I/O and awaits nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

__all__ = ["OFF_LOOP_SITES", "off_loop"]

T = TypeVar("T")

OFF_LOOP_SITES = 1_000
"""Above this many sites a step's CPU (about 10 ms a thousand sites) is worth a thread hop."""


async def off_loop(sites: int | None, step: Callable[[], T]) -> T:
    """``step()``, on a worker thread when it covers more than :data:`OFF_LOOP_SITES` sites.

    Args:
        sites: the sites the step covers; None: the whole fleet.
        step: a pure step (module rule 2).
    """
    if sites is not None and sites <= OFF_LOOP_SITES:
        return step()
    return await asyncio.to_thread(step)
