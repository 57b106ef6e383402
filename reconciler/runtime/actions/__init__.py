"""The action handlers: one per :class:`~reconciler.core.plan.ActionKind`, over the adapters.

``wiring`` builds a :class:`World` (clients, database, settings) and calls
:func:`handlers_for`; ``runtime/execute.py`` looks each action's handler up in the returned
mapping and awaits it with an :class:`~reconciler.runtime.handler.ActionContext`. The handlers
live in ``publish.py`` (publish, retry), ``rollback.py``, ``publish_record.py`` (a publish
the plan blocked), ``purge.py`` (a manual purge), ``hostnames.py`` (custom hostnames),
``routes.py`` (the routing table and the dispatch Worker platform) and ``billing.py`` (mirror,
locks, dunning); their D1 writes are in ``runtime/records/``.
docs/actions.md describes each action, its records and why a crash at any point is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from reconciler.core.plan import ActionKind
from reconciler.runtime.actions.billing import AccessHandler, DunningHandler, SyncBillingHandler
from reconciler.runtime.actions.hostnames import (
    DELETION_POLICY_KEY,
    HostnameHandler,
    RecordHostnameHandler,
)
from reconciler.runtime.actions.publish import PublishHandler
from reconciler.runtime.actions.publish_record import RecordPublishFailureHandler
from reconciler.runtime.actions.purge import PurgeHandler
from reconciler.runtime.actions.rollback import RollbackHandler
from reconciler.runtime.actions.routes import PlatformHandler, RoutesHandler, RoutingTable
from reconciler.runtime.actions.workers import WorkerHandler
from reconciler.runtime.actions.world import ActionSettings, BillingSource, RoutingConfig, World
from reconciler.runtime.handler import Handler

__all__ = [
    "DELETION_POLICY_KEY",
    "ActionSettings",
    "BillingSource",
    "RoutingConfig",
    "World",
    "handlers_for",
]


def handlers_for(world: World) -> Mapping[ActionKind, Handler]:
    """Every action kind's handler, acting through ``world``.

    Args:
        world: the clients, database and settings the handlers use.

    Returns:
        A read-only mapping with exactly one handler per :class:`ActionKind`.
    """
    publish = PublishHandler(world)
    table = RoutingTable(world)  # one namespace lookup per process, shared
    handlers: dict[ActionKind, Handler] = {
        ActionKind.PUBLISH: publish,
        ActionKind.RETRY_PUBLISH: publish,
        ActionKind.ROLLBACK: RollbackHandler(world),
        ActionKind.SYNC_BILLING: SyncBillingHandler(world),
        ActionKind.SEND_DUNNING: DunningHandler(world),
        ActionKind.RECORD_HOSTNAME: RecordHostnameHandler(world),
        ActionKind.RECORD_PUBLISH_FAILURE: RecordPublishFailureHandler(world),
        ActionKind.PURGE_CACHE: PurgeHandler(world),
        ActionKind.WRITE_ROUTES: RoutesHandler(world, table),
    }
    for kind in (
        ActionKind.CREATE_ROUTES_NAMESPACE,
        ActionKind.DEPLOY_WORKER,
        ActionKind.SET_WORKER_ROUTE,
        ActionKind.SET_FALLBACK_ORIGIN,
    ):
        handlers[kind] = PlatformHandler(world, table, kind)
    for kind in (
        ActionKind.CREATE_HOSTNAME,
        ActionKind.UPDATE_HOSTNAME,
        ActionKind.RETRY_VALIDATION,
        ActionKind.RECREATE_HOSTNAME,
        ActionKind.DELETE_HOSTNAME,
    ):
        handlers[kind] = HostnameHandler(world, kind, table)
    access = AccessHandler(world)
    for kind in (ActionKind.SOFT_LOCK, ActionKind.HARD_LOCK, ActionKind.UNLOCK):
        handlers[kind] = access
    for kind in (ActionKind.DEPLOY_WORKER_VERSION, ActionKind.ROLLBACK_WORKER_VERSION):
        handlers[kind] = WorkerHandler(world, kind)
    return MappingProxyType(handlers)
