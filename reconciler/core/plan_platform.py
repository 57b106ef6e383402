"""plan_platform: the dispatch Worker, its KV namespace, its route and the fallback origin.

Called by :func:`reconciler.core.plan.build_plan` first, when the settings declare the platform
(``PlanSettings.platform``; docs/routing.md). Compares the declared
:class:`~reconciler.core.routing.DesiredPlatform` with what the account showed
(``Observed.platform``) and fills the :class:`~reconciler.core.plan_builder.PlanBuilder`. Pure.

Rules:

1. Order: the KV namespace exists before the Worker that binds it is deployed; the Worker is
   deployed before the route that runs it; the route exists before the fallback origin sends
   custom hostname traffic into the zone; and every routing-table write waits for all of them
   (``plan_routes``), so no hostname is announced before the Worker can serve it.
2. The Worker is redeployed when its ``ROUTER_VERSION`` binding differs from the hash of the
   source shipped in the repository, or when it binds another namespace than the declared one.
3. A platform reading that failed blocks every platform action (gate ``incomplete``): nothing
   is created twice because a listing was partial.
4. Nothing of the platform is ever deleted by a plan.
"""

from __future__ import annotations

from reconciler.core.observed import Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.routing import DesiredPlatform, ObservedPlatform

__all__ = ["plan_platform"]

_EMPTY = ObservedPlatform.namespace_only(None)


def plan_platform(builder: PlanBuilder) -> None:
    """Plan what the declared platform lacks (module rules).

    Undeclared (``PlanSettings.platform`` None), only the routing table's namespace is created
    when the observation found none: the Worker, its route and the fallback origin are then
    the operator's (docs/routing.md).
    """
    want = builder.settings.platform
    if want is None:
        have = builder.observed.platform
        if (
            have is not None
            and have.namespace_id is None
            and builder.incomplete(Source.ROUTES) is None
        ):
            kind = ActionKind.CREATE_ROUTES_NAMESPACE
            title = builder.settings.routes_namespace
            _add(
                builder,
                kind,
                f"Platform/kv:{title}",
                {},
                {"namespace": title},
                f"the routing table's KV namespace {title} does not exist: create it",
                None,
            )
        return
    gap = builder.incomplete(Source.PLATFORM)
    if gap is not None:
        for kind, target in _targets(want).items():
            builder.block(
                kind,
                target,
                tenant=None,
                site=None,
                gate="incomplete",
                reason=f"{gap}: the platform is not changed until it can be read",
                source=None,
            )
        return
    have = builder.observed.platform or _EMPTY
    targets = _targets(want)
    namespace = _namespace(builder, want, have, targets)
    worker = _worker(builder, want, have, targets, namespace)
    route = _route(builder, want, have, targets, worker)
    _fallback(builder, want, have, targets, route)


def _targets(want: DesiredPlatform) -> dict[ActionKind, str]:
    return {
        ActionKind.CREATE_ROUTES_NAMESPACE: f"Platform/kv:{want.namespace}",
        ActionKind.DEPLOY_WORKER: f"Platform/worker:{want.script}",
        ActionKind.SET_WORKER_ROUTE: f"Platform/route:{want.route_pattern}",
        ActionKind.SET_FALLBACK_ORIGIN: "Platform/fallback-origin",
    }


def _add(
    builder: PlanBuilder,
    kind: ActionKind,
    target: str,
    before: dict[str, JsonValue],
    after: dict[str, JsonValue],
    reason: str,
    depends: str | None,
) -> str:
    action_id = builder.add(
        kind,
        target,
        tenant=None,
        site=None,
        before=before,
        after=after,
        reason=reason,
        source=None,
        cause=Cause.DRIFT,
        depends_on=[depends] if depends else [],
    )
    builder.platform_actions[kind] = action_id
    return action_id


def _namespace(
    builder: PlanBuilder,
    want: DesiredPlatform,
    have: ObservedPlatform,
    targets: dict[ActionKind, str],
) -> str | None:
    if have.namespace_id is not None:
        return None
    kind = ActionKind.CREATE_ROUTES_NAMESPACE
    return _add(
        builder,
        kind,
        targets[kind],
        {},
        {"namespace": want.namespace},
        f"the routing table's KV namespace {want.namespace} does not exist: create it",
        None,
    )


def _worker(
    builder: PlanBuilder,
    want: DesiredPlatform,
    have: ObservedPlatform,
    targets: dict[ActionKind, str],
    namespace: str | None,
) -> str | None:
    if (
        namespace is None
        and have.script_hash == want.script_hash
        and (have.script_namespace == have.namespace_id)
    ):
        return None
    if have.script_hash is None:
        why = f"the dispatch Worker {want.script} is not deployed"
    elif have.script_hash != want.script_hash:
        why = (
            f"the dispatch Worker {want.script} runs version {_short(have.script_hash)}, "
            f"the repository ships {_short(want.script_hash)}"
        )
    else:
        why = f"the dispatch Worker {want.script} binds another KV namespace than {want.namespace}"
    kind = ActionKind.DEPLOY_WORKER
    return _add(
        builder,
        kind,
        targets[kind],
        {"hash": have.script_hash, "namespace_id": have.script_namespace},
        {"script": want.script, "hash": want.script_hash, "namespace": want.namespace},
        f"{why}: deploy it, bound to the routing table",
        namespace,
    )


def _route(
    builder: PlanBuilder,
    want: DesiredPlatform,
    have: ObservedPlatform,
    targets: dict[ActionKind, str],
    worker: str | None,
) -> str | None:
    if have.route_id is not None and have.route_script == want.script:
        return None
    why = (
        f"no Worker route {want.route_pattern}"
        if have.route_id is None
        else f"the route {want.route_pattern} runs {have.route_script or 'no Worker'}"
    )
    kind = ActionKind.SET_WORKER_ROUTE
    return _add(
        builder,
        kind,
        targets[kind],
        {"id": have.route_id, "script": have.route_script},
        {"pattern": want.route_pattern, "script": want.script, "id": have.route_id},
        f"{why}: send every request of the zone to {want.script}",
        worker,
    )


def _fallback(
    builder: PlanBuilder,
    want: DesiredPlatform,
    have: ObservedPlatform,
    targets: dict[ActionKind, str],
    route: str | None,
) -> None:
    if have.fallback_origin == want.fallback_origin:
        return
    kind = ActionKind.SET_FALLBACK_ORIGIN
    _add(
        builder,
        kind,
        targets[kind],
        {"origin": have.fallback_origin},
        {"origin": want.fallback_origin},
        f"the zone's fallback origin is {have.fallback_origin or 'not set'}: set it to "
        f"{want.fallback_origin} (an originless record; the Worker answers)",
        route,
    )


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]
