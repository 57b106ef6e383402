"""Custom hostname handlers: runbook 2 (domain stuck in pending), creates, recreates, deletes.

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``create_hostname``, ``update_hostname``, ``retry_validation``, ``recreate_hostname`` and
``delete_hostname``, and ``record_hostname`` (D1 only: what Cloudflare showed when the plan was
made, copied into ``domains``, creating a missing row, or marking ``deleted`` the row of a
hostname gone from the zone). Calls the Cloudflare adapter (custom hostnames), the routing
table (``runtime/actions/routes.py``, on delete) and :class:`~reconciler.runtime.records.Records`
for the ``domains`` row.

Hostnames carry no ``custom_origin_server``: the dispatch Worker routes them by the routing
table (docs/routing.md), whose entry ``write_routes`` wrote before the create. Ownership is what
our records say: the ``domains`` row records the id at create. Only on an account entitled to
custom metadata (``RoutingConfig.custom_metadata``) does a hostname also carry the ownership
marker (:func:`~reconciler.providers.cloudflare_models.ownership_metadata`) plus the site's
deletion policy under :data:`DELETION_POLICY_KEY`; otherwise no request carries
``custom_metadata``.

Crash safety, per action:

- create: the adapter's create is look-before-resend, and a duplicate (1406) is adopted only
  when this action was left pending by an earlier run (``ctx.resumed``) or carries our marker,
  so a rerun after "hostname.after-create" returns the same hostname. A kill before the
  ``domains`` write leaves the journal's pending intent, which the next observation takes as
  ours (``runtime/records/``), so its ``record_hostname`` repairs the row.
- recreate: delete the recorded id ("hostname.after-delete"; already gone is success), then
  create. A rerun after the create deletes nothing (the old id is gone) and adopts the new one.
- update and retry_validation are PATCHes stating final values: repeating one is harmless.
- delete: already gone is success; then its routing entry is removed ("hostname.after-delete"
  sits between: a kill there leaves an entry for a hostname no longer in the zone, which no
  visitor reaches and the next plan removes); a kill before the row is marked ``deleted`` is
  repaired by the next plan's ``record_hostname`` (status ``deleted``).
- record_hostname: an upsert (or the ``deleted`` mark) stating final values; repeating it
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.observed import domain_status as core_domain_status
from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, ActionKind, JsonValue
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare_models import CustomHostname, ownership_metadata
from reconciler.runtime.actions.routes import RoutingTable
from reconciler.runtime.actions.world import World, guarded, text_of
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import HostnameFacts, Records

__all__ = [
    "DELETION_POLICY_KEY",
    "HostnameHandler",
    "RecordHostnameHandler",
    "domain_status",
    "hostname_metadata",
]

DELETION_POLICY_KEY = "deletion-policy"
"""``custom_metadata`` key holding the site's ``deletion_policy`` at creation time."""


def domain_status(hostname: CustomHostname, *, suspended: bool = False) -> str:
    """Cloudflare's status in the ``domains.status`` vocabulary of the runbooks.

    ``active`` (both statuses active), ``failed`` (a failed or timed-out status), ``suspended``
    (a hard-locked tenant's hostname that is otherwise fine), ``pending_ssl`` (validated,
    certificate pending) or ``pending_validation`` (see
    :func:`reconciler.core.observed.domain_status`, which the planner compares with).
    """
    return core_domain_status(hostname.status, hostname.ssl_status or None, suspended=suspended)


def hostname_metadata(after: Mapping[str, JsonValue]) -> dict[str, str]:
    """The ``custom_metadata`` of a managed hostname: our marker and the deletion policy."""
    return ownership_metadata(
        site=text_of(after.get("site")),
        tenant=text_of(after.get("tenant")),
        extra={DELETION_POLICY_KEY: text_of(after.get("deletion_policy"), "retain")},
    )


def _facts(hostname: CustomHostname) -> HostnameFacts:
    return HostnameFacts(
        id=hostname.id,
        status=domain_status(hostname),
        ssl_status=hostname.ssl_status or None,
        ssl_method=hostname.ssl_method,
        origin=hostname.custom_origin_server,
        verification_token=hostname.ownership_txt_value,
        verification_errors=hostname.verification_errors + hostname.ssl_validation_errors,
        dcv_txt_name=hostname.dcv_txt.txt_name if hostname.dcv_txt is not None else None,
        dcv_txt_value=hostname.dcv_txt.txt_value if hostname.dcv_txt is not None else None,
    )


class HostnameHandler:
    """One handler for the five hostname kinds; ``kind`` picks the steps."""

    provider: str = "cloudflare"

    def __init__(self, world: World, kind: ActionKind, table: RoutingTable | None = None) -> None:
        """Act through ``world`` (and ``table`` for routing entries) for actions of ``kind``."""
        self.world = world
        self.kind = kind
        self.records = Records(world.db)
        self.table = table if table is not None else RoutingTable(world)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Perform the hostname action (see the module docstring for each kind)."""
        steps = {
            ActionKind.CREATE_HOSTNAME: self._create,
            ActionKind.UPDATE_HOSTNAME: self._update,
            ActionKind.RETRY_VALIDATION: self._retry_validation,
            ActionKind.RECREATE_HOSTNAME: self._recreate,
            ActionKind.DELETE_HOSTNAME: self._delete,
        }
        if action.kind is not self.kind or not text_of(action.after.get("hostname")):
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"{self.kind} handler cannot perform {action.kind} {action.target}",
            )
        return await guarded(action, steps[self.kind](action, ctx))

    async def _record(
        self,
        action: Action,
        found: CustomHostname,
        ctx: ActionContext,
        *,
        restart_clock: bool,
        recreate_count: int | None = None,
        retried: bool = False,
    ) -> None:
        after = action.after
        facts = _facts(found)
        if facts.status != "failed" and after.get("suspended") is True:
            facts = HostnameFacts(
                id=facts.id,
                status="suspended",
                ssl_status=facts.ssl_status,
                ssl_method=facts.ssl_method,
                origin=facts.origin,
                verification_token=facts.verification_token,
                verification_errors=facts.verification_errors,
                dcv_txt_name=facts.dcv_txt_name,
                dcv_txt_value=facts.dcv_txt_value,
            )
        await self.records.record_hostname(
            hostname=text_of(after.get("hostname")),
            site=text_of(after.get("site")),
            tenant=text_of(after.get("tenant")),
            project=text_of(after.get("project")) or None,
            facts=facts,
            now=ctx.now(),
            restart_clock=restart_clock,
            recreate_count=recreate_count,
            retried=retried,
        )

    def _metadata(self, after: Mapping[str, JsonValue]) -> dict[str, str] | None:
        """Our marker on entitled accounts only; None (nothing sent) otherwise."""
        return hostname_metadata(after) if self.world.routing.custom_metadata else None

    async def _create_hostname(self, action: Action, ctx: ActionContext) -> CustomHostname:
        """Create (or adopt our own existing) hostname; no origin, metadata only if entitled."""
        after = action.after
        hostname = text_of(after.get("hostname"))
        metadata = self._metadata(after)
        cf = self.world.cloudflare

        def ours(found: CustomHostname) -> bool:
            # the plan saw it absent; an earlier run of this very action may have made it
            return ctx.resumed or found.owner is not None

        ctx.progress(f"creating custom hostname {hostname}")
        made = await cf.create_custom_hostname(
            hostname,
            ssl_method=text_of(after.get("ssl_method"), "http"),
            custom_metadata=metadata,
            adopt=ours,
        )
        if metadata is not None and dict(made.custom_metadata) != metadata:
            # adopted after a lost answer or a crash: state the final values
            made = await cf.edit_custom_hostname(made.id, custom_metadata=metadata)
        ctx.checkpoint("hostname.after-create")
        return made

    async def _create(self, action: Action, ctx: ActionContext) -> Outcome:
        made = await self._create_hostname(action, ctx)
        count = action.after.get("recreate_count")  # set when it recreates a vanished one
        await self._record(
            action,
            made,
            ctx,
            restart_clock=True,
            recreate_count=count if isinstance(count, int) else None,
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"created {made.hostname} ({made.status}); the dispatch Worker routes it",
            data={"id": made.id, "status": made.status},
        )

    async def _update(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        hostname = text_of(after.get("hostname"))
        ssl_method = text_of(after.get("ssl_method"), "http")
        before_method = action.before.get("ssl_method")
        metadata = self._metadata(after)
        if before_method == ssl_method and metadata is None:
            return Outcome(action.id, Status.UNCHANGED, message=f"{hostname}: nothing to change")
        try:
            edited = await self.world.cloudflare.edit_custom_hostname(
                text_of(after.get("id")),
                ssl_method=ssl_method if before_method != ssl_method else None,
                custom_metadata=metadata,
            )
        except NotFoundError:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"{hostname} is no longer in the zone; the next plan will create it",
            )
        ctx.checkpoint("hostname.after-update")
        await self._record(action, edited, ctx, restart_clock=before_method != ssl_method)
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"{hostname} updated (ssl method {edited.ssl_method})",
            data={"id": edited.id},
        )

    async def _retry_validation(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        hostname = text_of(after.get("hostname"))
        try:
            edited = await self.world.cloudflare.edit_custom_hostname(
                text_of(after.get("id")), ssl_method=text_of(after.get("ssl_method"), "http")
            )
        except NotFoundError:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"{hostname} is no longer in the zone; the next plan will create it",
            )
        await self._record(action, edited, ctx, restart_clock=True, retried=True)
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"validation of {hostname} re-triggered ({edited.status}/{edited.ssl_status})",
            data={"id": edited.id},
        )

    async def _recreate(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        old = text_of(after.get("id"))
        count = after.get("recreate_count")
        if old:
            ctx.progress(f"deleting custom hostname {after.get('hostname')} ({old})")
            await self.world.cloudflare.delete_custom_hostname(old)
        ctx.checkpoint("hostname.after-delete")
        made = await self._create_hostname(action, ctx)
        await self._record(
            action,
            made,
            ctx,
            restart_clock=True,
            recreate_count=count if isinstance(count, int) else None,
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"recreated {made.hostname} as {made.id} (recreation {count})",
            data={"id": made.id, "replaced": old},
        )

    async def _delete(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        hostname = text_of(after.get("hostname"))
        await self.world.cloudflare.delete_custom_hostname(text_of(after.get("id")))
        ctx.checkpoint("hostname.after-delete")
        routed = after.get("route") is True
        if routed:
            await self.table.remove([hostname])
        await self.records.hostname_deleted(hostname, now=ctx.now())
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"deleted {hostname}"
            + (
                "; its routing entry removed (not found at the edge within about 60 s)"
                if routed
                else ""
            ),
        )


class RecordHostnameHandler:
    """``record_hostname``: copy the observed hostname into ``domains`` (no Cloudflare call)."""

    provider: str = "d1"

    def __init__(self, world: World) -> None:
        """Write through ``world.db``."""
        self.records = Records(world.db)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Upsert the ``domains`` row from ``after``, or mark it deleted (status ``deleted``)."""
        return await guarded(action, self._record(action, ctx))

    async def _record(self, action: Action, ctx: ActionContext) -> Outcome:
        after = action.after
        hostname = text_of(after.get("hostname"))
        status = text_of(after.get("status"))
        site = text_of(after.get("site"))
        tenant = text_of(after.get("tenant"))
        hostname_id = text_of(after.get("id"))
        if (
            action.kind is not ActionKind.RECORD_HOSTNAME
            or not hostname
            or not status
            or (status != "deleted" and not (site and tenant and hostname_id))
        ):
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"record_hostname handler cannot perform {action.kind} {action.target}",
            )
        if status == "deleted":
            if not await self.records.hostname_deleted(hostname, now=ctx.now()):
                return Outcome(
                    action.id,
                    Status.UNCHANGED,
                    message=f"{hostname} has no domains row left to mark deleted",
                )
            return Outcome(action.id, Status.APPLIED, message=f"recorded {hostname} as deleted")
        errors = after.get("verification_errors")
        ssl_status = text_of(after.get("ssl_status")) or None
        await self.records.mirror_hostname(
            hostname=hostname,
            site=site,
            tenant=tenant,
            project=text_of(after.get("project")) or None,
            facts=HostnameFacts(
                id=hostname_id,
                status=status,
                ssl_status=ssl_status,
                ssl_method=text_of(after.get("ssl_method"), "http"),
                origin=text_of(after.get("origin")) or None,
                verification_token=text_of(after.get("verification_token")) or None,
                dcv_txt_name=text_of(after.get("dcv_txt_name")) or None,
                dcv_txt_value=text_of(after.get("dcv_txt_value")) or None,
                verification_errors=tuple(e for e in errors if isinstance(e, str))
                if isinstance(errors, list)
                else (),
            ),
            now=ctx.now(),
        )
        return Outcome(
            action.id,
            Status.APPLIED,
            message=f"recorded {hostname} as {status} (certificate {ssl_status or 'none'}, "
            f"id {hostname_id})",
        )
