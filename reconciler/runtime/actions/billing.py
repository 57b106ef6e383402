"""Billing handlers: runbook 3 (payment failed, dunning), 7 (webhook missed), 8 (WhatsApp).

Called by ``runtime/execute.py`` through :func:`reconciler.runtime.actions.handlers_for` for
``sync_billing``, ``soft_lock``, ``hard_lock``, ``unlock`` and ``send_dunning``. Calls Stripe
(read only, :class:`~reconciler.runtime.actions.world.BillingSource`), the Evolution API client
(``send_text``) and :class:`~reconciler.runtime.records.Records` for ``tenants``,
``billing_accounts``, ``subscriptions``, ``invoices``, ``dunning_step_logs`` and ``events``.

Locks only set the tenant's access (and audit it); pointing a hard-locked tenant's hostnames at
the suspension origin, and back on unlock, is done by the ``update_hostname`` actions the
planner orders after the lock.

Dunning is at most once per (invoice, step). The log row is the guard:

1. Right before the HTTP call the row is ``pending`` with ``attempts + 1`` and no error
   ("dunning.before-send").
2. A send that certainly did not happen (gateway disconnected, connection refused, 429)
   writes the error on the row, which stays ``pending``: safe to send on a later pass.
3. A send whose outcome is unknown (a timeout, a 5xx, the gateway's library failing) is marked
   ``unknown`` with :data:`UNKNOWN_SEND`. A process that died (or lost its lease) between the
   call and the record leaves a ``pending`` row with attempts, no message id and no error; the
   next attempt marks it ``unknown`` with :data:`INTERRUPTED_SEND`. An ``unknown`` row is never
   sent again, and it is not ``failed``: the runbook's manual resend of failed steps must not
   message a tenant twice. The Evolution contract has no idempotency key and no message
   lookup, so "maybe twice" is traded for "maybe never" (docs/actions.md).
4. A ``failed`` row is sent again only when the action says ``resend`` (``core.policy`` rule
   5: an invalid number since corrected, or a manual lever) and the row is one nothing was
   sent for (an invalid number, or ``skipped``): :meth:`Records.dunning_reopen` puts it back
   to ``pending`` first. A ``sent`` row, or one whose outcome is unknown, is never reopened.
"""

from __future__ import annotations

import re

from reconciler.core.observed import billing_digest
from reconciler.core.outcome import Outcome, Status
from reconciler.core.payloads import AccessPayload, DunningPayload, SyncBillingPayload, payload_as
from reconciler.core.plan import Action
from reconciler.core.policy import INVALID_NUMBER_PREFIX
from reconciler.core.provider import Provider
from reconciler.errors import NotFoundError, PermanentError, TransientError
from reconciler.providers.evolution import (
    DISCONNECTED_RETRY_AFTER,
    EvolutionClient,
    GatewayDisconnectedError,
    InvalidNumberError,
    SentMessage,
)
from reconciler.runtime.actions.world import WorldHandler, applied
from reconciler.runtime.handler import ActionContext

__all__ = [
    "INTERRUPTED_SEND",
    "UNKNOWN_SEND",
    "AccessHandler",
    "DunningHandler",
    "SyncBillingHandler",
]

INTERRUPTED_SEND = (
    "outcome of an interrupted send is unknown; not resent so no tenant is messaged twice"
)
UNKNOWN_SEND = "outcome of the send is unknown ({error}); not resent so no tenant is messaged twice"

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SyncBillingHandler(WorldHandler):
    """``sync_billing``: re-read one customer from Stripe and mirror it into D1 in one batch."""

    provider: str = Provider.D1

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Copy Stripe's truth for the payload's customer and store its digest."""
        want = payload_as(action.payload, SyncBillingPayload)
        customer = want.customer
        stripe = self.world.stripe
        if stripe is None:
            return Outcome(action.id, Status.FAILED_PERMANENT, message="Stripe is not configured")
        found = await stripe.customer_billing([customer])
        facts = found.get(customer)
        if facts is None:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message=f"Stripe has no customer {customer} (tenant {want.tenant})",
            )
        still_open = {invoice.id for invoice in facts.open_invoices}
        closed = []
        vanished = []
        for invoice_id in await self.records.mirrored_open_invoices(customer):
            if invoice_id in still_open:
                continue
            try:
                closed.append(await stripe.invoice(invoice_id))
            except NotFoundError:
                vanished.append(invoice_id)
        digest = billing_digest(facts)
        await self.records.sync_billing(
            tenant=want.tenant,
            display_name=want.display_name,
            policy=want.policy,
            phone=want.whatsapp,
            facts=facts,
            closed=closed,
            vanished=vanished,
            digest=digest,
            now=ctx.now(),
        )
        return applied(
            action,
            (
                f"mirrored {len(facts.subscriptions)} subscriptions and "
                f"{len(facts.open_invoices)} open invoices of {customer}"
                + (f"; {len(closed) + len(vanished)} no longer open" if closed or vanished else "")
            ),
            data={"digest": digest},
        )


class AccessHandler(WorldHandler):
    """``soft_lock``, ``hard_lock`` and ``unlock``: the tenant's access in D1, audited."""

    provider: str = Provider.D1

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Set ``tenants.status`` to the payload's access level (its kind's, ``core.payloads``)."""
        want = payload_as(action.payload, AccessPayload)
        tenant, access = want.tenant, want.access
        current = await self.records.tenant_access(tenant)
        if current == access:
            return Outcome(action.id, Status.UNCHANGED, message=f"{tenant} is already {access}")
        await self.records.set_access(
            tenant=tenant,
            access=access,
            previous=current,
            reason=want.reason,
            source=want.source,
            action_id=action.id,
            now=ctx.now(),
        )
        return applied(
            action,
            f"{tenant}: {current or 'active'} -> {access} ({want.source}: {want.reason})",
        )


class DunningHandler(WorldHandler):
    """``send_dunning``: one WhatsApp text per (invoice, step), at most once."""

    provider: str = Provider.WHATSAPP

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Send the due step unless its log row says it must not be sent (module rules)."""
        want = payload_as(action.payload, DunningPayload)
        settled = await self._settled(action, want, ctx)
        if settled is not None:
            return settled
        await self.records.dunning_skipped(
            invoice_id=want.invoice_id,
            tenant=want.tenant,
            steps=list(want.superseded),
            now=ctx.now(),
        )
        if not _E164.match(want.phone):
            reason = (
                f"{INVALID_NUMBER_PREFIX}{want.phone!r} is not an E.164 phone number "
                "(+ and 7-15 digits)"
            )
            return await self._fail(action, want, reason, ctx)
        client = self.world.evolution
        if client is None:
            return Outcome(
                action.id,
                Status.FAILED_PERMANENT,
                message="the WhatsApp gateway (Evolution API) is not configured",
            )
        sent = await self._send(action, want, client, ctx)
        if isinstance(sent, Outcome):
            return sent
        ctx.checkpoint("dunning.after-send")
        await self.records.dunning_sent(
            invoice_id=want.invoice_id,
            step_code=want.step_code,
            message_id=sent.id,
            response=sent.raw,
            now=ctx.now(),
        )
        return applied(
            action,
            f"sent step {want.step_code} of invoice {want.invoice_id} (message {sent.id})",
            data={"provider_message_id": sent.id},
        )

    async def _settled(
        self, action: Action, want: DunningPayload, ctx: ActionContext
    ) -> Outcome | None:
        """What the log row already decides (module rules 3 and 4); None: go on and send."""
        invoice, step = want.invoice_id, want.step_code
        row = await self.records.dunning_row(invoice, step)
        if row is not None and row.status != "pending":
            reopened = want.resend and await self.records.dunning_reopen(
                invoice_id=invoice, step_code=step, now=ctx.now()
            )
            if reopened:
                return None
            return Outcome(
                action.id,
                Status.UNCHANGED,
                message=f"step {step} of invoice {invoice} is already {row.status}; not resent",
            )
        if (
            row is not None
            and row.attempts >= 1
            and row.provider_message_id is None
            and row.error_message is None
        ):
            # nothing answered, and the number is what it was when the send was tried
            return await self._fail(action, want, INTERRUPTED_SEND, ctx, interrupted=True)
        return None

    async def _send(
        self, action: Action, want: DunningPayload, client: EvolutionClient, ctx: ActionContext
    ) -> SentMessage | Outcome:
        """The HTTP call, with the attempt recorded first; a failure is recorded on the row.

        These exceptions are not provider failures to report but what the log row must say
        (sent, not sent, unknown), so they are handled here rather than in the executor.
        """
        await self.records.dunning_attempt(
            invoice_id=want.invoice_id,
            step_code=want.step_code,
            tenant=want.tenant,
            phone=want.phone,
            message=want.message,
            now=ctx.now(),
        )
        ctx.checkpoint("dunning.before-send")
        try:
            return await client.send_text(want.phone, want.message)
        except InvalidNumberError as exc:
            return await self._fail(action, want, f"{INVALID_NUMBER_PREFIX}{exc}", ctx)
        except GatewayDisconnectedError as exc:
            return await self._defer(action, want, exc, ctx, DISCONNECTED_RETRY_AFTER)
        except TransientError as exc:
            if exc.not_applied:
                return await self._defer(action, want, exc, ctx, exc.retry_after)
            reason = UNKNOWN_SEND.format(error=exc)
            return await self._fail(action, want, reason, ctx, status="unknown")
        except PermanentError as exc:
            # refused before sending (auth, unknown instance, malformed): fixable, so it stays
            # pending with the error and a later pass may send it
            await self.records.dunning_deferred(
                invoice_id=want.invoice_id, step_code=want.step_code, error=str(exc), now=ctx.now()
            )
            return Outcome(action.id, Status.FAILED_PERMANENT, message=str(exc))

    async def _fail(
        self,
        action: Action,
        want: DunningPayload,
        reason: str,
        ctx: ActionContext,
        *,
        status: str = "failed",
        interrupted: bool = False,
    ) -> Outcome:
        """Mark the step ``status`` (``unknown`` when interrupted) with ``reason``; permanent."""
        await self.records.dunning_failed(
            invoice_id=want.invoice_id,
            step_code=want.step_code,
            tenant=want.tenant,
            error=reason,
            response=None if interrupted else {"error": reason},
            now=ctx.now(),
            status="unknown" if interrupted else status,
            phone=None if interrupted else want.phone or None,
        )
        return Outcome(action.id, Status.FAILED_PERMANENT, message=reason)

    async def _defer(
        self,
        action: Action,
        want: DunningPayload,
        error: TransientError,
        ctx: ActionContext,
        retry_after: float | None,
    ) -> Outcome:
        await self.records.dunning_deferred(
            invoice_id=want.invoice_id, step_code=want.step_code, error=str(error), now=ctx.now()
        )
        return Outcome(
            action.id,
            Status.FAILED_TRANSIENT,
            message=f"not sent, will retry: {error}",
            retry_after=retry_after,
        )
