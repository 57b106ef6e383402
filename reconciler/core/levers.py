"""levers: the runbooks' manual actions as forced intents the planner honours, and ``--target``.

Called by ``commands/plan.py`` and ``commands/levers.py`` (which turn ``--target KIND/NAME``
and the verbs ``publish``, ``purge``, ``retry-validation``, ... into a :class:`Selection`), by
:func:`reconciler.core.plan.build_plan` (which hands the levers to the area planners and
narrows the finished plan with :func:`narrow`) and by the area planners through
``PlanBuilder.lever``. Pure; docs/runbooks.md maps each runbook endpoint to its verb.

Rules:

1. A lever is an intent, not a call: the planner turns it into ordinary actions (the same
   kinds, handlers and journal as ``apply``), or refuses it with a :class:`~reconciler.core.
   plan.Blocked` of gate ``refused`` (or the gate that forbids it, such as ``hard_locked``)
   whose reason says why. A lever the planner never reached (its target is in no spec) is
   refused too; nothing is silently dropped.
2. Addresses are ``Tenant/NAME``, ``Site/NAME`` (``Site/NAME:production`` for one
   environment), ``Hostname/NAME`` and ``Invoice/ID`` (``Invoice/ID:STEP`` for one dunning
   step). A tenant covers its sites, hostnames and invoices; a site covers its environments
   and hostnames (Terraform's module targeting).
3. A narrowed plan keeps the actions its targets cover and exactly what the area planners made
   for the levers (a ``purge`` lever on a site brings its purge, not the site's pending
   publish), every action those depend on (transitively), and the hostname origin changes that
   follow a kept lock (a lock is enforced with them, never half). Blocks and notes are kept
   when a target covers them or a lever made them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from reconciler.core.plan import Action, Blocked, Note, Plan

_Entry = TypeVar("_Entry", "Blocked", "Note")

ADDRESS_KINDS = ("Tenant", "Site", "Hostname", "Invoice")
"""The kinds an address may name (rule 2)."""

ENVIRONMENTS = ("production", "preview")


class LeverKind(StrEnum):
    """The runbooks' manual actions (docs/runbooks.md, "Manual levers")."""

    PUBLISH = "publish"  # runbook 1: requeue a publish, or redeploy the live version
    PURGE = "purge"  # runbook 1: purge a site's hosts from the cache
    RETRY_VALIDATION = "retry_validation"  # runbook 2: re-trigger validation now
    RECREATE = "recreate"  # runbook 2: delete and create a hostname again now
    SEND_DUNNING = "send_dunning"  # runbooks 3, 8: send or retry a dunning step
    SYNC_BILLING = "sync_billing"  # runbooks 3, 7: mirror a tenant's Stripe billing now
    ENFORCE = "enforce"  # runbook 3: apply the access policy now
    CLEAR_STUCK = "clear_stuck"  # one more attempt past a retry cap


@dataclass(frozen=True, slots=True)
class Lever:
    """One forced intent: do ``kind`` to ``target`` now, if the specs allow it."""

    kind: LeverKind
    target: str  # an address (rule 2)
    step: str | None = None  # send_dunning: the step code asked for (None: the one due)


@dataclass(frozen=True, slots=True)
class Selection:
    """What one command asks for: the addresses to narrow to, and the levers to honour."""

    targets: tuple[str, ...] = ()
    levers: tuple[Lever, ...] = ()

    @property
    def narrowed(self) -> bool:
        """True when the plan is cut down to the targets (and the levers' targets)."""
        return bool(self.targets or self.levers)

    def addresses(self) -> tuple[str, ...]:
        """Every address the plan is narrowed to: the targets and each lever's target."""
        return tuple(dict.fromkeys((*self.targets, *(lever.target for lever in self.levers))))


def parse_address(text: str) -> str:
    """Check ``KIND/NAME`` (rule 2) and return it with a canonical hostname.

    Raises:
        ValueError: the text is not an address, with what is expected.
    """
    kind, slash, name = text.strip().partition("/")
    if not slash or kind not in ADDRESS_KINDS or not name or "/" in name:
        raise ValueError(
            f"{text!r} is not a resource address: expected KIND/NAME with KIND one of "
            f"{', '.join(ADDRESS_KINDS)} (for example Site/acme-home or "
            "Hostname/www.acme.com)"
        )
    if kind == "Hostname":
        name = name.lower().rstrip(".")
    if kind == "Site" and ":" in name and name.partition(":")[2] not in ENVIRONMENTS:
        raise ValueError(
            f"{text!r}: a site's environment is one of {', '.join(ENVIRONMENTS)} "
            "(Site/NAME:production)"
        )
    return f"{kind}/{name}"


def covers(address: str, *, target: str, tenant: str | None, site: str | None) -> bool:
    """Whether ``address`` covers a plan entry of ``target``, ``tenant`` and ``site`` (rule 2)."""
    if target == address or target.startswith(address + ":"):
        return True
    kind, _, name = address.partition("/")
    if kind == "Tenant":
        return tenant == name
    if kind == "Site" and ":" not in name:
        return site == name and target.startswith("Hostname/")
    return False


@dataclass(frozen=True, slots=True)
class Forced:
    """What the area planners produced for the levers: kept whole by :func:`narrow`."""

    actions: frozenset[str] = frozenset()  # action ids
    blocked: frozenset[Blocked] = frozenset()
    notes: frozenset[Note] = frozenset()


def narrow(plan: Plan, selection: Selection, forced: Forced, lock_kinds: Iterable[object]) -> Plan:
    """The part of ``plan`` the targets cover, and what the levers produced (rule 3).

    Args:
        plan: the whole plan of the scope.
        selection: the targets and levers of the command.
        forced: the actions, blocks and notes the area planners made for the levers.
        lock_kinds: the action kinds whose dependents are kept with them (the locks).
    """
    targets = selection.targets
    by_id = {action.id: action for action in plan.actions}
    keep = set(forced.actions) | {
        action.id for action in plan.actions if any(_covered(t, action) for t in targets)
    }
    locks = frozenset(lock_kinds)
    keep |= {
        action.id
        for action in plan.actions
        if any(by_id[dep].kind in locks for dep in action.depends_on if dep in keep)
    }
    _with_dependencies(keep, by_id)
    return dataclasses.replace(
        plan,
        actions=tuple(action for action in plan.actions if action.id in keep),
        blocked=_kept(plan.blocked, forced.blocked, targets),
        notes=_kept(plan.notes, forced.notes, targets),
    )


def _covered(address: str, entry: Action | Blocked | Note) -> bool:
    return covers(address, target=entry.target, tenant=entry.tenant, site=entry.site)


def _kept(
    entries: Sequence[_Entry], forced: frozenset[_Entry], targets: Sequence[str]
) -> tuple[_Entry, ...]:
    """The blocked items or notes a lever produced, or a target covers."""
    return tuple(e for e in entries if e in forced or any(_covered(t, e) for t in targets))


def _with_dependencies(keep: set[str], by_id: Mapping[str, Action]) -> None:
    """Add every action the kept ones depend on, transitively (in place)."""
    todo = list(keep)
    while todo:
        action = by_id[todo.pop()]
        for dep in action.depends_on:
            if dep in by_id and dep not in keep:
                keep.add(dep)
                todo.append(dep)


def levers_on(levers: Sequence[Lever], target: str, *kinds: LeverKind) -> Lever | None:
    """The first lever of ``kinds`` whose address covers ``target`` exactly or by environment.

    ``Site/acme-home`` reaches both environments, ``Site/acme-home:preview`` only one.
    """
    for lever in levers:
        if lever.kind in kinds and (
            lever.target == target or target.startswith(lever.target + ":")
        ):
            return lever
    return None
