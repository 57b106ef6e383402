"""The hostname sweeps: what can move is re-read often, the whole zone rarely, within a budget.

Called by the daemon's pass (``runtime/daemon_pass.py``: :class:`HostnameSweep` reads the
moving hostnames before a pass of :data:`~reconciler.runtime.scope.SWEEP_MOVING`) and by the
loop (``runtime/loop.py``: :func:`sweep_periods` before it queues a sweep). It calls the
Cloudflare reader's filtered listing (``hostname_status``, ``ssl_status``: CONTRACT.md §4.2).

Rules (docs/daemon.md, "The loop"):

1. Only the full listing of the zone (``Sweep/all``, ``Sweep/hostnames``) can say a hostname
   is gone. The moving sweep lists the hostnames in a status that can still change without us
   (not yet active, pending, failed: :data:`MOVING_HOSTNAME_STATUSES`,
   :data:`MOVING_SSL_STATUSES`) plus those that left that set since the last moving sweep
   (they changed recently: where did they go?), and passes over the sites that own them only.
   A hostname missing from a filtered listing is looked up by name, never taken for gone.
2. The hostnames a filtered listing showed are not asked for again (:class:`Prelisted`).
3. The sweeps' projected Cloudflare requests per hour (a full listing is one page per 50
   declared hostnames; a moving sweep what the last one cost) stay within
   ``sweep_budget_share`` of the hourly budget: when they would not, both hostname sweep
   periods are stretched by the same factor (:func:`sweep_periods`) and a warning says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from reconciler.core.hostname_state import PENDING_SSL, PENDING_STATUS
from reconciler.core.observed import FAILED_HOSTNAME_STATUS, FAILED_SSL_STATUS
from reconciler.providers.cloudflare_models import CustomHostname, Deployment, PagesProject
from reconciler.runtime.daemon_parts import LoopSettings
from reconciler.runtime.observe_clients import CloudflareReader
from reconciler.runtime.scope import KeyScope
from reconciler.spec.load import Specs

__all__ = [
    "MOVING_HOSTNAME_STATUSES",
    "MOVING_SSL_STATUSES",
    "HostnameSweep",
    "MovingHostnames",
    "Prelisted",
    "SweepPeriods",
    "sweep_periods",
]

log = logging.getLogger("reconciler.runtime.loop")  # NB: the daemon's lines share one logger

HOUR = 3_600.0
PAGE = 50  # hostnames per listed page (the provider's page size)

MOVING_HOSTNAME_STATUSES: tuple[str, ...] = tuple(sorted(PENDING_STATUS | FAILED_HOSTNAME_STATUS))
"""Hostname ``status`` values listed by the moving sweep, one filtered listing each (rule 1)."""

# ``pending_deployment`` is the last step before ``active`` on the documented path of a new
# certificate (CONTRACT.md §4.5); the core counts it neither pending nor failed.
MOVING_SSL_STATUSES: tuple[str, ...] = tuple(
    sorted(PENDING_SSL | FAILED_SSL_STATUS | {"pending_deployment"})
)
"""``ssl.status`` values listed by the moving sweep, one filtered listing each (rule 1)."""


def _canonical(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _pages(count: int) -> int:
    """Requests a listing of ``count`` hostnames takes: full pages, then a short (or empty) one."""
    return count // PAGE + 1


@dataclass(frozen=True, slots=True)
class MovingHostnames:
    """What one moving sweep found: the sites to pass over and the hostnames already read."""

    sites: frozenset[str]
    listed: Mapping[str, CustomHostname]  # canonical name -> as the filtered listing showed it
    requests: int  # listing requests the sweep sent


class Prelisted:
    """A Cloudflare reader that answers a by-name lookup from a filtered listing (rule 2)."""

    def __init__(self, reader: CloudflareReader, listed: Mapping[str, CustomHostname]) -> None:
        """Answer from ``listed`` where it can; ask ``reader`` for everything else."""
        self._reader = reader
        self._listed = listed

    async def get_project(self, project: str) -> PagesProject:
        """As the wrapped reader."""
        return await self._reader.get_project(project)

    async def list_projects(self) -> list[PagesProject]:
        """As the wrapped reader."""
        return await self._reader.list_projects()

    async def list_deployments(
        self, project: str, *, env: Literal["production", "preview"] | None = None
    ) -> list[Deployment]:
        """As the wrapped reader."""
        return await self._reader.list_deployments(project, env=env)

    async def list_custom_hostnames(
        self,
        *,
        hostname: str | None = None,
        per_page: int = PAGE,
        hostname_status: str | None = None,
        ssl_status: str | None = None,
    ) -> list[CustomHostname]:
        """A name the listing showed, from it; any other listing, from the wrapped reader."""
        if hostname is not None and hostname_status is None and ssl_status is None:
            found = self._listed.get(_canonical(hostname))
            if found is not None:
                return [found]
        return await self._reader.list_custom_hostnames(
            hostname=hostname,
            per_page=per_page,
            hostname_status=hostname_status,
            ssl_status=ssl_status,
        )


class HostnameSweep:
    """The moving sweep's memory: which hostnames were moving at its last listing (rule 1)."""

    def __init__(self, scope: KeyScope) -> None:
        """Map hostnames to their sites through ``scope``'s index of the specs."""
        self._scope = scope
        self._moving: frozenset[str] = frozenset()
        self.last_requests = len(MOVING_HOSTNAME_STATUSES) + len(MOVING_SSL_STATUSES)
        self._stretch = 1.0

    def periods(self, settings: LoopSettings, specs: Specs | None) -> SweepPeriods:
        """The hostname sweeps' periods for ``specs`` and the last moving sweep's cost (rule 3);
        a stretch is logged when it changes."""
        fit = sweep_periods(
            settings,
            declared=specs.domain_count if specs is not None else 0,
            moving_pages=self.last_requests,
        )
        if fit.stretch > 1.0 and fit.stretch != self._stretch:
            log.warning(
                "hostname sweeps stretched to fit their share of the Cloudflare budget",
                extra={
                    "stretch": round(fit.stretch, 2),
                    "moving_s": round(fit.moving),
                    "full_s": round(fit.full),
                    "projected_per_hour": round(fit.projected),
                    "allowed_per_hour": round(fit.allowed),
                },
            )
        self._stretch = fit.stretch
        return fit

    def forget(self) -> None:
        """A new term: nothing is known to have been moving."""
        self._moving = frozenset()

    async def read(self, reader: CloudflareReader, specs: Specs) -> MovingHostnames:
        """List every moving status; the sites owning what moves or just stopped moving.

        Raises:
            ProviderError: a listing failed (the sweep then learns nothing).
        """
        found = await asyncio.gather(
            *(reader.list_custom_hostnames(hostname_status=s) for s in MOVING_HOSTNAME_STATUSES),
            *(reader.list_custom_hostnames(ssl_status=s) for s in MOVING_SSL_STATUSES),
        )
        listed = {_canonical(h.hostname): h for group in found for h in group}
        requests = sum(_pages(len(group)) for group in found)
        left = self._moving - set(listed)
        # The index of every declared hostname is built once per specs: off the event loop.
        owners = await asyncio.to_thread(self._scope.owners, specs)
        sites = frozenset(owners[name] for name in (set(listed) | left) if name in owners)
        self._moving = frozenset(listed)
        self.last_requests = requests
        log.info(
            "moving hostnames listed",
            extra={
                "moving": len(listed),
                "settled": len(left),
                "sites": len(sites),
                "requests": requests,
            },
        )
        return MovingHostnames(sites=sites, listed=listed, requests=requests)


@dataclass(frozen=True, slots=True)
class SweepPeriods:
    """The hostname sweeps' periods after the budget check, and what they project (rule 3)."""

    moving: float  # seconds between moving sweeps
    full: float  # seconds between full hostname sweeps (a full sweep also lists the zone)
    projected: float  # Cloudflare listing requests per hour at these periods
    allowed: float  # the share of the hourly budget they may use
    stretch: float  # 1.0: as configured


def _per_hour(settings: LoopSettings, factor: float, full_pages: int, moving_pages: int) -> float:
    full = settings.hostname_full_sweep * factor
    rate = moving_pages * HOUR / (settings.hostname_sweep * factor)
    rate += full_pages * HOUR / settings.full_sweep  # Sweep/all lists the zone too
    if full < settings.full_sweep:  # else every Sweep/all postpones it (runtime/loop.py)
        rate += full_pages * HOUR / full
    return rate


def sweep_periods(settings: LoopSettings, *, declared: int, moving_pages: int) -> SweepPeriods:
    """The periods that keep the projected listing requests within the share (rule 3).

    Args:
        settings: the configured periods, budget and share.
        declared: custom hostnames the specs declare (a full listing's pages follow).
        moving_pages: what the last moving sweep cost (or the number of its filters).
    """
    full_pages = _pages(declared)
    allowed = settings.sweep_budget_share * settings.cloudflare_budget
    projected = _per_hour(settings, 1.0, full_pages, moving_pages)
    factor = 1.0
    if projected > allowed:
        fixed = full_pages * HOUR / settings.full_sweep
        room = max(allowed - fixed, 0.05 * allowed)
        factor = (projected - fixed) / room
        projected = _per_hour(settings, factor, full_pages, moving_pages)
    return SweepPeriods(
        moving=settings.hostname_sweep * factor,
        full=settings.hostname_full_sweep * factor,
        projected=projected,
        allowed=allowed,
        stretch=factor,
    )
