"""The action handlers: one per :class:`~reconciler.core.plan.ActionKind`, over the adapters.

``wiring.py`` builds a :class:`World` (clients, database, settings) and calls
:func:`handlers_for`; ``runtime/execute.py`` looks each action's handler up in the returned
mapping and awaits it with an :class:`~reconciler.runtime.handler.ActionContext`. The handlers
live in ``publish.py`` (publish, retry, rollback), ``hostnames.py`` (custom hostnames) and
``billing.py`` (mirror, locks, dunning), ``workers.py`` (the platform's Workers); their D1
writes are in ``runtime/records.py``.
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
from reconciler.runtime.actions.publish import (
    PublishHandler,
    RecordPublishFailureHandler,
    RollbackHandler,
)
from reconciler.runtime.actions.workers import WorkerHandler
from reconciler.runtime.actions.world import ActionSettings, BillingSource, World
from reconciler.runtime.handler import Handler

__all__ = [
    "DELETION_POLICY_KEY",
    "ActionSettings",
    "BillingSource",
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
    handlers: dict[ActionKind, Handler] = {
        ActionKind.PUBLISH: publish,
        ActionKind.RETRY_PUBLISH: publish,
        ActionKind.ROLLBACK: RollbackHandler(world),
        ActionKind.SYNC_BILLING: SyncBillingHandler(world),
        ActionKind.SEND_DUNNING: DunningHandler(world),
        ActionKind.RECORD_HOSTNAME: RecordHostnameHandler(world),
        ActionKind.RECORD_PUBLISH_FAILURE: RecordPublishFailureHandler(world),
    }
    for kind in (
        ActionKind.CREATE_HOSTNAME,
        ActionKind.UPDATE_HOSTNAME,
        ActionKind.RETRY_VALIDATION,
        ActionKind.RECREATE_HOSTNAME,
        ActionKind.DELETE_HOSTNAME,
    ):
        handlers[kind] = HostnameHandler(world, kind)
    for kind in (ActionKind.SOFT_LOCK, ActionKind.HARD_LOCK, ActionKind.UNLOCK):
        handlers[kind] = AccessHandler(world, kind)
    for kind in (ActionKind.DEPLOY_WORKER, ActionKind.ROLLBACK_WORKER):
        handlers[kind] = WorkerHandler(world, kind)
    return MappingProxyType(handlers)
