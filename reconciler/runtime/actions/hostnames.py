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

from reconciler.core.observed import domain_status
from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import (
    DeleteHostnamePayload,
    HostnamePayload,
    RecordHostnamePayload,
    payload_as,
)
from reconciler.core.plan import Action, ActionKind
from reconciler.core.provider import Provider
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare_models import CustomHostname, ownership_metadata
from reconciler.runtime.actions.by_name import copy_fields
from reconciler.runtime.actions.routes import RoutingTable
from reconciler.runtime.actions.world import World, WorldHandler, applied
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.records import HostnameFacts, Records

__all__ = [
    "DELETION_POLICY_KEY",
    "HostnameHandler",
    "RecordHostnameHandler",
    "hostname_metadata",
]

DELETION_POLICY_KEY = "deletion-policy"
"""``custom_metadata`` key holding the site's ``deletion_policy`` at creation time."""


def hostname_metadata(want: HostnamePayload) -> dict[str, str]:
    """The ``custom_metadata`` of a managed hostname: our marker and the deletion policy."""
    return ownership_metadata(
        site=want.site, tenant=want.tenant, extra={DELETION_POLICY_KEY: want.deletion_policy}
    )


def _facts(hostname: CustomHostname, *, suspended: bool) -> HostnameFacts:
    """What Cloudflare answered, in the ``domains`` vocabulary (core ``domain_status``).

    A hard-locked tenant's hostname (``suspended``) that has not failed reads ``suspended``.
    """
    return HostnameFacts(
        id=hostname.id,
        status=domain_status(hostname.status, hostname.ssl_status or None, suspended=suspended),
        ssl_status=hostname.ssl_status or None,
        ssl_method=hostname.ssl_method,
        origin=hostname.custom_origin_server,
        verification_token=hostname.ownership_txt_value,
        verification_errors=hostname.verification_errors + hostname.ssl_validation_errors,
        dcv_txt_name=hostname.dcv_txt.txt_name if hostname.dcv_txt is not None else None,
        dcv_txt_value=hostname.dcv_txt.txt_value if hostname.dcv_txt is not None else None,
    )


def _gone(action: Action, hostname: str) -> Outcome:
    return Outcome(
        action.id,
        Status.FAILED_PERMANENT,
        message=f"{hostname} is no longer in the zone; the next plan will create it",
    )


class HostnameHandler:
    """One handler for the five hostname kinds; ``kind`` picks the steps."""

    provider: str = Provider.CLOUDFLARE

    def __init__(self, world: World, kind: ActionKind, table: RoutingTable | None = None) -> None:
        """Act through ``world`` (and ``table`` for routing entries) for actions of ``kind``."""
        self.world = world
        self.kind = kind
        self.records = Records(world.db)
        self.table = table if table is not None else RoutingTable(world)

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Perform the hostname action (see the module docstring for each kind)."""
        if self.kind is ActionKind.DELETE_HOSTNAME:
            return await self._delete(
                action, payload_as(action.payload, DeleteHostnamePayload), ctx
            )
        want = payload_as(action.payload, HostnamePayload)
        steps = {
            ActionKind.CREATE_HOSTNAME: self._create,
            ActionKind.UPDATE_HOSTNAME: self._update,
            ActionKind.RETRY_VALIDATION: self._retry_validation,
            ActionKind.RECREATE_HOSTNAME: self._recreate,
        }
        return await steps[self.kind](action, want, ctx)

    async def _record(
        self,
        want: HostnamePayload,
        found: CustomHostname,
        ctx: ActionContext,
        *,
        restart_clock: bool,
        retried: bool = False,
    ) -> None:
        await self.records.record_hostname(
            hostname=want.hostname,
            site=want.site,
            tenant=want.tenant,
            project=want.project,
            facts=_facts(found, suspended=want.suspended),
            now=ctx.now(),
            restart_clock=restart_clock,
            recreate_count=want.recreate_count,
            retried=retried,
        )

    def _metadata(self, want: HostnamePayload) -> dict[str, str] | None:
        """Our marker on entitled accounts only; None (nothing sent) otherwise."""
        return hostname_metadata(want) if self.world.routing.custom_metadata else None

    async def _create_hostname(self, want: HostnamePayload, ctx: ActionContext) -> CustomHostname:
        """Create (or adopt our own existing) hostname, no origin, metadata only if entitled;
        then record it in ``domains`` (a recreation counted)."""
        metadata = self._metadata(want)
        cf = self.world.cloudflare

        def ours(found: CustomHostname) -> bool:
            # the plan saw it absent; an earlier run of this very action may have made it
            return ctx.resumed or found.owner is not None

        ctx.progress(f"creating custom hostname {want.hostname}")
        made = await cf.create_custom_hostname(
            want.hostname, ssl_method=want.ssl_method, custom_metadata=metadata, adopt=ours
        )
        if metadata is not None and dict(made.custom_metadata) != metadata:
            # adopted after a lost answer or a crash: state the final values
            made = await cf.edit_custom_hostname(made.id, custom_metadata=metadata)
        ctx.checkpoint("hostname.after-create")
        await self._record(want, made, ctx, restart_clock=True)
        return made

    async def _create(self, action: Action, want: HostnamePayload, ctx: ActionContext) -> Outcome:
        made = await self._create_hostname(want, ctx)
        return applied(
            action,
            f"created {made.hostname} ({made.status}); the dispatch Worker routes it",
            data={"id": made.id, "status": made.status},
        )

    async def _edit(
        self, want: HostnamePayload, ssl_method: str | None, metadata: dict[str, str] | None
    ) -> CustomHostname | None:
        """PATCH the hostname with final values; None when it is no longer in the zone."""
        try:
            return await self.world.cloudflare.edit_custom_hostname(
                want.id, ssl_method=ssl_method, custom_metadata=metadata
            )
        except NotFoundError:
            return None

    async def _update(self, action: Action, want: HostnamePayload, ctx: ActionContext) -> Outcome:
        before_method = action.before.get("ssl_method")
        metadata = self._metadata(want)
        changes = before_method != want.ssl_method
        if not changes and metadata is None:
            return Outcome(
                action.id, Status.UNCHANGED, message=f"{want.hostname}: nothing to change"
            )
        edited = await self._edit(want, want.ssl_method if changes else None, metadata)
        if edited is None:
            return _gone(action, want.hostname)
        ctx.checkpoint("hostname.after-update")
        await self._record(want, edited, ctx, restart_clock=changes)
        return applied(
            action,
            f"{want.hostname} updated (ssl method {edited.ssl_method})",
            data={"id": edited.id},
        )

    async def _retry_validation(
        self, action: Action, want: HostnamePayload, ctx: ActionContext
    ) -> Outcome:
        edited = await self._edit(want, want.ssl_method, None)
        if edited is None:
            return _gone(action, want.hostname)
        await self._record(want, edited, ctx, restart_clock=True, retried=True)
        return applied(
            action,
            (f"validation of {want.hostname} re-triggered ({edited.status}/{edited.ssl_status})"),
            data={"id": edited.id},
        )

    async def _recreate(self, action: Action, want: HostnamePayload, ctx: ActionContext) -> Outcome:
        old = want.id
        if old:
            ctx.progress(f"deleting custom hostname {want.hostname} ({old})")
            await self.world.cloudflare.delete_custom_hostname(old)
        ctx.checkpoint("hostname.after-delete")
        made = await self._create_hostname(want, ctx)
        return applied(
            action,
            f"recreated {made.hostname} as {made.id} (recreation {want.recreate_count})",
            data={"id": made.id, "replaced": old},
        )

    async def _delete(
        self, action: Action, want: DeleteHostnamePayload, ctx: ActionContext
    ) -> Outcome:
        await self.world.cloudflare.delete_custom_hostname(want.id)
        ctx.checkpoint("hostname.after-delete")
        if want.route:
            await self.table.remove([want.hostname])
        await self.records.hostname_deleted(want.hostname, now=ctx.now())
        removed = "; its routing entry removed (not found at the edge within about 60 s)"
        return applied(
            action,
            f"deleted {want.hostname}" + (removed if want.route else ""),
        )


class RecordHostnameHandler(WorldHandler):
    """``record_hostname``: copy the observed hostname into ``domains`` (no Cloudflare call)."""

    provider: str = Provider.D1

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Upsert the ``domains`` row from the payload, or mark it deleted (status ``deleted``)."""
        want = payload_as(action.payload, RecordHostnamePayload)
        if want.status == "deleted":
            if not await self.records.hostname_deleted(want.hostname, now=ctx.now()):
                return Outcome(
                    action.id,
                    Status.UNCHANGED,
                    message=f"{want.hostname} has no domains row left to mark deleted",
                )
            return applied(action, f"recorded {want.hostname} as deleted")
        await self.records.mirror_hostname(
            hostname=want.hostname,
            site=want.site,
            tenant=want.tenant,
            project=want.project,
            facts=copy_fields(HostnameFacts, want),
            now=ctx.now(),
        )
        return applied(
            action,
            f"recorded {want.hostname} as {want.status} (certificate "
            f"{want.ssl_status or 'none'}, id {want.id})",
        )
