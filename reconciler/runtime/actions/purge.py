"""Purge handler: runbook 1's manual cache purge of a site's hosts, as a planned action.

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``purge_cache`` (planned only by the ``reconciler purge`` lever, ``core.levers``). Calls the
Cloudflare adapter's ``purge_cache`` (purge by host, the same call a publish, rollback or lock
makes after it changes what a host serves); it writes nothing to D1.
"""

from __future__ import annotations

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action
from reconciler.runtime.actions.world import World, guarded, text_of
from reconciler.runtime.handler import ActionContext

__all__ = ["PurgeHandler"]


class PurgeHandler:
    """``purge_cache``: purge every host of one site from Cloudflare's cache."""

    provider: str = "cloudflare"

    def __init__(self, world: World) -> None:
        """Act through ``world``."""
        self.world = world

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Purge ``action.after["hosts"]``; purging twice is harmless, so no record is kept."""
        return await guarded(action, self._purge(action, ctx))

    async def _purge(self, action: Action, ctx: ActionContext) -> Outcome:
        value = action.after.get("hosts")
        hosts = [h for h in value if isinstance(h, str)] if isinstance(value, list) else []
        site = text_of(action.after.get("site"))
        if not hosts:
            return Outcome(
                action.id, Status.FAILED_PERMANENT, message=f"site {site} has no hosts to purge"
            )
        ctx.progress(f"{site}: purging {len(hosts)} hosts")
        await self.world.cloudflare.purge_cache(hosts=hosts)
        return Outcome(
            action.id, Status.APPLIED, message=f"purged {len(hosts)} hosts of {site} from the cache"
        )
