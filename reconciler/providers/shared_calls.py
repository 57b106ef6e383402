"""What the Cloudflare clients of one account share besides the token bucket, to spend less.

Who calls it: :class:`reconciler.providers.cloudflare.CloudflareClient` (the project memo, the
purge batcher) and the publish handler (``runtime/actions/publish.py``: the poll schedule).
What it calls: nothing but asyncio; the purge request itself is the client's.

- :class:`ProjectMemo`: Pages projects read recently, so a publish takes its production branch
  from the read observation has just made (``wiring.Buckets`` holds one per command).
- :class:`PurgeBatcher`: concurrent host purges join one request, up to the contract's limit.
- :func:`deployment_poll_delays`: the first status read of a deployment waits as long as Pages
  usually takes, the next ones back off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

from reconciler.providers.cloudflare_models import PagesProject

__all__ = [
    "PROJECT_MEMO_TTL",
    "PURGE_WINDOW",
    "ProjectMemo",
    "PurgeBatcher",
    "deployment_poll_delays",
]

PROJECT_MEMO_TTL = 600.0
"""Seconds a Pages project read stays good for :meth:`CloudflareClient.project`."""
PURGE_WINDOW = 0.25
"""Seconds a purge waits for the purges of concurrent callers to share its request."""


def deployment_poll_delays(expected: float, interval: float) -> Iterator[float]:
    """Seconds to wait before each status read of a new Pages deployment.

    The first read waits ``expected`` (how long a deployment usually takes: one read when it
    is on time); the next ones wait ``interval``, then twice as long each time, up to eight
    intervals, so a slow deployment costs a few reads, not one every ``interval``.
    """
    yield max(0.0, expected)
    delay = interval
    while True:
        yield delay
        delay = min(delay * 2, interval * 8)


class ProjectMemo:
    """Pages projects read recently, shared by the clients of one account (observers, writers).

    A publish needs its project's production branch; observation has just read the project,
    so :meth:`CloudflareClient.project` answers from here for ``ttl`` seconds.
    """

    def __init__(
        self, ttl: float = PROJECT_MEMO_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Keep each project ``ttl`` seconds by ``clock``."""
        self._ttl = ttl
        self._clock = clock
        self._projects: dict[str, tuple[float, PagesProject]] = {}

    def put(self, project: PagesProject) -> None:
        """Remember ``project`` as read now."""
        self._projects[project.name] = (self._clock(), project)

    def get(self, name: str) -> PagesProject | None:
        """The project read within ``ttl``, or None."""
        found = self._projects.get(name)
        if found is None or self._clock() - found[0] > self._ttl:
            return None
        return found[1]


class PurgeBatcher:
    """Concurrent host purges share requests: each waits ``window`` for others to join."""

    def __init__(self, send: Callable[[list[str]], Awaitable[None]], chunk: int, window: float):
        self._send = send
        self._chunk = chunk
        self._window = window
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def purge(self, hosts: Sequence[str]) -> None:
        """Return once every host of ``hosts`` is purged; raise what its request raised."""
        loop = asyncio.get_running_loop()
        waits = []
        for host in hosts:
            future = self._pending.get(host)
            if future is None:
                future = self._pending[host] = loop.create_future()
            waits.append(future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.gather(*waits)

    async def _flush(self) -> None:
        while self._pending:
            if len(self._pending) < self._chunk:
                await asyncio.sleep(self._window)
            batch = dict(list(self._pending.items())[: self._chunk])
            for host in batch:
                del self._pending[host]
            try:
                await self._send(list(batch))
            except Exception as exc:  # handed to every caller of this batch, who raise it
                for future in batch.values():
                    future.set_exception(exc)
            else:
                for future in batch.values():
                    future.set_result(None)
