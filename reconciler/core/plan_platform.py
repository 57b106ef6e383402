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

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.observed import Source
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import PlanBuilder
from reconciler.core.routing import DesiredPlatform, ObservedPlatform

__all__ = ["plan_platform"]

_EMPTY = ObservedPlatform.namespace_only(None)
"""An account where nothing of the platform was found (every field None)."""


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
            title = builder.settings.routes_namespace
            _add(builder, f"Platform/kv:{title}", _create_namespace(title), None)
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
    previous: str | None = None  # the action the next one waits for (rule 1)
    for step in (_namespace, _worker, _route, _fallback):
        change = step(want, have, previous)
        previous = None if change is None else _add(builder, targets[change.kind], change, previous)


def _targets(want: DesiredPlatform) -> dict[ActionKind, str]:
    return {
        ActionKind.CREATE_ROUTES_NAMESPACE: f"Platform/kv:{want.namespace}",
        ActionKind.DEPLOY_WORKER: f"Platform/worker:{want.script}",
        ActionKind.SET_WORKER_ROUTE: f"Platform/route:{want.route_pattern}",
        ActionKind.SET_FALLBACK_ORIGIN: "Platform/fallback-origin",
    }


@dataclass(frozen=True, slots=True)
class _Change:
    """One platform action a step wants: its kind, its JSON before and after, and why."""

    kind: ActionKind
    before: Mapping[str, JsonValue]
    after: Mapping[str, JsonValue]
    reason: str


def _add(builder: PlanBuilder, target: str, change: _Change, depends: str | None) -> str:
    action_id = builder.add(
        change.kind,
        target,
        tenant=None,
        site=None,
        before=change.before,
        after=change.after,
        reason=change.reason,
        source=None,
        cause=Cause.DRIFT,
        depends_on=[depends] if depends else [],
    )
    builder.platform_actions[change.kind] = action_id
    return action_id


def _create_namespace(title: str) -> _Change:
    reason = f"the routing table's KV namespace {title} does not exist: create it"
    return _Change(ActionKind.CREATE_ROUTES_NAMESPACE, {}, {"namespace": title}, reason)


def _namespace(
    want: DesiredPlatform, have: ObservedPlatform, _previous: str | None
) -> _Change | None:
    return None if have.namespace_id is not None else _create_namespace(want.namespace)


def _worker(want: DesiredPlatform, have: ObservedPlatform, namespace: str | None) -> _Change | None:
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
    before = {"hash": have.script_hash, "namespace_id": have.script_namespace}
    after = {"script": want.script, "hash": want.script_hash, "namespace": want.namespace}
    reason = f"{why}: deploy it, bound to the routing table"
    return _Change(ActionKind.DEPLOY_WORKER, before, after, reason)


def _route(want: DesiredPlatform, have: ObservedPlatform, _previous: str | None) -> _Change | None:
    if have.route_id is not None and have.route_script == want.script:
        return None
    why = (
        f"no Worker route {want.route_pattern}"
        if have.route_id is None
        else f"the route {want.route_pattern} runs {have.route_script or 'no Worker'}"
    )
    before = {"id": have.route_id, "script": have.route_script}
    after = {"pattern": want.route_pattern, "script": want.script, "id": have.route_id}
    reason = f"{why}: send every request of the zone to {want.script}"
    return _Change(ActionKind.SET_WORKER_ROUTE, before, after, reason)


def _fallback(
    want: DesiredPlatform, have: ObservedPlatform, _previous: str | None
) -> _Change | None:
    if have.fallback_origin == want.fallback_origin:
        return None
    reason = (
        f"the zone's fallback origin is {have.fallback_origin or 'not set'}: set it to "
        f"{want.fallback_origin} (an originless record; the Worker answers)"
    )
    before = {"origin": have.fallback_origin}
    return _Change(ActionKind.SET_FALLBACK_ORIGIN, before, {"origin": want.fallback_origin}, reason)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]
