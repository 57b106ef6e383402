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
from dataclasses import dataclass, field
from functools import partial
from typing import TypeAlias, TypeVar

from reconciler.core.budget import Budget
from reconciler.core.payload_fields import (
    OR_SITE,
    REQUIRED,
    VERSION,
    Fields,
    PayloadError,
    environment_in,
    read_fields,
    reads,
    text_or,
)
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
    "AccessBefore",
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
    "RecordHostnameBefore",
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
    "read_before",
]

ACCESS_OF: Mapping[ActionKind, str] = {
    ActionKind.SOFT_LOCK: "soft_locked",
    ActionKind.HARD_LOCK: "hard_locked",
    ActionKind.UNLOCK: "active",
}
"""The access level each lock kind sets (``tenants.status``)."""


# --- sites -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _VersionOfSite:
    """The fields a publish and a failed publish share: which version of which site, where."""

    site: str = field(metadata=REQUIRED)
    tenant: str = field(metadata=OR_SITE)
    project: str = field(metadata=OR_SITE)
    environment: str = field(metadata=environment_in())
    version: int = field(metadata=VERSION)
    commit: str | None


@dataclass(frozen=True, slots=True)
class PublishPayload(_VersionOfSite):
    """``publish`` and ``retry_publish``: what to build, where, and the limits to check."""

    attempt: int = field(metadata=reads(lambda f, key: f.integer(key, 1)))
    hosts: tuple[str, ...]
    scripts: tuple[str, ...]
    # None: a plan without limits (the publisher reads D1's)
    budget: Budget | None = field(metadata=reads(lambda f, key: _budget(f.object(key))))
    content_hash: str | None
    build_identity: str | None
    redeploy_of: str | None  # the publish lever: the deployment deployed again
    requested_at: float | None


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

    site: str = field(metadata=REQUIRED)
    tenant: str = field(metadata=OR_SITE)
    project: str = field(metadata=OR_SITE)
    environment: str = field(metadata=environment_in(("production",)))
    version: int
    deployment_id: str = field(metadata=REQUIRED)
    commit: str | None
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishSizes:
    """The in-memory build's sizes a blocked publish records (``publish_versions``)."""

    js_kb: int
    css_kb: int
    third_party_scripts: int
    image_kb: int
    page_weight_kb: int


def _sizes(f: Fields, key: str) -> PublishSizes | None:
    sizes = f.object(key)
    return None if sizes is None else read_fields(PublishSizes, sizes)


@dataclass(frozen=True, slots=True)
class RecordPublishFailurePayload(_VersionOfSite):
    """``record_publish_failure``: one ``failed`` publish row for a publish its build blocks."""

    content_hash: str | None
    error_message: str = field(metadata=REQUIRED)
    sizes: PublishSizes | None = field(metadata=reads(_sizes))
    build_identity: str | None
    build_inputs: str | None


@dataclass(frozen=True, slots=True)
class PurgePayload:
    """``purge_cache``: every host of one site (the ``purge`` lever)."""

    site: str
    tenant: str
    hosts: tuple[str, ...]
    requested_at: float | None

    @classmethod
    def parse(cls, f: Fields) -> PurgePayload:
        if not f.texts("hosts"):
            raise f.fail("hosts", "expected at least one host to purge")
        return read_fields(cls, f)


# --- hostnames -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostnamePayload:
    """``create_hostname``, ``update_hostname``, ``retry_validation``, ``recreate_hostname``."""

    hostname: str = field(metadata=REQUIRED)
    site: str
    tenant: str
    project: str | None
    ssl_method: str = field(metadata=text_or("http"))
    suspended: bool
    deletion_policy: str = field(metadata=text_or("retain"))
    id: str  # the custom hostname in the zone; "" for a create
    recreate_count: int | None  # set when it recreates one (a vanished one, or a stuck one)


@dataclass(frozen=True, slots=True)
class DeleteHostnamePayload:
    """``delete_hostname``: the custom hostname to delete, and whether it has a route."""

    hostname: str = field(metadata=REQUIRED)
    id: str
    site: str
    route: bool  # a routing-table entry to remove after the delete


@dataclass(frozen=True, slots=True)
class RecordHostnamePayload:
    """``record_hostname``: what Cloudflare showed, copied into ``domains`` (or ``deleted``)."""

    hostname: str = field(metadata=REQUIRED)
    status: str = field(metadata=REQUIRED)
    site: str
    tenant: str
    id: str
    project: str | None
    origin: str | None
    ssl_method: str = field(metadata=text_or("http"))
    ssl_status: str | None
    verification_errors: tuple[str, ...]
    verification_token: str | None
    dcv_txt_name: str | None
    dcv_txt_value: str | None

    @classmethod
    def parse(cls, f: Fields) -> RecordHostnamePayload:
        payload = read_fields(cls, f)
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


@dataclass(frozen=True, slots=True)
class AccessPayload:
    """``soft_lock``, ``hard_lock`` and ``unlock``: the tenant's new access, and why."""

    tenant: str = field(metadata=REQUIRED)
    access: str = field(metadata=REQUIRED)
    source: str = field(metadata=text_or("policy"))  # policy | override
    reason: str


@dataclass(frozen=True, slots=True)
class DunningPayload:
    """``send_dunning``: one WhatsApp text for one (invoice, step)."""

    tenant: str
    invoice_id: str = field(metadata=REQUIRED)
    step_code: str = field(metadata=REQUIRED)
    phone: str
    message: str
    superseded: tuple[str, ...]  # earlier steps never sent, marked skipped
    resend: bool  # a failed step sent once more (core.policy rule 5)


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
    ActionKind.PUBLISH: partial(read_fields, PublishPayload),
    ActionKind.RETRY_PUBLISH: partial(read_fields, PublishPayload),
    ActionKind.ROLLBACK: partial(read_fields, RollbackPayload),
    ActionKind.RECORD_PUBLISH_FAILURE: partial(read_fields, RecordPublishFailurePayload),
    ActionKind.PURGE_CACHE: PurgePayload.parse,
    ActionKind.CREATE_HOSTNAME: partial(read_fields, HostnamePayload),
    ActionKind.UPDATE_HOSTNAME: partial(read_fields, HostnamePayload),
    ActionKind.RETRY_VALIDATION: partial(read_fields, HostnamePayload),
    ActionKind.RECREATE_HOSTNAME: partial(read_fields, HostnamePayload),
    ActionKind.DELETE_HOSTNAME: partial(read_fields, DeleteHostnamePayload),
    ActionKind.RECORD_HOSTNAME: RecordHostnamePayload.parse,
    ActionKind.SYNC_BILLING: partial(read_fields, SyncBillingPayload),
    ActionKind.SOFT_LOCK: partial(read_fields, AccessPayload),
    ActionKind.HARD_LOCK: partial(read_fields, AccessPayload),
    ActionKind.UNLOCK: partial(read_fields, AccessPayload),
    ActionKind.SEND_DUNNING: partial(read_fields, DunningPayload),
    ActionKind.WRITE_ROUTES: WriteRoutesPayload.parse,
    ActionKind.CREATE_ROUTES_NAMESPACE: partial(read_fields, CreateNamespacePayload),
    ActionKind.DEPLOY_WORKER: partial(read_fields, DeployWorkerPayload),
    ActionKind.SET_WORKER_ROUTE: partial(read_fields, WorkerRoutePayload),
    ActionKind.SET_FALLBACK_ORIGIN: partial(read_fields, FallbackOriginPayload),
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


# --- before: what an action replaces ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessBefore:
    """The ``before`` of ``soft_lock``, ``hard_lock`` and ``unlock``: the access they replace."""

    access: str | None


@dataclass(frozen=True, slots=True)
class RecordHostnameBefore:
    """The ``before`` of ``record_hostname``: the status its ``domains`` row had (None: none)."""

    status: str | None


def read_before(cls: Callable[..., _P], before: Mapping[str, JsonValue]) -> _P:
    """An action's ``before`` read as ``cls`` (a mistyped field raises :class:`PayloadError`)."""
    return read_fields(cls, Fields(before, "before"))
