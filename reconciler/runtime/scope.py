"""What a work-queue key covers: its sites and tenants, what a pass of it reads, what it excludes.

Called by the daemon loop (``runtime/loop.py``) and its pass (``runtime/daemon_pass.py``).
Keys are ``Site/<name>``, ``Tenant/<name>`` and the sweeps :data:`SWEEP_ALL` (everything),
:data:`SWEEP_HOSTNAMES` (one listing of the zone's hostnames) and :data:`SWEEP_MOVING` (the
hostnames that can still move, ``runtime/daemon_sweep.py``). It calls nothing: it reads the
specs it is given.

Rules (docs/daemon.md, "The loop"):

1. A pass costs what its scope costs: a site key observes its site (and the hostnames a commit
   removed from it), a tenant key its tenant's sites, a sweep everything (:meth:`KeyScope.scope`).
2. What a pass reads depends on the key (:class:`Reading`): a billing-sweep tenant pass reads
   D1, Stripe and the gateway but not Cloudflare; the hostname sweeps read Cloudflare and D1
   but not Stripe, so they cover no tenant (:meth:`KeyScope.coverage`). The moving sweep
   covers the sites it found moving, and only them.
3. Passes of keys that share a tenant never overlap, and a sweep runs alone
   (:class:`TenantLocks`), so no action is ever run twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from enum import StrEnum

from reconciler.spec.load import Specs

__all__ = ["SWEEP_ALL", "SWEEP_HOSTNAMES", "SWEEP_MOVING", "KeyScope", "Reading", "TenantLocks"]

SWEEP_ALL = "Sweep/all"
SWEEP_HOSTNAMES = "Sweep/hostnames"
SWEEP_MOVING = "Sweep/moving-hostnames"


class Reading(StrEnum):
    """Which providers a pass reads (module rule 2)."""

    FULL = "full"  # everything the scope needs
    NO_BILLING = "no_billing"  # Cloudflare and D1: the hostname sweep
    BILLING_ONLY = "billing_only"  # D1, Stripe and the gateway: the billing sweep

    @classmethod
    def of(cls, key: str, *, full: bool) -> Reading:
        """What a pass of ``key`` reads; ``full``: a tenant key asked for everything."""
        if key.startswith("Tenant/") and not full:
            return cls.BILLING_ONLY
        if key in (SWEEP_HOSTNAMES, SWEEP_MOVING):
            return cls.NO_BILLING
        return cls.FULL


class TenantLocks:
    """Passes sharing a tenant never overlap; a sweep (``None``: everything) runs alone (rule 3)."""

    def __init__(self) -> None:
        self._busy: dict[str, int] = {}
        self._everything = False
        self._sweep_waiting = 0
        self._changed = asyncio.Condition()

    def _free(self, tenants: frozenset[str] | None) -> bool:
        if self._everything:
            return False
        if tenants is None:
            return not self._busy
        return self._sweep_waiting == 0 and not any(t in self._busy for t in tenants)

    @contextlib.asynccontextmanager
    async def hold(self, tenants: frozenset[str] | None) -> AsyncIterator[None]:
        async with self._changed:
            if tenants is None:
                self._sweep_waiting += 1
                try:
                    await self._changed.wait_for(lambda: self._free(None))
                finally:
                    self._sweep_waiting -= 1
                self._everything = True
            else:
                await self._changed.wait_for(lambda: self._free(tenants))
                for name in tenants:
                    self._busy[name] = self._busy.get(name, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                if tenants is None:
                    self._everything = False
                else:
                    for name in tenants:
                        self._busy[name] -= 1
                        if not self._busy[name]:
                            del self._busy[name]
                self._changed.notify_all()


class KeyScope:
    """The sites and tenants of a key, from the specs served and the ones before them."""

    def __init__(self) -> None:
        """Start with no index; each is built on its first look-up, once per specs."""
        self._tenant_sites: tuple[Specs, Mapping[str, frozenset[str]]] | None = None
        self._owners: tuple[Specs, Mapping[str, str]] | None = None

    def scope(
        self, key: str, specs: Specs, previous: Specs | None
    ) -> tuple[frozenset[str] | None, frozenset[str]]:
        """The sites a pass of ``key`` observes (None: all) and the hostnames to look up
        beyond them (a site's domains removed since ``previous``; rule 1)."""
        kind, _, name = key.partition("/")
        if kind == "Site":
            removed: frozenset[str] = frozenset()
            if previous is not None and name in previous.sites:
                old = {d.canonical for d in previous.sites[name].spec.domains}
                new = (
                    {d.canonical for d in specs.sites[name].spec.domains}
                    if name in specs.sites
                    else set()
                )
                removed = frozenset(old - new)
            return frozenset({name}), removed
        if kind == "Tenant":
            return self.sites_of(specs, name), frozenset()
        return None, frozenset()

    def sites_of(self, specs: Specs, tenant: str) -> frozenset[str]:
        """The tenant's sites, from an index built once per specs (not a walk per pass)."""
        cached = self._tenant_sites
        if cached is None or cached[0] is not specs:
            index: dict[str, set[str]] = defaultdict(set)
            for site_name, site in specs.sites.items():
                index[site.spec.tenant].add(site_name)
            cached = (specs, {t: frozenset(names) for t, names in index.items()})
            self._tenant_sites = cached
        return cached[1].get(tenant, frozenset())

    def owners(self, specs: Specs) -> Mapping[str, str]:
        """Each declared hostname (canonical) and the site declaring it, indexed once per specs."""
        cached = self._owners
        if cached is None or cached[0] is not specs:
            index = {d.canonical: n for n, site in specs.sites.items() for d in site.spec.domains}
            cached = (specs, index)
            self._owners = cached
        return cached[1]

    def coverage(
        self,
        key: str,
        specs: Specs,
        reading: Reading,
        moving: frozenset[str] | None = None,
    ) -> tuple[set[str], set[str]]:
        """The sites and tenants whose conditions and timers a pass of ``key`` decides;
        ``moving``: the sites the moving sweep found (its pass covers only them)."""
        if key == SWEEP_MOVING:
            return {s for s in moving or () if s in specs.sites}, set()
        kind, _, name = key.partition("/")
        if kind == "Site":
            tenant = specs.sites[name].spec.tenant if name in specs.sites else None
            tenants = (
                {tenant} if tenant is not None and reading is not Reading.NO_BILLING else set()
            )
            return {name} if name in specs.sites else set(), tenants
        if kind == "Tenant":
            sites = set(self.sites_of(specs, name))
            return (sites if reading is not Reading.BILLING_ONLY else set()), {name}
        tenants = set(specs.tenants) if reading is not Reading.NO_BILLING else set()
        return set(specs.sites), tenants

    @staticmethod
    def tenants_of(key: str, specs: Specs, previous: Specs | None) -> frozenset[str] | None:
        """The tenants a pass of ``key`` holds (None: a sweep, or an unknown site: alone)."""
        kind, _, name = key.partition("/")
        if kind == "Tenant":
            return frozenset({name})
        if kind == "Site":
            for known in (specs, previous):
                if known is not None and name in known.sites:
                    return frozenset({known.sites[name].spec.tenant})
        return None
