"""plan: desired facts + observed facts -> an ordered, explained, gated set of actions.

The heart of the pure core. Called by ``runtime`` for ``reconciler plan``, ``apply`` and every
daemon pass; rendered by ``core/render.py``; executed by ``runtime/execute.py``, which reads an
action's ``kind``, ``target`` and ``after`` and never its ``reason``.

Rules (numbered, h11-style; tests in tests/core/ cite them):

1. No I/O, clock or randomness: the same inputs give a byte-identical plan.
2. A source named in ``observed.incomplete`` gets no creates and no deletes: its listing may be
   partial (deletes) or stale (creates could duplicate). Such actions become ``Blocked`` with
   the reading's error as the reason.
3. Only owned hostnames (our ownership marker) are deleted or changed. Others that no spec
   claims are ``unmanaged`` notes; others that a spec claims are ``Blocked`` conflicts.
4. Rolling back to an existing successful deployment of the desired version is preferred to a
   rebuild; a rebuild happens only when no such deployment exists.
5. Policy gates block actions with a reason: a hard-locked tenant gets no publish; a publish
   whose in-memory build fails or is over its performance budget is blocked; more hostname
   deletions than the blast-radius cap block every deletion unless explicitly allowed.
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
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from graphlib import TopologicalSorter
from typing import TypeAlias

from reconciler.core.budget import BudgetMetric, check_budget, describe_violations
from reconciler.core.desired import Desired, DesiredHostname, DesiredSite, DesiredTenant
from reconciler.core.facts import Invoice
from reconciler.core.observed import (
    BuildPreview,
    Observed,
    ObservedDeployment,
    ObservedHostname,
    ObservedProject,
    Source,
    billing_digest,
    domain_status,
)
from reconciler.core.policy import AccessDecision, BlastRadius, deletion_blocked, format_amount
from reconciler.spec.models import Access, Kind

FORMAT_VERSION = "1"

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]

OWNER_MARKER = "sitebuilder-reconciler"
"""Value of ``custom_metadata["managed-by"]`` on every custom hostname the reconciler creates."""


class ActionKind(StrEnum):
    """The closed vocabulary of what the executor can do (DESIGN.md section 5)."""

    ROLLBACK = "rollback"
    UNLOCK = "unlock"
    SYNC_BILLING = "sync_billing"
    PUBLISH = "publish"
    RETRY_PUBLISH = "retry_publish"
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


class Cause(StrEnum):
    """Why an action exists: the specs asked for something new, or the world drifted."""

    CHANGE = "change"
    DRIFT = "drift"


class Lane(StrEnum):
    """Priority: urgent work (rollbacks, unlocks) before changes."""

    URGENT = "urgent"
    CHANGE = "change"


# How a failed reading is named in reasons: "custom hostnames could not be listed (HTTP 503)".
UNREADABLE: Mapping[Source, str] = {
    Source.PAGES: "Pages deployments could not be read",
    Source.HOSTNAMES: "custom hostnames could not be listed",
    Source.D1: "D1 could not be read",
    Source.STRIPE: "Stripe could not be read",
    Source.WHATSAPP: "the WhatsApp gateway could not be reached",
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
}
SUMMARY_ORDER = (
    "publish",
    "roll back",
    "create",
    "update",
    "retry",
    "recreate",
    "delete",
    "lock",
    "unlock",
    "message",
    "sync",
    "record",
)

# Predicted API calls per action and provider (the cost forecast). Publishing uploads in
# batches; the figure counts the fixed calls of a small site: upload token, check missing,
# one upload batch, create, about three status polls, one purge.
_CALLS: Mapping[ActionKind, Mapping[str, int]] = {
    ActionKind.PUBLISH: {"cloudflare": 8, "d1": 4},
    ActionKind.RETRY_PUBLISH: {"cloudflare": 8, "d1": 4},
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
}


@dataclass(frozen=True, slots=True)
class Action:
    """One executable step. ``after`` is the executor's whole input; ``reason`` is for people."""

    id: str
    kind: ActionKind
    target: str  # "Site/acme-home:production", "Hostname/www.acme.com", "Tenant/acme", ...
    tenant: str | None
    site: str | None
    before: Mapping[str, JsonValue]
    after: Mapping[str, JsonValue]
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
    #            conflict | blast_radius | incomplete
    reason: str
    source: str | None


@dataclass(frozen=True, slots=True)
class Note:
    """Something deliberately not done: unmanaged or retained objects, waiting work."""

    target: str
    tenant: str | None
    site: str | None
    category: str  # unmanaged | retained | waiting
    reason: str


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """Knobs of the planner, from settings and flags."""

    blast_radius: BlastRadius = field(default_factory=BlastRadius)
    allow_mass_deletion: bool = False
    max_publish_attempts: int = 3


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered actions for one desired revision against one observation."""

    revision: str | None
    observed_digest: str
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
    def is_empty(self) -> bool:
        """True when nothing would be done and nothing is blocked."""
        return not self.actions and not self.blocked

    def summary_counts(self) -> dict[str, int]:
        """Actions counted under the summary words (publish, roll back, create, ...)."""
        counts = dict.fromkeys(SUMMARY_ORDER, 0)
        for action in self.actions:
            counts[SUMMARY_WORDS[action.kind]] += 1
        return counts

    def calls(self) -> dict[str, int]:
        """Predicted API calls per provider for the whole plan."""
        total: dict[str, int] = defaultdict(int)
        for action in self.actions:
            for provider, count in action.calls.items():
                total[provider] += count
        return dict(sorted(total.items()))


# --- the planner ---------------------------------------------------------------------------


class _Builder:
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

    def source(self, kind: Kind, name: str, fieldpath: str = "") -> str | None:
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
        action_id = action_identity(kind, target, after)
        lane = Lane.URGENT if kind in (ActionKind.ROLLBACK, ActionKind.UNLOCK) else Lane.CHANGE
        self.actions.append(
            Action(
                id=action_id,
                kind=kind,
                target=target,
                tenant=tenant,
                site=site,
                before=dict(before),
                after=dict(after),
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
        self.blocked.append(
            Blocked(
                kind=kind,
                target=target,
                tenant=tenant,
                site=site,
                gate=gate,
                reason=reason,
                source=source,
            )
        )

    def note(
        self, target: str, *, tenant: str | None, site: str | None, category: str, reason: str
    ) -> None:
        self.notes.append(
            Note(target=target, tenant=tenant, site=site, category=category, reason=reason)
        )

    def incomplete(self, source: Source) -> str | None:
        reason = self.observed.incomplete.get(source)
        return None if reason is None else f"{UNREADABLE[source]} ({reason})"

    # --- tenants and billing ----------------------------------------------------------------

    def plan_tenant(self, tenant: DesiredTenant) -> None:
        target = f"Tenant/{tenant.name}"
        stripe_gap = self.incomplete(Source.STRIPE)
        d1_gap = self.incomplete(Source.D1)
        facts = self.observed.billing.get(tenant.customer)
        if d1_gap is not None:
            self.note(target, tenant=tenant.name, site=None, category="waiting", reason=d1_gap)
            return
        if stripe_gap is None and facts is not None:
            digest = billing_digest(facts)
            mirrored = self.observed.billing_mirror.get(tenant.customer)
            if mirrored != digest:
                owed = _owed(facts.open_invoices)
                state = "has no copy of" if mirrored is None else "has an outdated copy of"
                self.billing_actions[tenant.name] = self.add(
                    ActionKind.SYNC_BILLING,
                    target,
                    tenant=tenant.name,
                    site=None,
                    before={"mirror": mirrored},
                    after={
                        "tenant": tenant.name,
                        "customer": tenant.customer,
                        "digest": digest,
                        "display_name": tenant.display_name,
                        "policy": tenant.policy,
                        "whatsapp": tenant.whatsapp,
                    },
                    reason=(
                        f"D1 {state} the Stripe billing of customer {tenant.customer}; Stripe "
                        f"shows {owed}: copy it (read from Stripe, so a missed webhook does "
                        "not matter)"
                    ),
                    source=self.source(Kind.TENANT, tenant.name, "spec.stripe"),
                    cause=Cause.DRIFT,
                )
        self.plan_access(tenant, stripe_gap)
        self.plan_dunning(tenant, stripe_gap)

    def plan_access(self, tenant: DesiredTenant, stripe_gap: str | None) -> None:
        target = f"Tenant/{tenant.name}"
        decision = tenant.access
        record = self.observed.tenants.get(tenant.name)
        current = record.access if record is not None else Access.ACTIVE.value
        if decision.level.value == current:
            return
        if decision.source == "policy" and stripe_gap is not None:
            self.note(
                target,
                tenant=tenant.name,
                site=None,
                category="waiting",
                reason=f"access not re-evaluated: {stripe_gap}",
            )
            return
        kind = {
            Access.ACTIVE: ActionKind.UNLOCK,
            Access.SOFT_LOCKED: ActionKind.SOFT_LOCK,
            Access.HARD_LOCKED: ActionKind.HARD_LOCK,
        }[decision.level]
        field_path = "spec.access" if decision.source == "override" else "spec.policy"
        depends = [self.billing_actions[tenant.name]] if tenant.name in self.billing_actions else []
        action_id = self.add(
            kind,
            target,
            tenant=tenant.name,
            site=None,
            before={"access": current},
            after={
                "tenant": tenant.name,
                "access": decision.level.value,
                "source": decision.source,
                "reason": decision.reason,
            },
            reason=_access_reason(decision, current),
            source=self.source(Kind.TENANT, tenant.name, field_path),
            cause=Cause.CHANGE,
            depends_on=depends,
        )
        self.tenant_actions[tenant.name].append(action_id)

    def plan_dunning(self, tenant: DesiredTenant, stripe_gap: str | None) -> None:
        if not tenant.dunning:
            return
        whatsapp_gap = self.incomplete(Source.WHATSAPP)
        for due in tenant.dunning:
            target = f"Invoice/{due.invoice_id}:{due.step_code}"
            record = self.observed.dunning.get((due.invoice_id, due.step_code))
            if record is not None and record.status != "pending":
                continue  # sent, failed for good, or skipped: at most once per (invoice, step)
            if stripe_gap is not None:
                continue  # derive saw no invoices it can trust; nothing is due
            if whatsapp_gap is not None:
                self.note(
                    target,
                    tenant=tenant.name,
                    site=None,
                    category="waiting",
                    reason=f"dunning step {due.step_code} is due but waits: {whatsapp_gap}",
                )
                continue
            depends = (
                [self.billing_actions[tenant.name]] if tenant.name in self.billing_actions else []
            )
            # Earlier steps already logged (sent, failed, skipped) are not superseded again.
            unsent = [
                code
                for code in due.superseded
                if (logged := self.observed.dunning.get((due.invoice_id, code))) is None
                or logged.status == "pending"
            ]
            skipped = ""
            if unsent:
                steps = ", ".join(unsent)
                noun = "step" if len(unsent) == 1 else "steps"
                verb = "was" if len(unsent) == 1 else "were"
                skipped = (
                    f"; the earlier {noun} {steps} {verb} never sent and will be recorded as "
                    "skipped, so the tenant gets one message, not several"
                )
            self.add(
                ActionKind.SEND_DUNNING,
                target,
                tenant=tenant.name,
                site=None,
                before={"status": record.status if record is not None else None},
                after={
                    "tenant": tenant.name,
                    "invoice_id": due.invoice_id,
                    "step_code": due.step_code,
                    "phone": due.phone,
                    "message": due.message,
                    "superseded": list[JsonValue](unsent),
                },
                reason=(
                    f"dunning step {due.step_code} (day {due.day} of the schedule) is due for "
                    f"invoice {due.invoice_id} and has not been sent{skipped}"
                ),
                source=self.source(Kind.TENANT, tenant.name, "spec.whatsapp"),
                cause=Cause.CHANGE,
                depends_on=depends,
            )

    # --- sites: publish and rollback --------------------------------------------------------

    def plan_site(self, site: DesiredSite) -> None:
        self.plan_environment(site, "production", site.production)
        if site.preview is not None:
            self.plan_environment(site, "preview", site.preview)

    def plan_environment(self, site: DesiredSite, env: str, version: int) -> None:
        target = f"Site/{site.name}:{env}"
        field_path = f"spec.{env}.version"
        source = self.source(Kind.SITE, site.name, field_path)
        d1_gap = self.incomplete(Source.D1)
        pages_gap = self.incomplete(Source.PAGES)
        if d1_gap is not None:
            self.note(target, tenant=site.tenant, site=site.name, category="waiting", reason=d1_gap)
            return
        ledger = self.observed.ledger.get(site.name)
        live = ledger.live.get(env) if ledger is not None else None
        latest = ledger.latest.get(env) if ledger is not None else None
        project = self.observed.projects.get(site.pages_project)

        if pages_gap is not None:
            if live is None or live.version != version:
                self.block(
                    ActionKind.PUBLISH,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="incomplete",
                    reason=f"version {version} is wanted but {pages_gap}",
                    source=source,
                )
            return
        if project is None and live is not None and live.version == version:
            return  # the ledger agrees, so Pages was not read this pass (DESIGN.md section 7)
        if project is None:
            self.block(
                ActionKind.PUBLISH,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="missing_project",
                reason=(
                    f"Pages project {site.pages_project!r} does not exist; create it in "
                    "Cloudflare (the reconciler publishes into projects, it does not create them)"
                ),
                source=self.source(Kind.SITE, site.name, "spec.pages_project"),
            )
            return

        if live is not None and live.version == version:
            serving = project.production_deployment_id
            if env != "production" or serving is None or serving == live.deployment_id:
                return  # converged
            if project.deployments is None:
                return  # deployments not listed this pass: no evidence the recorded one is gone
            deployment = _find(project, deployment_id=live.deployment_id)
            if deployment is not None:
                self.add(
                    ActionKind.ROLLBACK,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    before={"deployment_id": serving, "version": version},
                    after=_rollback_after(site, env, version, deployment, self.desired.revision),
                    reason=(
                        f"production serves deployment {serving}, not {live.deployment_id} "
                        f"(version {version}, recorded live in D1); point it back, no rebuild"
                    ),
                    source=source,
                    cause=Cause.DRIFT,
                )
                return
            # The recorded deployment is gone: fall through to a rebuild.

        before: dict[str, JsonValue] = {
            "version": live.version if live is not None else None,
            "deployment_id": live.deployment_id if live is not None else None,
        }
        was = f"at version {live.version}" if live is not None else "not published yet"
        policy = self.desired.tenants[site.tenant].policy
        if env == "production":
            candidate = _find(project, site=site.name, version=version, env=env)
            if candidate is not None:
                self.add(
                    ActionKind.ROLLBACK,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    before=before,
                    after=_rollback_after(site, env, version, candidate, self.desired.revision),
                    reason=(
                        f"{env} is {was}; the spec asks for version {version}, which has a "
                        f"successful deployment {candidate.id}: roll back to it, no rebuild"
                    ),
                    source=source,
                    cause=Cause.CHANGE,
                )
                return

        build = self.observed.builds.get((site.name, version))
        kind = ActionKind.PUBLISH
        attempts = 1
        failed = latest if latest is not None and latest.version == version else None
        if failed is not None and failed.status != "failed":
            failed = None
        if failed is not None and is_permanent_build_failure(failed.error_message):
            # Rule 8: the same snapshot fails the same way; wait for a new version.
            self.block(
                kind,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="build",
                reason=(
                    f"version {version} does not build: "
                    f"{_without_prefix(failed.error_message or '')}; it is not retried (the "
                    "same content fails the same way): fix the content and publish a new "
                    "version"
                ),
                source=source,
            )
            return
        budget_decides = (
            failed is not None
            and build is not None
            and build.error is None
            and (failed.error_message or "").startswith(BUDGET_FAILURE_PREFIX)
        )
        if failed is not None and not budget_decides:
            if failed.attempts >= self.settings.max_publish_attempts:
                self.block(
                    ActionKind.RETRY_PUBLISH,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="stuck",
                    reason=(
                        f"publishing version {version} failed {failed.attempts} times, last "
                        f"error: {failed.error_message or 'unknown'}; fix the content and bump "
                        "the version, or set it back"
                    ),
                    source=source,
                )
                return
            kind = ActionKind.RETRY_PUBLISH
            attempts = failed.attempts + 1
        if not site.publish_allowed:
            self.block(
                kind,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="hard_locked",
                reason=(
                    f"version {version} is wanted, but tenant {site.tenant} is hard-locked: "
                    "nothing is published until it is unlocked"
                ),
                source=source,
            )
            return
        if ledger is not None and ledger.versions and version not in ledger.versions:
            self.block(
                kind,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="missing_version",
                reason=f"version {version} has no content snapshot in D1 site_versions",
                source=source,
            )
            return
        if build is not None and build.error is not None:
            self.block(
                kind,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="build",
                reason=f"version {version} does not build: {build.error}",
                source=source,
            )
            self.record_publish_failure(
                site, env, version, build, BUILD_FAILURE_PREFIX + build.error, source
            )
            return
        if build is not None:
            violations = check_budget(
                js_kb=build.js_kb,
                css_kb=build.css_kb,
                third_party_scripts=build.third_party_scripts,
                budget=site.budget,
            )
            if violations:
                self.block(
                    kind,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="budget",
                    reason=(
                        f"the in-memory build of version {version} is over the performance budget "
                        f"of policy {policy}: "
                        + ", ".join(_budget_use(v.metric, v.actual, v.limit) for v in violations)
                        + "; nothing is uploaded. Make the site lighter or raise the budget"
                    ),
                    source=source,
                )
                self.record_publish_failure(
                    site, env, version, build, describe_violations(violations), source
                )
                return
        retry = f" (attempt {attempts}, last error: {failed.error_message})" if failed else ""
        reason = (
            f"{env} is {was}; the spec asks for version {version}, which has no deployment "
            f"yet: build and publish it{retry if kind is ActionKind.RETRY_PUBLISH else ''}"
        )
        if build is not None:
            reason += ". The in-memory build is within the performance budget: " + ", ".join(
                _budget_use(metric, actual, limit)
                for metric, actual, limit in _budget_figures(build, site)
            )
        after: dict[str, JsonValue] = {
            "site": site.name,
            "tenant": site.tenant,
            "project": site.pages_project,
            "environment": env,
            "version": version,
            "commit": self.desired.revision,
            "attempt": attempts,
            "hosts": [h.hostname for h in site.hostnames],
            "scripts": list(site.scripts),
            # The limits the publisher checks the real build against (runbook 4).
            "budget": {
                "max_js_kb": site.budget.max_js_kb,
                "max_css_kb": site.budget.max_css_kb,
                "max_third_party_scripts": site.budget.max_third_party_scripts,
            },
        }
        if build is not None:
            after["content_hash"] = build.content_hash
        self.add(
            kind,
            target,
            tenant=site.tenant,
            site=site.name,
            before=before,
            after=after,
            reason=reason,
            source=source,
            cause=Cause.CHANGE,
        )

    def record_publish_failure(
        self,
        site: DesiredSite,
        env: str,
        version: int,
        build: BuildPreview,
        error: str,
        source: str | None,
    ) -> None:
        """Rule 7: one ``failed`` publish_versions row for a publish its build blocks."""
        ledger = self.observed.ledger.get(site.name)
        latest = ledger.latest.get(env) if ledger is not None else None
        if (
            latest is not None
            and latest.version == version
            and latest.status == "failed"
            and latest.error_message == error
        ):
            return  # already recorded
        after: dict[str, JsonValue] = {
            "site": site.name,
            "tenant": site.tenant,
            "project": site.pages_project,
            "environment": env,
            "version": version,
            "commit": self.desired.revision,
            "content_hash": build.content_hash,
            "error_message": error,
        }
        if build.error is None:
            after["sizes"] = {
                "js_kb": build.js_kb,
                "css_kb": build.css_kb,
                "third_party_scripts": build.third_party_scripts,
            }
        self.add(
            ActionKind.RECORD_PUBLISH_FAILURE,
            f"Site/{site.name}:{env}",
            tenant=site.tenant,
            site=site.name,
            before={
                "version": latest.version if latest is not None else None,
                "status": latest.status if latest is not None else None,
            },
            after=after,
            reason=(
                f"the publish of version {version} is blocked by its build; record it as "
                "failed in publish_versions with the error, where runbook 1 looks"
            ),
            source=source,
            cause=Cause.CHANGE,
        )

    # --- hostnames --------------------------------------------------------------------------

    def origin_for(
        self, site: DesiredSite, hostname: DesiredHostname, have: ObservedHostname | None
    ) -> str:
        """The origin a hostname should point at.

        The Pages project's real subdomain when the project was read this pass; otherwise what
        an existing hostname already points at (unless that is the suspension origin), so a
        pass that did not read Pages never invents a change; else the conventional name.
        """
        if hostname.suspended:
            return hostname.suspension_origin
        project = self.observed.projects.get(site.pages_project)
        if project is not None:
            return project.subdomain
        if have is not None and have.origin and have.origin != hostname.suspension_origin:
            return have.origin
        return f"{site.pages_project}.pages.dev"

    def plan_hostnames(self) -> None:
        gap = self.incomplete(Source.HOSTNAMES)
        claimed: set[str] = set()
        scope = self.observed.scope
        for site in self.desired.sites.values():
            for hostname in site.hostnames:
                claimed.add(hostname.hostname)
                if scope is not None and site.name not in scope:
                    continue
                self.plan_hostname(site, hostname, gap)
        if self.desired.scope is not None:
            # A scoped derive holds the scoped sites only: a hostname none of them declares
            # may still be declared by another site (moved there), so ask the specs.
            unclaimed = {
                name
                for name, have in self.observed.hostnames.items()
                if name not in claimed and (scope is None or have.site in scope)
            }
            unclaimed |= {
                name
                for name, row in self.observed.unlisted_domains.items()
                if name not in claimed and (scope is None or row.site in scope)
            }
            claimed |= _declared(self.desired, unclaimed)
        deletions: list[tuple[ObservedHostname, str | None]] = []
        for name, observed in sorted(self.observed.hostnames.items()):
            if name in claimed:
                continue
            target = f"Hostname/{name}"
            if scope is not None and observed.site not in scope:
                continue
            if not observed.owned:
                self.note(
                    target,
                    tenant=None,
                    site=None,
                    category="unmanaged",
                    reason=(
                        "in the zone but in no spec, and without our ownership marker: left "
                        "alone, never deleted"
                    ),
                )
                continue
            owner = self.desired.sites.get(observed.site or "")
            policy = owner.deletion_policy if owner is not None else observed.deletion_policy
            why = (
                f"removed from site {observed.site}"
                if owner is not None
                else f"site {observed.site} is no longer in the specs"
            )
            if policy != "delete":
                self.note(
                    target,
                    tenant=observed.tenant,
                    site=observed.site,
                    category="retained",
                    reason=(
                        f"{why}; kept because its deletion_policy is retain (delete it by hand, "
                        "or set deletion_policy: delete)"
                    ),
                )
                continue
            deletions.append((observed, why))
        self.plan_deletions(deletions, gap)
        if gap is None and self.incomplete(Source.D1) is None:
            self.plan_deleted_records(claimed)

    def plan_deleted_records(self, claimed: set[str]) -> None:
        """Rule 7: mark ``deleted`` the rows of hostnames gone from the zone that no spec keeps.

        Only rows that record a custom hostname id: a row without one never named a hostname
        in the zone (the app may write a row before the reconciler creates the hostname).
        """
        scope = self.observed.scope
        for name, row in sorted(self.observed.unlisted_domains.items()):
            if name in claimed or (scope is not None and row.site not in scope):
                continue  # declared: created again, and that create records the row
            if not row.custom_hostname_id:
                continue
            recorded = f"{row.status}, id {row.custom_hostname_id}"
            self.add(
                ActionKind.RECORD_HOSTNAME,
                f"Hostname/{name}",
                tenant=row.tenant,
                site=row.site,
                before={"status": row.status, "id": row.custom_hostname_id, "origin": row.origin},
                after={"hostname": name, "site": row.site, "status": "deleted"},
                reason=(
                    f"gone from the zone and in no spec, but D1 domains still records it "
                    f"({recorded}): mark it deleted"
                ),
                source=None,
                cause=Cause.DRIFT,
            )

    def plan_hostname(self, site: DesiredSite, want: DesiredHostname, gap: str | None) -> None:
        planned = len(self.actions)
        self.plan_hostname_change(site, want, gap)
        if len(self.actions) == planned:
            self.plan_hostname_record(site, want)

    def plan_hostname_record(self, site: DesiredSite, want: DesiredHostname) -> None:
        """Rule 7: copy what Cloudflare shows into the hostname's D1 ``domains`` row."""
        have = self.observed.hostnames.get(want.hostname)
        if (
            have is None
            or not have.owned
            or have.site != site.name
            or self.incomplete(Source.D1) is not None
        ):
            return
        status = domain_status(have.status, have.ssl_status, suspended=want.suspended)
        if have.recorded_status is None:
            recorded = "no row"
        else:
            differs = []
            if status != have.recorded_status:
                # a certificate stage alone is not worth a write (the next record has it)
                differs.append(
                    f"{have.recorded_status} (certificate {have.recorded_ssl_status or 'none'})"
                )
            if have.recorded_id != have.id:
                differs.append(f"id {have.recorded_id or 'none'}")
            if have.recorded_origin != have.origin:
                differs.append(f"origin {have.recorded_origin or 'none'}")
            if have.recorded_site != site.name:
                differs.append(f"site {have.recorded_site or 'none'}")
            if not differs:
                return
            recorded = ", ".join(differs)
        shown = f"{status} (status {have.status}, certificate {have.ssl_status or 'none'})"
        if recorded == "no row" or have.recorded_id != have.id:
            shown += f", id {have.id}"
        if recorded == "no row" or have.recorded_origin != have.origin:
            shown += f", origin {have.origin or 'none'}"
        self.add(
            ActionKind.RECORD_HOSTNAME,
            f"Hostname/{want.hostname}",
            tenant=site.tenant,
            site=site.name,
            before={
                "status": have.recorded_status,
                "ssl_status": have.recorded_ssl_status,
                "id": have.recorded_id,
                "origin": have.recorded_origin,
            },
            after={
                "hostname": want.hostname,
                "site": site.name,
                "tenant": site.tenant,
                "project": site.pages_project,
                "id": have.id,
                "origin": have.origin,
                "ssl_method": have.ssl_method or want.ssl_method,
                "status": status,
                "ssl_status": have.ssl_status,
                "verification_errors": list[JsonValue](have.verification_errors),
                "verification_token": have.txt_value,
            },
            reason=(
                f"D1 domains records {recorded}; Cloudflare shows {shown}: record it, so the "
                "domains table reads what Cloudflare shows"
            ),
            source=self.source(Kind.SITE, site.name, f"spec.domains[{want.index}].hostname"),
            cause=Cause.DRIFT,
        )

    def plan_hostname_change(
        self, site: DesiredSite, want: DesiredHostname, gap: str | None
    ) -> None:
        target = f"Hostname/{want.hostname}"
        source = self.source(Kind.SITE, site.name, f"spec.domains[{want.index}].hostname")
        have = self.observed.hostnames.get(want.hostname)
        origin = self.origin_for(site, want, have)
        lock_deps = self.tenant_actions.get(site.tenant, [])
        if have is None:
            if gap is not None:
                self.block(
                    ActionKind.CREATE_HOSTNAME,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="incomplete",
                    reason=(
                        f"not seen in the zone, but {gap}: nothing is created until the "
                        "listing succeeds"
                    ),
                    source=source,
                )
                return
            after = _hostname_after(site, want, origin)
            vanished = self.observed.unlisted_domains.get(want.hostname)
            again = ""
            if vanished is not None and vanished.custom_hostname_id:
                # Recorded as created but gone (a recreation killed between its delete and
                # its create, or deleted outside the reconciler): count it as a recreation.
                after["recreate_count"] = vanished.recreate_count + 1
                again = (
                    f"; D1 domains records it as {vanished.custom_hostname_id}, gone from the "
                    f"zone: recreation {vanished.recreate_count + 1} of {want.max_recreates}"
                )
            self.add(
                ActionKind.CREATE_HOSTNAME,
                target,
                tenant=site.tenant,
                site=site.name,
                before={},
                after=after,
                reason=(
                    f"listed by site {site.name} but not in the zone: create it, with its "
                    f"certificate validated by {want.ssl_method.upper()}"
                )
                + (
                    "; it points at the suspension origin while the tenant is hard-locked"
                    if want.suspended
                    else ""
                )
                + again,
                source=source,
                cause=Cause.DRIFT if want.hostname in self.observed.known_domains else Cause.CHANGE,
                depends_on=lock_deps,
            )
            return
        if not have.owned:
            self.block(
                ActionKind.CREATE_HOSTNAME,
                target,
                tenant=site.tenant,
                site=site.name,
                gate="conflict",
                reason=(
                    "already in the zone without our ownership marker (made by hand or by "
                    "another tool); delete it or add the marker to adopt it"
                ),
                source=source,
            )
            return
        now = self.desired.now
        if _failed(have):
            if have.recreate_count >= want.max_recreates:
                self.block(
                    ActionKind.RECREATE_HOSTNAME,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="stuck",
                    reason=(
                        f"status {have.status}/{have.ssl_status} after {have.recreate_count} "
                        f"recreations (max {want.max_recreates}); the customer must point "
                        f"{want.hostname} at the SaaS target: "
                        + _dns_instructions(want, have, self.observed.cname_target)
                    ),
                    source=source,
                )
                if gap is None and now - have.status_since > want.validation_timeout:
                    # Stuck waits on the customer's DNS; re-check it once per timeout (one
                    # PATCH, nothing deleted) so the hostname recovers once the DNS is right.
                    after = _hostname_after(site, want, origin)
                    after["id"] = have.id
                    self.add(
                        ActionKind.RETRY_VALIDATION,
                        target,
                        tenant=site.tenant,
                        site=site.name,
                        before=_hostname_before(have),
                        after=after,
                        reason=(
                            f"stuck for {(now - have.status_since) / 3600:.1f} h: re-trigger "
                            "validation once per validation timeout, so it recovers as soon as "
                            "the customer's DNS is right"
                        ),
                        source=source,
                        cause=Cause.DRIFT,
                    )
                return
            if gap is not None:
                self.block(
                    ActionKind.RECREATE_HOSTNAME,
                    target,
                    tenant=site.tenant,
                    site=site.name,
                    gate="incomplete",
                    reason=f"failed ({have.status}/{have.ssl_status}) but {gap}",
                    source=source,
                )
                return
            after = _hostname_after(site, want, origin)
            after["id"] = have.id
            after["recreate_count"] = have.recreate_count + 1
            self.add(
                ActionKind.RECREATE_HOSTNAME,
                target,
                tenant=site.tenant,
                site=site.name,
                before=_hostname_before(have),
                after=after,
                reason=(
                    f"status {have.status}, certificate {have.ssl_status}: delete and create "
                    f"again (recreation {have.recreate_count + 1} of {want.max_recreates})"
                ),
                source=source,
                cause=Cause.DRIFT,
                depends_on=lock_deps,
            )
            return
        if (
            have.origin != origin
            or (have.ssl_method or "http") != want.ssl_method
            or have.site != site.name
        ):
            changes = []
            if have.origin != origin:
                if want.suspended:
                    why = "tenant hard-locked: serve the suspension origin"
                elif have.origin == want.suspension_origin:
                    why = "tenant no longer hard-locked: serve the site again"
                else:
                    why = "serve the site's Pages project"
                changes.append(f"origin {have.origin} -> {origin} ({why})")
            if (have.ssl_method or "http") != want.ssl_method:
                changes.append(f"ssl method {have.ssl_method} -> {want.ssl_method}")
            if have.site != site.name:
                changes.append(f"moves from site {have.site} to {site.name}")
            after = _hostname_after(site, want, origin)
            after["id"] = have.id
            self.add(
                ActionKind.UPDATE_HOSTNAME,
                target,
                tenant=site.tenant,
                site=site.name,
                before=_hostname_before(have),
                after=after,
                reason="; ".join(changes),
                source=source,
                cause=Cause.CHANGE if lock_deps or have.site != site.name else Cause.DRIFT,
                depends_on=lock_deps,
            )
            return
        if _pending(have) and now - have.status_since >= want.validation_timeout:
            after = _hostname_after(site, want, origin)
            after["id"] = have.id
            hours = (now - have.status_since) / 3600
            self.add(
                ActionKind.RETRY_VALIDATION,
                target,
                tenant=site.tenant,
                site=site.name,
                before=_hostname_before(have),
                after=after,
                reason=(
                    f"pending for {hours:.1f} h, over the validation timeout of "
                    f"{want.validation_timeout / 3600:g} h: re-trigger validation with the same "
                    "ssl settings"
                )
                + (
                    f"; DNS check: {finding}"
                    if (finding := _dns_finding(want, have, self.observed.cname_target))
                    else ""
                ),
                source=source,
                cause=Cause.DRIFT,
            )

    def plan_deletions(
        self, deletions: list[tuple[ObservedHostname, str | None]], gap: str | None
    ) -> None:
        if not deletions:
            return
        totals: dict[str, int] = defaultdict(int)
        for observed in self.observed.hostnames.values():
            if observed.owned and observed.tenant:
                totals[observed.tenant] += 1
        per_tenant: dict[str, tuple[int, int]] = {}
        for observed, _ in deletions:
            tenant = observed.tenant or "(none)"
            count, _total = per_tenant.get(tenant, (0, totals.get(tenant, 0)))
            per_tenant[tenant] = (count + 1, max(totals.get(tenant, 0), count + 1))
        cap = deletion_blocked(
            deletions=len(deletions),
            tenant_deletions=per_tenant,
            limits=self.settings.blast_radius,
        )
        for observed, why in deletions:
            target = f"Hostname/{observed.hostname}"
            if gap is not None:
                self.block(
                    ActionKind.DELETE_HOSTNAME,
                    target,
                    tenant=observed.tenant,
                    site=observed.site,
                    gate="incomplete",
                    reason=f"{why}, but {gap}: nothing is deleted until the listing succeeds",
                    source=None,
                )
                continue
            if cap is not None and not self.settings.allow_mass_deletion:
                self.block(
                    ActionKind.DELETE_HOSTNAME,
                    target,
                    tenant=observed.tenant,
                    site=observed.site,
                    gate="blast_radius",
                    reason=(
                        f"{why}; {cap}: nothing is deleted unless the plan is re-run with "
                        "--allow-mass-deletion"
                    ),
                    source=None,
                )
                continue
            self.add(
                ActionKind.DELETE_HOSTNAME,
                target,
                tenant=observed.tenant,
                site=observed.site,
                before=_hostname_before(observed),
                after={"id": observed.id, "hostname": observed.hostname, "site": observed.site},
                reason=(
                    f"{why} and its deletion_policy is delete; it carries our ownership marker"
                ),
                source=None,
                cause=Cause.CHANGE,
            )

    # --- ordering ---------------------------------------------------------------------------

    def ordered(self) -> tuple[Action, ...]:
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


def _sort_key(action: Action) -> tuple[int, str, str, int, bool, str]:
    return (
        0 if action.lane is Lane.URGENT else 1,
        action.tenant or "",
        action.site or "",
        _KIND_ORDER[action.kind],
        action.target.endswith(":preview"),  # production before preview
        action.target,
    )


def _declared(desired: Desired, names: set[str]) -> set[str]:
    """Those of ``names`` some site of the specs declares (walks the specs only if asked)."""
    if not names:
        return set()
    return {
        domain.canonical
        for site in desired.specs.sites.values()
        for domain in site.spec.domains
        if domain.canonical in names
    }


def _find(
    project: ObservedProject,
    *,
    deployment_id: str | None = None,
    site: str | None = None,
    version: int | None = None,
    env: str | None = None,
) -> ObservedDeployment | None:
    """The newest successful deployment matching the filters, if the deployments were read."""
    matches = [
        d
        for d in project.deployments or ()
        if d.status == "success"
        and (deployment_id is None or d.id == deployment_id)
        and (site is None or d.site == site)
        and (version is None or d.version == version)
        and (env is None or d.environment == env)
    ]
    if not matches:
        return None
    return max(matches, key=lambda d: (d.created_on, d.id))


def _rollback_after(
    site: DesiredSite,
    env: str,
    version: int,
    deployment: ObservedDeployment,
    revision: str | None,
) -> dict[str, JsonValue]:
    return {
        "site": site.name,
        "tenant": site.tenant,
        "project": site.pages_project,
        "environment": env,
        "version": version,
        "deployment_id": deployment.id,
        "commit": revision,
        "hosts": [h.hostname for h in site.hostnames],
    }


def _hostname_after(site: DesiredSite, want: DesiredHostname, origin: str) -> dict[str, JsonValue]:
    return {
        "hostname": want.hostname,
        "site": site.name,
        "tenant": site.tenant,
        "ssl_method": want.ssl_method,
        "origin": origin,
        "suspended": want.suspended,
        "deletion_policy": site.deletion_policy,
        "project": site.pages_project,  # the sites row a domains row belongs to
    }


def _hostname_before(have: ObservedHostname) -> dict[str, JsonValue]:
    return {
        "id": have.id,
        "status": have.status,
        "ssl_status": have.ssl_status,
        "ssl_method": have.ssl_method,
        "origin": have.origin,
        "site": have.site,
    }


_FAILED_STATUS = frozenset({"moved", "deleted", "blocked", "pending_blocked", "test_failed"})
_FAILED_SSL = frozenset(
    {
        "initializing_timed_out",
        "validation_timed_out",
        "issuance_timed_out",
        "deployment_timed_out",
        "expired",
        "deleted",
    }
)
_PENDING_STATUS = frozenset({"pending", "test_pending", "pending_provisioned"})
_PENDING_SSL = frozenset({"initializing", "pending_validation", "pending_issuance"})


def _failed(have: ObservedHostname) -> bool:
    return have.status in _FAILED_STATUS or (have.ssl_status or "") in _FAILED_SSL


def _pending(have: ObservedHostname) -> bool:
    return have.status in _PENDING_STATUS or (have.ssl_status or "") in _PENDING_SSL


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


def _without_prefix(error_message: str) -> str:
    return error_message.removeprefix(BUILD_FAILURE_PREFIX)


def _dns_instructions(want: DesiredHostname, have: ObservedHostname, target: str | None) -> str:
    """The records the customer must set, and what a DNS check found (issue 5, item 4)."""
    errors = (
        f" (Cloudflare says: {'; '.join(have.verification_errors)})"
        if have.verification_errors
        else ""
    )
    expected = target or "the zone's SaaS target"
    records = f"a CNAME record for {want.hostname} to {expected}"
    if want.ssl_method == "txt":
        if have.txt_name and have.txt_value:
            records += f' and the TXT record {have.txt_name} = "{have.txt_value}"'
        else:
            records += (
                f" and the TXT record _cf-custom-hostname.{want.hostname} shown in the "
                "hostname's ownership verification"
            )
    finding = _dns_finding(want, have, target)
    return records + errors + (f"; DNS check: {finding}" if finding else "")


def _dns_finding(want: DesiredHostname, have: ObservedHostname, target: str | None) -> str:
    """What the observer's DNS lookup found, in words; ``""`` when DNS was not checked."""
    if not have.dns_checked:
        return ""
    host = want.hostname
    expected = target or "the zone's SaaS target"
    if have.dns_cname is None:
        found = [f"{host} has no CNAME (expected a CNAME to {expected})"]
    elif target is None:
        found = [f"{host}'s CNAME points to {have.dns_cname}; it must reach {expected}"]
    elif have.dns_cname != target:
        found = [f"{host}'s CNAME points to {have.dns_cname}, expected {target}"]
    else:
        found = [f"{host}'s CNAME points to {target} as expected"]
    if want.ssl_method == "txt" and have.txt_name and have.txt_value:
        name, value = have.txt_name, have.txt_value
        if value in have.dns_txt:
            found.append(f"TXT {name} holds the expected value")
        elif have.dns_txt:
            held = ", ".join(f'"{v}"' for v in have.dns_txt)
            found.append(f'TXT {name} holds {held}, expected "{value}"')
        else:
            found.append(f'TXT {name} is missing (expected "{value}")')
    return "; ".join(found)


def _owed(invoices: Iterable[Invoice]) -> str:
    """``"1 open invoice (29.00 USD)"``, ``"2 open invoices (29.00 USD, 10.00 EUR)"``."""
    owing = [i for i in invoices if i.status == "open" and i.amount_due > 0]
    if not owing:
        return "no open invoice"
    totals: dict[str, int] = defaultdict(int)
    for item in owing:
        totals[item.currency] += item.amount_due
    amounts = ", ".join(format_amount(amount, cur) for cur, amount in sorted(totals.items()))
    return f"{len(owing)} open invoice{'s' if len(owing) != 1 else ''} ({amounts})"


def _access_reason(decision: AccessDecision, current: str) -> str:
    """Why a tenant's access changes, with the amount owed and what the change does."""
    reason = decision.reason
    invoice = decision.invoice
    if invoice is not None and invoice.id in reason:
        amount = format_amount(invoice.amount_due, invoice.currency)
        reason = reason.replace(invoice.id, f"{invoice.id} ({amount})", 1)
    if decision.source == "policy" and decision.level is Access.ACTIVE:
        reason = "no invoice is open any more (paid or voided)"
    if decision.level is Access.HARD_LOCKED:
        reason += "; publishes stop and the tenant's hostnames serve the suspension origin"
    elif current == Access.HARD_LOCKED.value:
        reason += "; the tenant's hostnames serve its sites again"
    return reason


_BUDGET_UNITS: Mapping[BudgetMetric, tuple[str, str]] = {
    BudgetMetric.JS_KB: ("JS", " KB"),
    BudgetMetric.CSS_KB: ("CSS", " KB"),
    BudgetMetric.THIRD_PARTY_SCRIPTS: ("third-party scripts", ""),
}


def _budget_use(metric: BudgetMetric, actual: int, limit: int) -> str:
    """``"JS 312 KB of 100 KB"``, ``"third-party scripts 3 of 2"``."""
    label, unit = _BUDGET_UNITS[metric]
    return f"{label} {actual}{unit} of {limit}{unit}"


def _budget_figures(build: BuildPreview, site: DesiredSite) -> list[tuple[BudgetMetric, int, int]]:
    budget = site.budget
    return [
        (BudgetMetric.JS_KB, build.js_kb, budget.max_js_kb),
        (BudgetMetric.CSS_KB, build.css_kb, budget.max_css_kb),
        (
            BudgetMetric.THIRD_PARTY_SCRIPTS,
            build.third_party_scripts,
            budget.max_third_party_scripts,
        ),
    ]


def action_identity(kind: ActionKind, target: str, after: Mapping[str, JsonValue]) -> str:
    """Stable id of an action: a short hash of its kind, target and canonical ``after``."""
    text = json.dumps([kind.value, target, after], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_plan(desired: Desired, observed: Observed, settings: PlanSettings | None = None) -> Plan:
    """Plan the actions that move the observed world to the desired one (see module rules)."""
    builder = _Builder(desired, observed, settings or PlanSettings())
    scope = observed.scope
    if desired.scope is not None and (scope is None or not scope <= desired.scope):
        raise ValueError("a scoped derive must cover every site the observation covers")
    # A tenant is planned when one of its sites is in scope: one pass over the scope, not a
    # walk of every site per tenant (the daemon plans one tenant on a 10,000-site fleet).
    owners = (
        None if scope is None else {desired.sites[s].tenant for s in scope if s in desired.sites}
    )
    for name, tenant in desired.tenants.items():
        if owners is not None and name not in owners:
            continue
        builder.plan_tenant(tenant)
    for name, site in desired.sites.items():
        if scope is not None and name not in scope:
            continue
        builder.plan_site(site)
    builder.plan_hostnames()
    return Plan(
        revision=desired.revision,
        observed_digest=observed.digest(),
        planned_at=desired.now,
        actions=builder.ordered(),
        blocked=tuple(
            sorted(builder.blocked, key=lambda b: (b.tenant or "", b.site or "", b.target))
        ),
        notes=tuple(sorted(builder.notes, key=lambda n: (n.category, n.tenant or "", n.target))),
        incomplete={source.value: reason for source, reason in sorted(observed.incomplete.items())},
    )
