"""Routing handlers: the dispatch Worker's routing table and the platform it runs on.

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``write_routes`` (KV bulk writes and deletes, then the ``domains`` statuses they imply) and the
platform kinds ``create_routes_namespace``, ``deploy_worker``, ``set_worker_route`` and
``set_fallback_origin``. Calls ``providers/cloudflare_kv.py``, ``providers/cloudflare_workers.py``
and :class:`~reconciler.runtime.records.Records`. docs/routing.md explains the model.

Crash safety, per action:

- write_routes states final values: a bulk write or delete repeated after a kill (at
  "routes.after-write", between the writes and the deletes, or before the D1 batch) writes the
  same values again. A kill before the D1 batch is repaired by the next plan's
  ``record_hostname``.
- create_routes_namespace looks the namespace up by title before and after an unknown outcome.
- deploy_worker uploads the whole script (final values); set_worker_route looks the route up by
  pattern; set_fallback_origin is a PUT of the final value.
- Nothing here is visible at the edge at once: KV takes up to about 60 s (``core/routing.py``).
"""

from __future__ import annotations

import asyncio

from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import (
    CreateNamespacePayload,
    DeployWorkerPayload,
    FallbackOriginPayload,
    WorkerRoutePayload,
    WriteRoutesPayload,
    payload_as,
)
from reconciler.core.plan import Action, ActionKind
from reconciler.core.provider import Provider
from reconciler.core.routing import KV_CONSISTENCY_SECONDS
from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare_kv import KvClient, KvPair
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.runtime.actions.world import World, applied
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import Records

__all__ = ["PlatformHandler", "RoutesHandler", "RoutingTable"]

_PROVIDER = Provider.CLOUDFLARE


class RoutingTable:
    """The routing table's namespace, resolved once by title and kept for the process."""

    def __init__(self, world: World) -> None:
        """Write through ``world.cloudflare`` into the namespace ``world.routing`` names."""
        self.world = world
        self.kv = KvClient(world.cloudflare)
        self._namespace_id: str | None = world.routing.namespace_id
        # one lookup at a time: concurrent actions wait for it instead of each listing the
        # namespaces (and each retrying the listing when Cloudflare fails it)
        self._resolving = asyncio.Lock()

    async def namespace_id(self) -> str:
        """The namespace id.

        Raises:
            PermanentError: the account has no namespace of that title (a clear error: the
                plan creates it when the platform is declared, docs/routing.md otherwise).
        """
        async with self._resolving:
            if self._namespace_id is None:
                self._namespace_id = await self._look_up()
            return self._namespace_id

    async def _look_up(self) -> str:
        title = self.world.routing.namespace
        found = await self.kv.find_namespace(title)
        if found is None:
            raise PermanentError(
                _PROVIDER,
                f"the routing table's KV namespace {title} does not exist: declare the "
                "platform (ROUTING_FALLBACK_ORIGIN) so the plan creates it, or create it "
                "(docs/routing.md)",
            )
        return found

    def forget(self) -> None:
        """Resolve the namespace again next time (it was just created or is gone)."""
        self._namespace_id = None

    async def write(self, pairs: list[KvPair], deletes: list[str]) -> int:
        """Bulk-write ``pairs`` then bulk-delete ``deletes``; the number of KV requests."""
        namespace = await self.namespace_id()
        try:
            return await self.kv.bulk_put(namespace, pairs) + await self.kv.bulk_delete(
                namespace, deletes
            )
        except NotFoundError:
            self.forget()
            raise

    async def remove(self, keys: list[str]) -> int:
        """Bulk-delete ``keys`` (absent keys are fine)."""
        return await self.write([], keys)


class RoutesHandler:
    """``write_routes``: one tenant's routing-table writes and removals, then D1."""

    provider: str = Provider.CLOUDFLARE

    def __init__(self, world: World, table: RoutingTable) -> None:
        """Write through ``table`` and ``world.db``."""
        self.table = table
        self.records = Records(world.db)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Write the entries, remove the keys, record the statuses (module docstring)."""
        want = payload_as(action.payload, WriteRoutesPayload)
        # value and metadata both the entry's JSON
        pairs = [
            KvPair(key=name, value=entry.value(), metadata=entry.as_json())
            for name, entry in want.put
        ]
        deletes = list(want.delete)
        ctx.progress(f"routing table: writing {len(pairs)} entries, removing {len(deletes)}")
        namespace = want.namespace_id or await self.table.namespace_id()
        requests = await self.table.kv.bulk_put(namespace, pairs)
        ctx.checkpoint("routes.after-write")
        requests += await self.table.kv.bulk_delete(namespace, deletes)
        await self.records.domain_statuses(dict(want.records), now=ctx.now())
        return applied(
            action,
            (
                f"wrote {len(pairs)} routing entries and removed {len(deletes)} in {requests} "
                f"KV request{'s' if requests != 1 else ''} (tenant {want.tenant}); "
                f"the edge sees them within about {KV_CONSISTENCY_SECONDS} s"
            ),
            data={"requests": requests, "written": len(pairs), "removed": len(deletes)},
        )


class PlatformHandler:
    """The four platform kinds; ``kind`` picks the step (``core/plan_platform.py``)."""

    provider: str = Provider.CLOUDFLARE

    def __init__(self, world: World, table: RoutingTable, kind: ActionKind) -> None:
        """Act through ``world`` for actions of ``kind``."""
        self.world = world
        self.table = table
        self.kind = kind
        self.workers = WorkersClient(world.cloudflare)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Perform the platform step (module docstring)."""
        if self.kind is ActionKind.CREATE_ROUTES_NAMESPACE:
            return await self._namespace(action, payload_as(action.payload, CreateNamespacePayload))
        if self.kind is ActionKind.DEPLOY_WORKER:
            return await self._deploy(action, payload_as(action.payload, DeployWorkerPayload), ctx)
        if self.kind is ActionKind.SET_WORKER_ROUTE:
            return await self._route(action, payload_as(action.payload, WorkerRoutePayload))
        return await self._fallback(action, payload_as(action.payload, FallbackOriginPayload))

    async def _namespace(self, action: Action, want: CreateNamespacePayload) -> Outcome:
        title = want.namespace or self.world.routing.namespace
        ident = await self.table.kv.create_namespace(title)
        self.table.forget()
        return applied(
            action,
            f"KV namespace {title} is {ident}",
            data={"id": ident},
        )

    async def _deploy(
        self, action: Action, want: DeployWorkerPayload, ctx: ActionContext
    ) -> Outcome:
        source = self.world.routing.worker_source
        script = want.script or self.world.routing.worker
        if source is None:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=(
                    f"no source for the dispatch Worker {script}: set ROUTING_WORKER_SOURCE to "
                    "the module to deploy (docs/routing.md)"
                ),
            )
        namespace = await self.table.namespace_id()
        ctx.progress(f"deploying the dispatch Worker {script}")
        await self.workers.deploy_script(
            script, source=source, namespace_id=namespace, version=want.hash
        )
        return applied(
            action,
            f"deployed {script} version {want.hash.removeprefix('sha256:')[:12]}",
        )

    async def _route(self, action: Action, want: WorkerRoutePayload) -> Outcome:
        if want.id:
            route = await self.workers.update_route(want.id, want.pattern, want.script)
        else:
            route = await self.workers.create_route(want.pattern, want.script)
        return applied(
            action,
            f"route {want.pattern} runs {want.script} ({route.id})",
            data={"id": route.id},
        )

    async def _fallback(self, action: Action, want: FallbackOriginPayload) -> Outcome:
        found = await self.workers.set_fallback_origin(want.origin)
        return applied(
            action,
            f"fallback origin {want.origin} ({found.status or 'status unknown'})",
        )
