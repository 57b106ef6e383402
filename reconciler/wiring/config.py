"""What the planner and the handlers need of the routing settings (docs/routing.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from reconciler.core.plan import PlanSettings
from reconciler.core.routing import DesiredPlatform
from reconciler.runtime.actions import RoutingConfig
from reconciler.runtime.observe_routes import RoutingTarget
from reconciler.settings import Settings

DISPATCH_WORKER = Path(__file__).resolve().parents[2] / "workers" / "dispatch" / "index.js"
"""The dispatch Worker module shipped in the repository (``ROUTING_WORKER_SOURCE`` overrides)."""


def worker_source(settings: Settings) -> bytes | None:
    """The dispatch Worker module's bytes, or None when the file does not exist."""
    path = Path(settings.routing.worker_source) if settings.routing.worker_source else None
    try:
        return (path or DISPATCH_WORKER).read_bytes()
    except OSError:
        return None


def routing_config(settings: Settings) -> RoutingConfig:
    """What the handlers need of the routing settings (docs/routing.md)."""
    routing = settings.routing
    return RoutingConfig(
        namespace=routing.namespace,
        namespace_id=routing.namespace_id or None,
        worker=routing.worker,
        route_pattern=routing.route_pattern,
        worker_source=worker_source(settings),
        custom_metadata=routing.custom_metadata,
    )


def plan_settings(
    settings: Settings,
    *,
    allow_mass_deletion: bool = False,
    approved_deletions: Mapping[str, str] | None = None,
) -> PlanSettings:
    """The planner's knobs: the declared platform (when ``ROUTING_FALLBACK_ORIGIN`` is set and
    the Worker's source is found) and the custom metadata entitlement."""
    routing = settings.routing
    source = worker_source(settings)
    platform = None
    if routing.fallback_origin and source is not None:
        platform = DesiredPlatform(
            script=routing.worker,
            script_hash="sha256:" + hashlib.sha256(source).hexdigest(),
            namespace=routing.namespace,
            route_pattern=routing.route_pattern,
            fallback_origin=routing.fallback_origin,
        )
    return PlanSettings(
        allow_mass_deletion=allow_mass_deletion,
        approved_deletions=dict(approved_deletions or {}),
        routes_namespace=routing.namespace,
        platform=platform,
        custom_metadata=routing.custom_metadata,
    )


def routing_target(settings: Settings) -> RoutingTarget:
    routing = settings.routing
    return RoutingTarget(
        namespace=routing.namespace,
        worker=routing.worker,
        route_pattern=routing.route_pattern,
        declared=bool(routing.fallback_origin),
        namespace_id=routing.namespace_id or None,
    )
