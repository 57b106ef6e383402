"""plan: desired facts + observed facts -> an ordered, explained, gated set of actions.

The heart of the pure core. Called by ``runtime`` for ``reconciler plan``, ``apply`` and every
daemon pass; rendered by ``core/render.py``; executed by ``runtime/execute.py``, whose
handlers read an action's ``kind``, ``target`` and typed ``payload`` (``core/payloads.py``)
and never its ``reason``.

This module holds the plan's types and :func:`build_plan`; the per-area logic lives in
``plan_billing`` (tenants), ``plan_sites`` (publish, rollback) and ``plan_hostnames``, which
fill the collector of ``plan_builder``.

Rules (numbered, h11-style; tests in tests/core/ cite them):

1. No I/O, clock or randomness: the same inputs give a byte-identical plan.
2. A source named in ``observed.incomplete`` gets no creates and no deletes: its listing may be
   partial (deletes) or stale (creates could duplicate). Such actions become ``Blocked`` with
   the reading's error as the reason.
3. Only owned hostnames (our ownership marker) are deleted or changed. Others that no spec
   claims are ``unmanaged`` notes; others that a spec claims are ``Blocked`` conflicts. A Pages
   project D1 records for a site no spec declares, and that no Site claims, is an
   ``unmanaged`` note too: never deleted, never published to.
4. Rolling back to an existing successful deployment of the desired version is preferred to a
   rebuild; a rebuild happens only when no such deployment exists.
5. Policy gates block actions with a reason: a hard-locked tenant gets no publish; a publish
   whose in-memory build fails or is over its performance budget is blocked; hostname
   deletions over the blast-radius cap (``core.policy.deletion_blocked``: one site with its own
   few hostnames is not a mass deletion) block every deletion that is not approved, by name
   in ``PlanSettings.approved_deletions`` (a Git commit trailer) or wholesale by
   ``allow_mass_deletion``.
6. Actions are ordered by dependencies, then by lane (rollbacks and unlocks first), tenant,
   site, kind and target. Action ids hash (kind, target, after): stable across re-plans and
   used as the idempotency key of the intent journal.
7. D1 mirrors what the world shows. A declared, owned hostname with no other action this pass
   whose ``domains`` row is missing, or records another status than Cloudflare shows (in the
   ``domains`` vocabulary, :func:`~reconciler.core.observed.domain_status`), another
   ``custom_hostname_id``, origin or site, gets a ``record_hostname`` (D1 only; it writes the
   certificate status and errors too, but a certificate stage alone does not trigger one).
   A row not marked ``deleted`` that records a custom hostname id the complete listing no
   longer shows, of a hostname no spec declares, gets a ``record_hostname`` with status
   ``deleted``; a declared one is
   created again, counted as a recreation when the row records the id it had (a run killed
   between a recreation's delete and its create). A publish blocked by its in-memory build (gate
   ``build`` or ``budget``) gets a ``record_publish_failure`` writing one ``failed``
   ``publish_versions`` row, unless the latest row of that version already records the same
   failure. Both compare what is recorded with what is seen, so a converged world plans
   nothing.
8. A publish whose latest attempt of the same version failed to build (``build failed: ...``)
   is blocked at once (gate ``build``): the same snapshot fails the same way, so it is never
   retried until the version changes. Deployment failures are retried up to the cap.
9. Levers (``core.levers``, ``PlanSettings.selection``) are forced intents: the area planners
   turn each into ordinary actions or refuse it with a reason, and a selection narrows the
   plan to its targets and what they depend on. Without a selection the plan is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

from reconciler.core.desired import Desired
from reconciler.core.lane import Lane
from reconciler.core.levers import Selection, narrow
from reconciler.core.observed import Observed, ObservedDigest, Source
from reconciler.core.policy import BlastRadius
from reconciler.core.routing import DesiredPlatform

if TYPE_CHECKING:
    from reconciler.core.payloads import Payload

FORMAT_VERSION = "1"

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]

OWNER_MARKER = "sitebuilder-reconciler"
"""Value of ``custom_metadata["managed-by"]`` on every custom hostname the reconciler creates."""


class ActionKind(StrEnum):
    """The closed vocabulary of what the executor can do (DESIGN.md section 5)."""

    ROLLBACK = "rollback"
    UNLOCK = "unlock"
    CREATE_ROUTES_NAMESPACE = "create_routes_namespace"
    DEPLOY_WORKER = "deploy_worker"
    SET_WORKER_ROUTE = "set_worker_route"
    SET_FALLBACK_ORIGIN = "set_fallback_origin"
    SYNC_BILLING = "sync_billing"
    PUBLISH = "publish"
    RETRY_PUBLISH = "retry_publish"
    WRITE_ROUTES = "write_routes"
    CREATE_HOSTNAME = "create_hostname"
    UPDATE_HOSTNAME = "update_hostname"
    RETRY_VALIDATION = "retry_validation"
    RECREATE_HOSTNAME = "recreate_hostname"
    DELETE_HOSTNAME = "delete_hostname"
    SOFT_LOCK = "soft_lock"
    HARD_LOCK = "hard_lock"
    SEND_DUNNING = "send_dunning"
    RECORD_HOSTNAME = "record_hostname"
    RECORD_PUBLISH_FAILURE = "record_publish_failure"
    PURGE_CACHE = "purge_cache"
    DEPLOY_WORKER_VERSION = "deploy_worker_version"
    ROLLBACK_WORKER_VERSION = "rollback_worker_version"


class Cause(StrEnum):
    """Why an action exists: the specs asked for something new, or the world drifted."""

    CHANGE = "change"
    DRIFT = "drift"


# How a failed reading is named in reasons: "custom hostnames could not be listed (HTTP 503)".
UNREADABLE: Mapping[Source, str] = {
    Source.PAGES: "Pages deployments could not be read",
    Source.HOSTNAMES: "custom hostnames could not be listed",
    Source.D1: "D1 could not be read",
    Source.STRIPE: "Stripe could not be read",
    Source.WHATSAPP: "the WhatsApp gateway could not be reached",
    Source.ROUTES: "the routing table could not be listed",
    Source.PLATFORM: "the dispatch Worker platform could not be read",
    Source.WORKERS: "Workers versions and deployments could not be read",
}

# Order of kinds within a lane, and the summary word each kind counts under.
_KIND_ORDER = {kind: index for index, kind in enumerate(ActionKind)}
SUMMARY_WORDS: Mapping[ActionKind, str] = {
    ActionKind.PUBLISH: "publish",
    ActionKind.RETRY_PUBLISH: "retry",
    ActionKind.ROLLBACK: "roll back",
    ActionKind.CREATE_HOSTNAME: "create",
    ActionKind.UPDATE_HOSTNAME: "update",
    ActionKind.RETRY_VALIDATION: "retry",
    ActionKind.RECREATE_HOSTNAME: "recreate",
    ActionKind.DELETE_HOSTNAME: "delete",
    ActionKind.SOFT_LOCK: "lock",
    ActionKind.HARD_LOCK: "lock",
    ActionKind.UNLOCK: "unlock",
    ActionKind.SEND_DUNNING: "message",
    ActionKind.SYNC_BILLING: "sync",
    ActionKind.RECORD_HOSTNAME: "record",
    ActionKind.RECORD_PUBLISH_FAILURE: "record",
    ActionKind.PURGE_CACHE: "purge",
    ActionKind.WRITE_ROUTES: "route",
    ActionKind.CREATE_ROUTES_NAMESPACE: "set up",
    ActionKind.DEPLOY_WORKER: "set up",
    ActionKind.SET_WORKER_ROUTE: "set up",
    ActionKind.SET_FALLBACK_ORIGIN: "set up",
    ActionKind.DEPLOY_WORKER_VERSION: "deploy",
    ActionKind.ROLLBACK_WORKER_VERSION: "roll back",
}
SUMMARY_ORDER = (
    "set up",
    "publish",
    "deploy",
    "roll back",
    "create",
    "update",
    "retry",
    "recreate",
    "delete",
    "route",
    "lock",
    "unlock",
    "message",
    "sync",
    "record",
    "purge",
)

# Predicted API calls per action and meter (the cost forecast), as measured in the sandbox
# (bench/bench_publish.py prints forecast beside actual). A meter is a provider's credential:
# "cloudflare" is the API token; "pages_upload" the upload JWT a publish's asset calls use
# (check missing, one upload batch, upsert: a small site), which spends no API token; "d1"
# spends the API token too when D1 is reached over REST (``Plan.calls``' ``meters``).
# A publish on the token: upload token, create, one status read (the first read waits as long
# as Pages usually takes); on D1 one request, its intent's batch, which also starts the publish
# row and reads the content snapshot and budget (its outcome and live row ride in front of the
# next intent: ``runtime/journal.py`` rule 5). Its host purge is shared with concurrent
# publishes: see ``PUBLISHES_PER_PURGE``.
PUBLISHES_PER_PURGE = 16
"""Publishes whose host purges share one purge request (``runtime/execute.py`` runs 16
Cloudflare actions at once; a request holds up to 100 hosts)."""
_PUBLISH_CALLS: Mapping[str, int] = {"cloudflare": 3, "pages_upload": 3, "d1": 1}
_CALLS: Mapping[ActionKind, Mapping[str, int]] = {
    ActionKind.PUBLISH: _PUBLISH_CALLS,
    ActionKind.RETRY_PUBLISH: _PUBLISH_CALLS,
    ActionKind.ROLLBACK: {"cloudflare": 3, "d1": 2},
    ActionKind.CREATE_HOSTNAME: {"cloudflare": 1, "d1": 1},
    ActionKind.UPDATE_HOSTNAME: {"cloudflare": 2, "d1": 1},
    ActionKind.RETRY_VALIDATION: {"cloudflare": 1, "d1": 1},
    ActionKind.RECREATE_HOSTNAME: {"cloudflare": 2, "d1": 1},
    ActionKind.DELETE_HOSTNAME: {"cloudflare": 1, "d1": 1},
    ActionKind.SOFT_LOCK: {"d1": 2},
    ActionKind.HARD_LOCK: {"d1": 2},
    ActionKind.UNLOCK: {"d1": 2},
    ActionKind.SEND_DUNNING: {"whatsapp": 2, "d1": 2},
    ActionKind.SYNC_BILLING: {"d1": 1},
    ActionKind.RECORD_HOSTNAME: {"d1": 1},
    ActionKind.RECORD_PUBLISH_FAILURE: {"d1": 1},
    ActionKind.PURGE_CACHE: {"cloudflare": 1},
    ActionKind.WRITE_ROUTES: {"cloudflare": 1, "d1": 1},  # per 10,000 keys
    ActionKind.CREATE_ROUTES_NAMESPACE: {"cloudflare": 1},
    ActionKind.DEPLOY_WORKER: {"cloudflare": 1},
    ActionKind.SET_WORKER_ROUTE: {"cloudflare": 1},
    ActionKind.SET_FALLBACK_ORIGIN: {"cloudflare": 1},
    # one deployment, one health GET per step, a deployment back if it fails, the D1 record
    ActionKind.DEPLOY_WORKER_VERSION: {"cloudflare": 1, "d1": 1},
    ActionKind.ROLLBACK_WORKER_VERSION: {"cloudflare": 1, "d1": 1},
}


@dataclass(frozen=True, slots=True)
class Action:
    """One executable step. ``payload`` is the executor's whole input; ``reason`` is for people.

    ``after`` is the payload's JSON form (rendered, hashed into ``id``, journaled);
    ``payload`` is the same input parsed once, typed (``core/payloads.py``), where the action
    is made: by the planner's collector or when a saved plan is read.
    """

    id: str
    kind: ActionKind
    target: str  # "Site/acme-home:production", "Hostname/www.acme.com", "Tenant/acme", ...
    tenant: str | None
    site: str | None
    before: Mapping[str, JsonValue]
    after: Mapping[str, JsonValue]
    payload: Payload
    reason: str
    source: str | None  # "specs/sites/acme.yaml:14:7"
    cause: Cause
    lane: Lane
    depends_on: tuple[str, ...] = ()
    calls: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Blocked:
    """An action the plan would take but a gate forbids, with the reason a human must act on."""

    kind: ActionKind
    target: str
    tenant: str | None
    site: str | None
    gate: str  # hard_locked | budget | build | missing_version | missing_project | stuck |
    #            conflict | blast_radius | incomplete | refused (a lever the specs forbid) |
    #            missing_worker | missing_worker_version | health
    reason: str
    source: str | None


@dataclass(frozen=True, slots=True)
class Note:
    """Something deliberately not done: unmanaged or retained objects, waiting work."""

    target: str
    tenant: str | None
    site: str | None
    category: str  # unmanaged | retained | waiting | unchanged (a lever with nothing to do)
    reason: str


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """Knobs of the planner, from settings and flags."""

    blast_radius: BlastRadius = field(default_factory=BlastRadius)
    allow_mass_deletion: bool = False
    # Deletions approved over the cap: ``Site/<name>`` or ``Hostname/<name>`` -> where the
    # approval was given ("commit 1a2b3c4d5e6f (Remove acme-shop)"), shown in the plan.
    approved_deletions: Mapping[str, str] = field(default_factory=dict)
    max_publish_attempts: int = 3
    # A publish stuck on the provider's side (deployment failures, not our content) is tried
    # again by itself once this long has passed since its last attempt.
    stuck_cooldown: float = 6 * 3600.0
    selection: Selection = field(default_factory=Selection)  # --target and the levers
    routes_namespace: str = "sitebuilder-routes"  # the routing table's KV namespace title
    platform: DesiredPlatform | None = None  # None: Worker, route, fallback managed by hand
    custom_metadata: bool = False  # the account is entitled to custom hostname metadata


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered actions for one desired revision against one observation."""

    revision: str | None
    digest: ObservedDigest  # of the observation planned against, hashed when first read
    planned_at: float
    actions: tuple[Action, ...]
    blocked: tuple[Blocked, ...]
    notes: tuple[Note, ...]
    incomplete: Mapping[str, str]
    # PR mode only: ids of actions the base commit already needed (drift that predates the PR),
    # and per-action context such as "reverts commit abc1234".
    preexisting: frozenset[str] = frozenset()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def observed_digest(self) -> str:
        """``sha256:<hex>`` of the observation: what a saved plan is checked against."""
        return self.digest.value

    @property
    def is_empty(self) -> bool:
        """True when nothing would be done and nothing is blocked."""
        return not self.actions and not self.blocked

    def summary_counts(self) -> dict[str, int]:
        """Actions counted under the summary words (publish, roll back, create, ...)."""
        counts = dict.fromkeys(SUMMARY_ORDER, 0)
        for action in self.actions:
            counts[SUMMARY_WORDS[action.kind]] += 1
        return counts

    def calls(self, meters: Mapping[str, str] | None = None) -> dict[str, int]:
        """Predicted API calls per meter for the whole plan.

        Args:
            meters: provider -> the meter its calls spend when not its own (``{"d1":
                "cloudflare"}`` when D1 is reached over REST with the Cloudflare token).
        """
        spends = meters or {}
        total: dict[str, int] = defaultdict(int)
        publishes = 0
        for action in self.actions:
            publishes += action.kind in (ActionKind.PUBLISH, ActionKind.RETRY_PUBLISH)
            for provider, count in action.calls.items():
                total[spends.get(provider, provider)] += count
        if publishes:  # their host purges, shared (PUBLISHES_PER_PURGE)
            total["cloudflare"] += -(-publishes // PUBLISHES_PER_PURGE)
        return dict(sorted(total.items()))


BUILD_FAILURE_PREFIX = "build failed: "
"""How ``publish_versions.error_message`` starts when the content did not build."""
BUDGET_FAILURE_PREFIX = "performance budget exceeded: "
"""How it starts when the build was over its budget (``core.budget.describe_violations``)."""
_NO_SNAPSHOT = "has no content snapshot"


def is_permanent_build_failure(error_message: str | None) -> bool:
    """Whether a failed publish's error is a build failure that a retry would repeat.

    Invalid content, a missing asset, an unsafe script or a build timeout fail the same way
    for the same snapshot. A missing snapshot is left to the ``missing_version`` gate (the
    editor may still write it); budget and deployment failures are not build failures.
    """
    text = error_message or ""
    return text.startswith(BUILD_FAILURE_PREFIX) and _NO_SNAPSHOT not in text


def action_identity(kind: ActionKind, target: str, after: Mapping[str, JsonValue]) -> str:
    """Stable id of an action: a short hash of its kind, target and canonical ``after``."""
    text = json.dumps([kind.value, target, after], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_plan(desired: Desired, observed: Observed, settings: PlanSettings | None = None) -> Plan:
    """Plan the actions that move the observed world to the desired one (see module rules)."""
    # The area planners import this module's types, so they are imported here, not at the top.
    from reconciler.core.plan_billing import plan_tenant
    from reconciler.core.plan_builder import PlanBuilder
    from reconciler.core.plan_hostnames import plan_hostnames
    from reconciler.core.plan_platform import plan_platform
    from reconciler.core.plan_routes import plan_routes
    from reconciler.core.plan_sites import note_unclaimed_projects, plan_site
    from reconciler.core.plan_workers import plan_workers

    builder = PlanBuilder(desired, observed, settings or PlanSettings())
    scope = observed.scope
    if desired.scope is not None and (scope is None or not scope <= desired.scope):
        raise ValueError("a scoped derive must cover every site the observation covers")
    # A tenant is planned when one of its sites is in scope: one pass over the scope, not a
    # walk of every site per tenant (the daemon plans one tenant on a 10,000-site fleet).
    owners = (
        None if scope is None else {desired.sites[s].tenant for s in scope if s in desired.sites}
    )
    if scope is None:
        plan_platform(builder)  # the whole-fleet plan owns the platform; a scoped one does not
    for name, tenant in desired.tenants.items():
        if owners is not None and name not in owners:
            continue
        plan_tenant(builder, tenant)
    for name, site in desired.sites.items():
        if scope is not None and name not in scope:
            continue
        plan_site(builder, site)
    plan_routes(builder)
    plan_hostnames(builder)
    plan_workers(builder)
    if scope is None:
        note_unclaimed_projects(builder)
    builder.refuse_unreached()
    plan = Plan(
        revision=desired.revision,
        digest=ObservedDigest(observed),
        planned_at=desired.now,
        actions=builder.ordered(),
        blocked=tuple(
            sorted(builder.blocked, key=lambda b: (b.tenant or "", b.site or "", b.target))
        ),
        notes=tuple(sorted(builder.notes, key=lambda n: (n.category, n.tenant or "", n.target))),
        incomplete={
            source.value: gap.detail for source, gap in sorted(observed.incomplete.items())
        },
    )
    selection = builder.settings.selection
    if not selection.narrowed:
        return plan
    locks = (ActionKind.SOFT_LOCK, ActionKind.HARD_LOCK, ActionKind.UNLOCK)
    return narrow(plan, selection, builder.forced_result(), locks)
