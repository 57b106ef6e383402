"""Purge handler: runbook 1's manual cache purge of a site's hosts, as a planned action.

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``purge_cache`` (planned only by the ``reconciler purge`` lever, ``core.levers``). Calls the
Cloudflare adapter's ``purge_cache`` (purge by host, the same call a publish, rollback or lock
makes after it changes what a host serves); it writes nothing to D1.
"""

from __future__ import annotations

from reconciler.core.outcome import Outcome
from reconciler.core.payloads import PurgePayload, payload_as
from reconciler.core.plan import Action
from reconciler.core.provider import Provider
from reconciler.runtime.actions.world import World, applied
from reconciler.runtime.handler import ActionContext

__all__ = ["PurgeHandler"]


class PurgeHandler:
    """``purge_cache``: purge every host of one site from Cloudflare's cache."""

    provider: str = Provider.CLOUDFLARE

    def __init__(self, world: World) -> None:
        """Act through ``world``."""
        self.world = world

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Purge the payload's hosts; purging twice is harmless, so no record is kept."""
        want = payload_as(action.payload, PurgePayload)
        ctx.progress(f"{want.site}: purging {len(want.hosts)} hosts")
        await self.world.cloudflare.purge_cache(hosts=list(want.hosts))
        return applied(
            action,
            f"purged {len(want.hosts)} hosts of {want.site} from the cache",
        )
