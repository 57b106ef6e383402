"""waiting: sleep until an event is set or a timer ends, whichever comes first.

The work queue waits for a key to be added or the next backoff to end; the Git follower for
a nudge (a webhook) or its poll interval; the daemon loop, standing by, for a stop or the
next lease attempt. Each passes its event and its injected sleep (virtual in tests), so no
waiting ever reads the wall clock, and the loser of the race is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

__all__ = ["event_or_timer"]


async def event_or_timer(event: asyncio.Event, timer: Awaitable[None] | None) -> None:
    """Return once ``event`` is set or ``timer`` has finished (None: the event alone)."""
    waiter = asyncio.ensure_future(event.wait())
    if timer is None:
        try:
            await waiter
        finally:
            waiter.cancel()
        return
    sleeping = asyncio.ensure_future(timer)
    try:
        await asyncio.wait((waiter, sleeping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeping.cancel()
