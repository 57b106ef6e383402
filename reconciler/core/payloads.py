"""payloads: one frozen, typed input per action kind, parsed once from an action's ``after``.

Pure. :func:`parse_payload` is called where an :class:`~reconciler.core.plan.Action` is made:
by ``core/plan_builder.py`` for every action a planner adds, and by ``core/plan_json.py`` for
every action of a saved plan. The handlers in ``runtime/actions/`` read the typed attributes
(``action.payload.version``) and never the JSON form.

Rules:

1. ``after`` stays the JSON form: it is what the plan renders, what the action id hashes and
   what the journal stores. The payload is derived from it and never written back, so the
   JSON is unchanged byte for byte.
2. :data:`PAYLOADS` maps every :class:`ActionKind` to exactly one payload class (a closed
   mapping: tests/core/test_payloads.py fails for a kind without one).
3. A field the planner always writes is required; a field it writes only sometimes, or that
   plans written before it existed lack, has the default the handler used to apply. A field
   present with the wrong type, or a value the handler cannot act on (a publish to an unknown
   environment, a lock to another access level than its kind), raises :class:`PayloadError`
   naming the field (``after.version: expected an integer``); ``plan_json`` turns it into
   its refusal, the planner never writes one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from reconciler.core.budget import Budget
from reconciler.core.payload_fields import Fields, PayloadError
from reconciler.core.payloads_platform import (
    CreateNamespacePayload,
    DeployWorkerPayload,
    FallbackOriginPayload,
    HealthCheck,
    WorkerRoutePayload,
    WorkerSplitEntry,
    WorkerVersionPayload,
    WriteRoutesPayload,
)
from reconciler.core.plan import ActionKind, JsonValue

__all__ = [
    "ACCESS_OF",
    "PAYLOADS",
    "AccessPayload",
    "CreateNamespacePayload",
    "DeleteHostnamePayload",
    "DeployWorkerPayload",
    "DunningPayload",
    "FallbackOriginPayload",
    "HealthCheck",
    "HostnamePayload",
    "Payload",
    "PayloadError",
    "PublishPayload",
    "PublishSizes",
    "PurgePayload",
    "RecordHostnamePayload",
    "RecordPublishFailurePayload",
    "RollbackPayload",
    "SyncBillingPayload",
    "WorkerRoutePayload",
    "WorkerSplitEntry",
    "WorkerVersionPayload",
    "WriteRoutesPayload",
    "parse_payload",
    "payload_as",
]

ACCESS_OF: Mapping[ActionKind, str] = {
    ActionKind.SOFT_LOCK: "soft_locked",
    ActionKind.HARD_LOCK: "hard_locked",
    ActionKind.UNLOCK: "active",
}
"""The access level each lock kind sets (``tenants.status``)."""


# --- sites -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishPayload:
    """``publish`` and ``retry_publish``: what to build, where, and the limits to check."""

    site: str
    tenant: str
    project: str
    environment: str
    version: int
    commit: str | None
    attempt: int
    hosts: tuple[str, ...]
    scripts: tuple[str, ...]
    budget: Budget | None  # None: a plan without limits (the publisher reads D1's)
    content_hash: str | None = None
    build_identity: str | None = None
    redeploy_of: str | None = None  # the publish lever: the deployment deployed again
    requested_at: float | None = None

    @classmethod
    def parse(cls, f: Fields) -> PublishPayload:
        site = f.required("site")
        return cls(
            site=site,
            tenant=f.text("tenant", site),
            project=f.text("project", site),
            environment=f.environment(),
            version=f.version(),
            commit=f.optional("commit"),
            attempt=f.integer("attempt", 1),
            hosts=f.texts("hosts"),
            scripts=f.texts("scripts"),
            budget=_budget(f.object("budget")),
            content_hash=f.optional("content_hash"),
            build_identity=f.optional("build_identity"),
            redeploy_of=f.optional("redeploy_of"),
            requested_at=f.number("requested_at"),
        )


def _budget(f: Fields | None) -> Budget | None:
    """The limits of a publish; None when a plan carries none (or only part of the three)."""
    if f is None or not all(
        f.optional_int(key) is not None
        for key in ("max_js_kb", "max_css_kb", "max_third_party_scripts")
    ):
        return None
    return Budget(
        max_js_kb=f.integer("max_js_kb"),
        max_css_kb=f.integer("max_css_kb"),
        max_third_party_scripts=f.integer("max_third_party_scripts"),
        image_kb_limit=f.optional_int("max_image_kb"),
        page_weight_kb_limit=f.optional_int("max_page_weight_kb"),
    )


@dataclass(frozen=True, slots=True)
class RollbackPayload:
    """``rollback``: point production at an existing deployment of the version."""

    site: str
    tenant: str
    project: str
    environment: str
    version: int
    deployment_id: str
    commit: str | None
    hosts: tuple[str, ...]

    @classmethod
    def parse(cls, f: Fields) -> RollbackPayload:
        site = f.required("site")
        return cls(
            site=site,
            tenant=f.text("tenant", site),
            project=f.text("project", site),
            environment=f.environment(("production",)),
            version=f.integer("version"),
            deployment_id=f.required("deployment_id"),
            commit=f.optional("commit"),
            hosts=f.texts("hosts"),
        )


@dataclass(frozen=True, slots=True)
class PublishSizes:
    """The in-memory build's sizes a blocked publish records (``publish_versions``)."""

    js_kb: int
    css_kb: int
    third_party_scripts: int
    image_kb: int
    page_weight_kb: int


@dataclass(frozen=True, slots=True)
class RecordPublishFailurePayload:
    """``record_publish_failure``: one ``failed`` publish row for a publish its build blocks."""

    site: str
    tenant: str
    project: str
    environment: str
    version: int
    commit: str | None
    content_hash: str | None
    error_message: str
    sizes: PublishSizes | None
    build_identity: str | None
    build_inputs: str | None

    @classmethod
    def parse(cls, f: Fields) -> RecordPublishFailurePayload:
        site = f.required("site")
        sizes = f.object("sizes")
        return cls(
            site=site,
            tenant=f.text("tenant", site),
            project=f.text("project", site),
            environment=f.environment(),
            version=f.version(),
            commit=f.optional("commit"),
            content_hash=f.optional("content_hash"),
            error_message=f.required("error_message"),
            sizes=None
            if sizes is None
            else PublishSizes(
                js_kb=sizes.integer("js_kb"),
                css_kb=sizes.integer("css_kb"),
                third_party_scripts=sizes.integer("third_party_scripts"),
                image_kb=sizes.integer("image_kb"),
                page_weight_kb=sizes.integer("page_weight_kb"),
            ),
            build_identity=f.optional("build_identity"),
            build_inputs=f.optional("build_inputs"),
        )


@dataclass(frozen=True, slots=True)
class PurgePayload:
    """``purge_cache``: every host of one site (the ``purge`` lever)."""

    site: str
    tenant: str
    hosts: tuple[str, ...]
    requested_at: float | None

    @classmethod
    def parse(cls, f: Fields) -> PurgePayload:
        hosts = f.texts("hosts")
        if not hosts:
            raise f.fail("hosts", "expected at least one host to purge")
        return cls(
            site=f.text("site"),
            tenant=f.text("tenant"),
            hosts=hosts,
            requested_at=f.number("requested_at"),
        )


# --- hostnames -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostnamePayload:
    """``create_hostname``, ``update_hostname``, ``retry_validation``, ``recreate_hostname``."""

    hostname: str
    site: str
    tenant: str
    project: str | None
    ssl_method: str
    suspended: bool
    deletion_policy: str
    id: str  # the custom hostname in the zone; "" for a create
    recreate_count: int | None  # set when it recreates one (a vanished one, or a stuck one)

    @classmethod
    def parse(cls, f: Fields) -> HostnamePayload:
        return cls(
            hostname=f.required("hostname"),
            site=f.text("site"),
            tenant=f.text("tenant"),
            project=f.optional("project"),
            ssl_method=f.text("ssl_method", "http"),
            suspended=f.flag("suspended"),
            deletion_policy=f.text("deletion_policy", "retain"),
            id=f.text("id"),
            recreate_count=f.optional_int("recreate_count"),
        )


@dataclass(frozen=True, slots=True)
class DeleteHostnamePayload:
    """``delete_hostname``: the custom hostname to delete, and whether it has a route."""

    hostname: str
    id: str
    site: str
    route: bool  # a routing-table entry to remove after the delete

    @classmethod
    def parse(cls, f: Fields) -> DeleteHostnamePayload:
        return cls(
            hostname=f.required("hostname"),
            id=f.text("id"),
            site=f.text("site"),
            route=f.flag("route"),
        )


@dataclass(frozen=True, slots=True)
class RecordHostnamePayload:
    """``record_hostname``: what Cloudflare showed, copied into ``domains`` (or ``deleted``)."""

    hostname: str
    status: str
    site: str
    tenant: str
    id: str
    project: str | None
    origin: str | None
    ssl_method: str
    ssl_status: str | None
    verification_errors: tuple[str, ...]
    verification_token: str | None
    dcv_txt_name: str | None
    dcv_txt_value: str | None

    @classmethod
    def parse(cls, f: Fields) -> RecordHostnamePayload:
        payload = cls(
            hostname=f.required("hostname"),
            status=f.required("status"),
            site=f.text("site"),
            tenant=f.text("tenant"),
            id=f.text("id"),
            project=f.optional("project"),
            origin=f.optional("origin"),
            ssl_method=f.text("ssl_method", "http"),
            ssl_status=f.optional("ssl_status"),
            verification_errors=f.texts("verification_errors"),
            verification_token=f.optional("verification_token"),
            dcv_txt_name=f.optional("dcv_txt_name"),
            dcv_txt_value=f.optional("dcv_txt_value"),
        )
        if payload.status != "deleted" and not (payload.site and payload.tenant and payload.id):
            raise f.fail("status", "a status other than deleted needs site, tenant and id")
        return payload


# --- billing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncBillingPayload:
    """``sync_billing``: the customer to re-read from Stripe and the tenant's names."""

    tenant: str
    customer: str
    digest: str | None
    display_name: str | None
    policy: str | None
    whatsapp: str | None
    requested_at: float | None

    @classmethod
    def parse(cls, f: Fields) -> SyncBillingPayload:
        return cls(
            tenant=f.text("tenant"),
            customer=f.text("customer"),
            digest=f.optional("digest"),
            display_name=f.optional("display_name"),
            policy=f.optional("policy"),
            whatsapp=f.optional("whatsapp"),
            requested_at=f.number("requested_at"),
        )


@dataclass(frozen=True, slots=True)
class AccessPayload:
    """``soft_lock``, ``hard_lock`` and ``unlock``: the tenant's new access, and why."""

    tenant: str
    access: str
    source: str  # policy | override
    reason: str

    @classmethod
    def parse(cls, f: Fields) -> AccessPayload:
        return cls(
            tenant=f.required("tenant"),
            access=f.required("access"),
            source=f.text("source", "policy"),
            reason=f.text("reason"),
        )


@dataclass(frozen=True, slots=True)
class DunningPayload:
    """``send_dunning``: one WhatsApp text for one (invoice, step)."""

    tenant: str
    invoice_id: str
    step_code: str
    phone: str
    message: str
    superseded: tuple[str, ...]  # earlier steps never sent, marked skipped
    resend: bool  # a failed step sent once more (core.policy rule 5)

    @classmethod
    def parse(cls, f: Fields) -> DunningPayload:
        return cls(
            tenant=f.text("tenant"),
            invoice_id=f.required("invoice_id"),
            step_code=f.required("step_code"),
            phone=f.text("phone"),
            message=f.text("message"),
            superseded=f.texts("superseded"),
            resend=f.flag("resend"),
        )


# --- the closed mapping ----------------------------------------------------------------------

Payload: TypeAlias = (
    PublishPayload
    | RollbackPayload
    | RecordPublishFailurePayload
    | PurgePayload
    | HostnamePayload
    | DeleteHostnamePayload
    | RecordHostnamePayload
    | SyncBillingPayload
    | AccessPayload
    | DunningPayload
    | WriteRoutesPayload
    | CreateNamespacePayload
    | DeployWorkerPayload
    | WorkerRoutePayload
    | FallbackOriginPayload
    | WorkerVersionPayload
)

PAYLOADS: Mapping[ActionKind, Callable[[Fields], Payload]] = {
    ActionKind.PUBLISH: PublishPayload.parse,
    ActionKind.RETRY_PUBLISH: PublishPayload.parse,
    ActionKind.ROLLBACK: RollbackPayload.parse,
    ActionKind.RECORD_PUBLISH_FAILURE: RecordPublishFailurePayload.parse,
    ActionKind.PURGE_CACHE: PurgePayload.parse,
    ActionKind.CREATE_HOSTNAME: HostnamePayload.parse,
    ActionKind.UPDATE_HOSTNAME: HostnamePayload.parse,
    ActionKind.RETRY_VALIDATION: HostnamePayload.parse,
    ActionKind.RECREATE_HOSTNAME: HostnamePayload.parse,
    ActionKind.DELETE_HOSTNAME: DeleteHostnamePayload.parse,
    ActionKind.RECORD_HOSTNAME: RecordHostnamePayload.parse,
    ActionKind.SYNC_BILLING: SyncBillingPayload.parse,
    ActionKind.SOFT_LOCK: AccessPayload.parse,
    ActionKind.HARD_LOCK: AccessPayload.parse,
    ActionKind.UNLOCK: AccessPayload.parse,
    ActionKind.SEND_DUNNING: DunningPayload.parse,
    ActionKind.WRITE_ROUTES: WriteRoutesPayload.parse,
    ActionKind.CREATE_ROUTES_NAMESPACE: CreateNamespacePayload.parse,
    ActionKind.DEPLOY_WORKER: DeployWorkerPayload.parse,
    ActionKind.SET_WORKER_ROUTE: WorkerRoutePayload.parse,
    ActionKind.SET_FALLBACK_ORIGIN: FallbackOriginPayload.parse,
    ActionKind.DEPLOY_WORKER_VERSION: WorkerVersionPayload.parse,
    ActionKind.ROLLBACK_WORKER_VERSION: WorkerVersionPayload.parse,
}
"""How each kind's ``after`` is read (rule 2)."""


def parse_payload(
    kind: ActionKind, after: Mapping[str, JsonValue], where: str = "after"
) -> Payload:
    """The typed input of an action of ``kind`` whose JSON form is ``after`` (module rules).

    Raises:
        PayloadError: a field is missing, mistyped or out of range; the message names it,
            starting with ``where``.
    """
    fields = Fields(after, where)
    payload = PAYLOADS[kind](fields)
    if isinstance(payload, AccessPayload) and payload.access != ACCESS_OF[kind]:
        raise fields.fail("access", f"a {kind.value} sets {ACCESS_OF[kind]!r}")
    return payload


_P = TypeVar("_P")


def payload_as(payload: Payload, cls: type[_P]) -> _P:
    """``payload`` as the class its handler expects (a mismatch is a wiring bug: TypeError)."""
    if not isinstance(payload, cls):
        raise TypeError(f"expected a {cls.__name__}, got a {type(payload).__name__}")
    return payload
