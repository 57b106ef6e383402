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

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, ActionKind, JsonValue
from reconciler.core.routing import KV_CONSISTENCY_SECONDS, parse_route
from reconciler.errors import NotFoundError, PermanentError
from reconciler.providers.cloudflare_kv import KvClient, KvPair
from reconciler.providers.cloudflare_workers import WorkersClient
from reconciler.runtime.actions.world import World, guarded, text_of
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import Records

__all__ = ["PlatformHandler", "RoutesHandler", "RoutingTable"]

_PROVIDER = "cloudflare"


class RoutingTable:
    """The routing table's namespace, resolved once by title and kept for the process."""

    def __init__(self, world: World) -> None:
        """Write through ``world.cloudflare`` into the namespace ``world.routing`` names."""
        self.world = world
        self.kv = KvClient(world.cloudflare)
        self._namespace_id: str | None = world.routing.namespace_id

    async def namespace_id(self) -> str:
        """The namespace id.

        Raises:
            PermanentError: the account has no namespace of that title (a clear error: the
                plan creates it when the platform is declared, docs/routing.md otherwise).
        """
        if self._namespace_id is None:
            title = self.world.routing.namespace
            found = await self.kv.find_namespace(title)
            if found is None:
                raise PermanentError(
                    _PROVIDER,
                    f"the routing table's KV namespace {title} does not exist: declare the "
                    "platform (ROUTING_FALLBACK_ORIGIN) so the plan creates it, or create it "
                    "(docs/routing.md)",
                )
            self._namespace_id = found
        return self._namespace_id

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


def _pairs(put: JsonValue) -> list[KvPair]:
    """The bulk-write pairs of ``after["put"]``: value and metadata both the entry's JSON."""
    pairs: list[KvPair] = []
    for name, value in sorted(put.items()) if isinstance(put, dict) else []:
        entry = parse_route(value)
        if entry is None:
            raise PermanentError(_PROVIDER, f"write_routes: unreadable entry for {name}")
        pairs.append(KvPair(key=name, value=entry.value(), metadata=entry.as_json()))
    return pairs


class RoutesHandler:
    """``write_routes``: one tenant's routing-table writes and removals, then D1."""

    provider: str = "cloudflare"

    def __init__(self, world: World, table: RoutingTable) -> None:
        """Write through ``table`` and ``world.db``."""
        self.table = table
        self.records = Records(world.db)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Write the entries, remove the keys, record the statuses (module docstring)."""
        return await guarded(action, self._write(action, ctx))

    async def _write(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        if action.kind is not ActionKind.WRITE_ROUTES:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"write_routes handler cannot perform {action.kind} {action.target}",
            )
        pairs = _pairs(after.get("put"))
        removed = after.get("delete")
        deletes = [k for k in removed if isinstance(k, str)] if isinstance(removed, list) else []
        ctx.progress(f"routing table: writing {len(pairs)} entries, removing {len(deletes)}")
        namespace = text_of(after.get("namespace_id")) or await self.table.namespace_id()
        requests = await self.table.kv.bulk_put(namespace, pairs)
        ctx.checkpoint("routes.after-write")
        requests += await self.table.kv.bulk_delete(namespace, deletes)
        records = after.get("records")
        statuses = (
            {k: v for k, v in records.items() if isinstance(v, str)}
            if isinstance(records, dict)
            else {}
        )
        await self.records.domain_statuses(statuses, now=ctx.now())
        return Outcome(
            action.id,
            Status.APPLIED,
            message=(
                f"wrote {len(pairs)} routing entries and removed {len(deletes)} in {requests} "
                f"KV request{'s' if requests != 1 else ''} "
                f"(tenant {text_of(after.get('tenant'))}); "
                f"the edge sees them within about {KV_CONSISTENCY_SECONDS} s"
            ),
            data={"requests": requests, "written": len(pairs), "removed": len(deletes)},
        )


class PlatformHandler:
    """The four platform kinds; ``kind`` picks the step (``core/plan_platform.py``)."""

    provider: str = "cloudflare"

    def __init__(self, world: World, table: RoutingTable, kind: ActionKind) -> None:
        """Act through ``world`` for actions of ``kind``."""
        self.world = world
        self.table = table
        self.kind = kind
        self.workers = WorkersClient(world.cloudflare)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Perform the platform step (module docstring)."""
        steps = {
            ActionKind.CREATE_ROUTES_NAMESPACE: self._namespace,
            ActionKind.DEPLOY_WORKER: self._deploy,
            ActionKind.SET_WORKER_ROUTE: self._route,
            ActionKind.SET_FALLBACK_ORIGIN: self._fallback,
        }
        if action.kind is not self.kind or self.kind not in steps:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"{self.kind} handler cannot perform {action.kind} {action.target}",
            )
        return await guarded(action, steps[self.kind](action, ctx))

    async def _namespace(self, action: Action, ctx: ActionContext) -> Outcome:
        title = text_of(action.after.get("namespace")) or self.world.routing.namespace
        ident = await self.table.kv.create_namespace(title)
        self.table.forget()
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"KV namespace {title} is {ident}",
            data={"id": ident},
        )

    async def _deploy(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        source = self.world.routing.worker_source
        script = text_of(after.get("script")) or self.world.routing.worker
        if source is None:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=(
                    f"no source for the dispatch Worker {script}: set ROUTING_WORKER_SOURCE to "
                    "the module to deploy (docs/routing.md)"
                ),
            )
        version = text_of(after.get("hash"))
        namespace = await self.table.namespace_id()
        ctx.progress(f"deploying the dispatch Worker {script}")
        await self.workers.deploy_script(
            script, source=source, namespace_id=namespace, version=version
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"deployed {script} version {version.removeprefix('sha256:')[:12]}",
        )

    async def _route(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        pattern = text_of(after.get("pattern"))
        script = text_of(after.get("script"))
        existing = text_of(after.get("id"))
        if existing:
            route = await self.workers.update_route(existing, pattern, script)
        else:
            route = await self.workers.create_route(pattern, script)
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"route {pattern} runs {script} ({route.id})",
            data={"id": route.id},
        )

    async def _fallback(self, action: Action, ctx: ActionContext) -> Outcome:
        origin = text_of(action.after.get("origin"))
        found = await self.workers.set_fallback_origin(origin)
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"fallback origin {origin} ({found.status or 'status unknown'})",
        )
