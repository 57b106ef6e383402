"""plan_builder: the collector the planner fills while walking the fleet, then orders.

Called by :func:`reconciler.core.plan.build_plan`, which creates one :class:`PlanBuilder` per
plan and hands it to the per-area planners (``plan_billing``, ``plan_sites``,
``plan_hostnames``). Calls nothing but the plan types of ``reconciler.core.plan``; pure like
the rest of the core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import NamedTuple

from reconciler.core.desired import Desired, DesiredSite
from reconciler.core.lane import Lane
from reconciler.core.levers import Forced, Lever, LeverKind, levers_on
from reconciler.core.observed import Observed, Source
from reconciler.core.payloads import parse_payload
from reconciler.core.plan import (
    _CALLS,
    _KIND_ORDER,
    UNREADABLE,
    Action,
    ActionKind,
    Blocked,
    Cause,
    JsonValue,
    Note,
    PlanSettings,
    action_identity,
)
from reconciler.spec.vocabulary import Kind


class PlanBuilder:
    """Collects actions, blocks and notes while walking the fleet; then orders them."""

    def __init__(self, desired: Desired, observed: Observed, settings: PlanSettings) -> None:
        self.desired = desired
        self.observed = observed
        self.settings = settings
        self.actions: list[Action] = []
        self.blocked: list[Blocked] = []
        self.notes: list[Note] = []
        self.tenant_actions: dict[str, list[str]] = defaultdict(list)  # tenant -> lock action ids
        self.billing_actions: dict[str, str] = {}  # tenant -> sync_billing action id
        # Filled by plan_platform and plan_routes before the hostnames are planned:
        self.platform_actions: dict[ActionKind, str] = {}  # platform kind -> action id
        self.route_writes: dict[str, str] = {}  # hostname -> write_routes action putting it
        self.route_records: set[str] = set()  # hostnames whose domains status that action writes
        self.route_blocked: dict[str, str] = {}  # hostname -> why its entry cannot be written
        self.reached: set[Lever] = set()  # levers an area planner honoured or refused
        self.forced: set[str] = set()  # ids of actions made for a lever
        self.forced_blocked: set[Blocked] = set()
        self.forced_notes: set[Note] = set()
        # Read per target planned (tens of thousands of times a plan), so decided once here:
        self.has_levers = bool(settings.selection.levers)  # the area planners skip lever work
        self._gaps: dict[Source, str] = {
            source: f"{UNREADABLE[source]} ({gap.detail})"
            for source, gap in observed.incomplete.items()
        }

    def billing_of(self, tenant: str) -> list[str]:
        """The ``sync_billing`` action of ``tenant`` its billing actions wait for, if any."""
        return [self.billing_actions[tenant]] if tenant in self.billing_actions else []

    def mark(self) -> tuple[int, int, int]:
        """Where the collector stands, for :meth:`attribute`."""
        return (len(self.actions), len(self.blocked), len(self.notes))

    def attribute(self, mark: tuple[int, int, int]) -> bool:
        """Count what was added since ``mark`` as a lever's; True when anything was."""
        actions, blocked, notes = mark
        self.forced.update(action.id for action in self.actions[actions:])
        self.forced_blocked.update(self.blocked[blocked:])
        self.forced_notes.update(self.notes[notes:])
        return mark != self.mark()

    def forced_result(self) -> Forced:
        """What the levers produced, for :func:`~reconciler.core.levers.narrow`."""
        return Forced(
            actions=frozenset(self.forced),
            blocked=frozenset(self.forced_blocked),
            notes=frozenset(self.forced_notes),
        )

    def lever(self, target: str, *kinds: LeverKind) -> Lever | None:
        """The lever of ``kinds`` asked for ``target`` (``core.levers`` rule 1), marked reached."""
        if not self.settings.selection.levers:
            return None
        found = levers_on(self.settings.selection.levers, target, *kinds)
        if found is not None:
            self.reached.add(found)
        return found

    def reached_on(self, target: str) -> bool:
        """Whether a lever on exactly ``target`` was reached this plan."""
        return any(lever.target == target for lever in self.reached)

    def refuse_unreached(self) -> None:
        """Refuse every lever no area planner reached: its target is in no spec in scope."""
        for lever in self.settings.selection.levers:
            if lever in self.reached:
                continue
            self.reached.add(lever)
            mark = self.mark()
            self.block(
                _LEVER_KINDS[lever.kind],
                lever.target,
                tenant=None,
                site=None,
                gate="refused",
                reason=(
                    f"{lever.target} is not declared in the specs (or has nothing a "
                    f"{lever.kind.value.replace('_', ' ')} applies to): nothing is done"
                ),
                source=None,
            )
            self.attribute(mark)

    def source(self, kind: Kind, name: str, fieldpath: str = "") -> str | None:
        """``"specs/sites/acme.yaml:14:7"`` for a spec field, or None when it has no location."""
        location = self.desired.location(kind, name, fieldpath)
        if location is None:
            return None
        return f"{location.path}:{location.line}:{location.column}"

    def add(
        self,
        kind: ActionKind,
        target: str,
        *,
        tenant: str | None,
        site: str | None,
        before: Mapping[str, JsonValue],
        after: Mapping[str, JsonValue],
        reason: str,
        source: str | None,
        cause: Cause,
        depends_on: Iterable[str] = (),
    ) -> str:
        """Add an action and return its id (rule 6: a hash of kind, target and ``after``)."""
        action_id = action_identity(kind, target, after)
        urgent = (ActionKind.ROLLBACK, ActionKind.UNLOCK, ActionKind.ROLLBACK_WORKER_VERSION)
        lane = Lane.URGENT if kind in urgent else Lane.CHANGE
        self.actions.append(
            Action(
                id=action_id,
                kind=kind,
                target=target,
                tenant=tenant,
                site=site,
                before=dict(before),
                after=dict(after),
                payload=parse_payload(kind, after, f"{kind.value} {target}: after"),
                reason=reason,
                source=source,
                cause=cause,
                lane=lane,
                depends_on=tuple(sorted(set(depends_on))),
                calls=dict(_CALLS[kind]),
            )
        )
        return action_id

    def block(
        self,
        kind: ActionKind,
        target: str,
        *,
        tenant: str | None,
        site: str | None,
        gate: str,
        reason: str,
        source: str | None,
    ) -> None:
        """Record an action a gate forbids, with the reason a human must act on."""
        self.blocked.append(Blocked(kind, target, tenant, site, gate, reason, source))

    def blocker(
        self, target: str, *, tenant: str | None, site: str | None, source: str | None
    ) -> Blocker:
        """A :class:`Blocker` for ``target``: its tenant, site and source given once."""
        return Blocker(self, target, tenant, site, source)

    def site_blocker(self, site: DesiredSite, target: str, fieldpath: str) -> Blocker:
        """A :class:`Blocker` for ``target`` of ``site``, sourced at the site spec's field."""
        # located when an action or a block cites it, not for every target planned
        return Blocker(self, target, site.tenant, site.name, SpecField(site.name, fieldpath))

    def note(
        self, target: str, *, tenant: str | None, site: str | None, category: str, reason: str
    ) -> None:
        """Record something deliberately not done (unmanaged, retained, waiting)."""
        self.notes.append(
            Note(target=target, tenant=tenant, site=site, category=category, reason=reason)
        )

    def incomplete(self, source: Source) -> str | None:
        """Why ``source`` could not be read this pass, in words; None when it was read."""
        return self._gaps.get(source)

    def ordered(self) -> tuple[Action, ...]:
        """The actions in dependency order, ties broken by lane, tenant, site, kind, target."""
        by_id = {action.id: action for action in self.actions}
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for action in self.actions:
            sorter.add(action.id, *(dep for dep in action.depends_on if dep in by_id))
        sorter.prepare()
        ordered: list[Action] = []
        while sorter.is_active():
            ready = sorted((by_id[i] for i in sorter.get_ready()), key=_sort_key)
            for action in ready:
                ordered.append(action)
                sorter.done(action.id)
        return tuple(ordered)


class SpecField(NamedTuple):
    """A field of a site's spec, located only when something cites it."""

    site: str
    fieldpath: str


@dataclass(frozen=True, slots=True)
class Blocker:
    """Blocks (or adds) actions on one target whose tenant, site and source are bound once."""

    builder: PlanBuilder
    target: str
    tenant: str | None
    site: str | None
    located: str | SpecField | None  # the source, or the site spec field to locate it from

    @property
    def source(self) -> str | None:
        """``"specs/sites/acme.yaml:14:7"`` (located on first use of a site spec field)."""
        if isinstance(self.located, SpecField):
            return self.builder.source(Kind.SITE, *self.located)
        return self.located

    def __call__(self, kind: ActionKind, *, gate: str, reason: str) -> None:
        """Block ``kind`` on the bound target behind ``gate`` with ``reason``."""
        where = (self.target, self.tenant, self.site)
        self.builder.blocked.append(Blocked(kind, *where, gate, reason, self.source))

    def add(
        self,
        kind: ActionKind,
        *,
        before: Mapping[str, JsonValue],
        after: Mapping[str, JsonValue],
        reason: str,
        cause: Cause,
        depends_on: Iterable[str] = (),
    ) -> str:
        """Add ``kind`` on the bound target (:meth:`PlanBuilder.add`); return its id."""
        return self.builder.add(
            kind,
            self.target,
            tenant=self.tenant,
            site=self.site,
            before=before,
            after=after,
            reason=reason,
            source=self.source,
            cause=cause,
            depends_on=depends_on,
        )


_LEVER_KINDS: Mapping[LeverKind, ActionKind] = {
    LeverKind.PUBLISH: ActionKind.PUBLISH,
    LeverKind.PURGE: ActionKind.PURGE_CACHE,
    LeverKind.RETRY_VALIDATION: ActionKind.RETRY_VALIDATION,
    LeverKind.RECREATE: ActionKind.RECREATE_HOSTNAME,
    LeverKind.SEND_DUNNING: ActionKind.SEND_DUNNING,
    LeverKind.SYNC_BILLING: ActionKind.SYNC_BILLING,
    LeverKind.ENFORCE: ActionKind.SOFT_LOCK,
    LeverKind.CLEAR_STUCK: ActionKind.RETRY_PUBLISH,
}


def _sort_key(action: Action) -> tuple[int, str, str, int, bool, str]:
    return (
        action.lane.rank,
        action.tenant or "",
        action.site or "",
        _KIND_ORDER[action.kind],
        action.target.endswith(":preview"),  # production before preview
        action.target,
    )
