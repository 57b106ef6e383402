"""Billing records: the Stripe mirror in ``billing_accounts``, ``subscriptions`` and ``invoices``.

Written by the billing-sync handler (:meth:`BillingRecords.sync_billing`: every row and the
mirror's digest in one batch, so a partial sync is never recorded as done); read back by the
observer as the digest stored per Stripe customer, which the planner compares with the
digest of what Stripe shows now.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reconciler.core.facts import CustomerBilling, Invoice, Subscription
from reconciler.providers.d1 import Database, Statement
from reconciler.runtime.records.sql import UNSETTLED, TableGroup, iso, opt_iso, read_rows

__all__ = ["BillingRecords", "read_mirror"]

# The billing account of a Stripe customer (one parameter: the customer id).
_ACCOUNT = (
    "(SELECT id FROM billing_accounts WHERE provider = 'stripe' AND provider_customer_id = ?)"
)


class BillingRecords(TableGroup):
    """The billing-sync handler's mirror rows."""

    async def mirrored_open_invoices(self, customer: str) -> list[str]:
        """Invoice ids the mirror holds as unsettled (open or uncollectible) for ``customer``."""
        rows = await self.db.query(
            "SELECT invoices.id AS id FROM invoices JOIN billing_accounts "
            "ON invoices.billing_account_id = billing_accounts.id "
            "WHERE billing_accounts.provider = 'stripe' "
            f"AND billing_accounts.provider_customer_id = ? AND invoices.status IN {UNSETTLED}",
            (customer,),
        )
        return [str(row["id"]) for row in rows]

    async def sync_billing(
        self,
        *,
        tenant: str,
        display_name: str | None,
        policy: str | None,
        phone: str | None,
        facts: CustomerBilling,
        closed: Sequence[Invoice],
        digest: str,
        now: float,
        vanished: Sequence[str] = (),
    ) -> None:
        """One batch: the tenant, its billing account, subscriptions, invoices and the digest.

        Args:
            tenant: the Tenant spec name (``tenants.id``).
            display_name: ``tenants.name``; None keeps the recorded one.
            policy: ``tenants.billing_policy``.
            phone: ``tenants.whatsapp_phone`` (E.164).
            facts: Stripe's subscriptions and open invoices of the customer.
            closed: invoices the mirror held as open that Stripe no longer lists as open,
                re-read from Stripe (paid, void, uncollectible).
            vanished: mirrored open invoices Stripe no longer knows: recorded as ``void``.
            digest: ``billing_digest(facts)``, stored as ``billing_accounts.mirror_digest``.
            now: the injected clock.
        """
        customer = facts.customer
        await self.db.batch(
            [
                _tenant(tenant, display_name, policy, phone, now),
                _account(tenant, customer, now),
                *(_subscription(tenant, customer, sub, now) for sub in facts.subscriptions),
                *(
                    _invoice(tenant, customer, invoice, now)
                    for invoice in (*facts.open_invoices, *closed)
                ),
                *(_voided(invoice_id, now) for invoice_id in vanished),
                _digest(tenant, customer, digest, now),
            ]
        )


def _tenant(
    tenant: str, display_name: str | None, policy: str | None, phone: str | None, now: float
) -> Statement:
    """The tenant row with its name, billing policy and phone (kept where None)."""
    return Statement(
        "INSERT INTO tenants (id, name, billing_policy, whatsapp_phone, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "name = excluded.name, billing_policy = COALESCE(excluded.billing_policy, "
        "tenants.billing_policy), whatsapp_phone = COALESCE(excluded.whatsapp_phone, "
        "tenants.whatsapp_phone), updated_at = excluded.updated_at",
        (tenant, display_name or tenant, policy, phone, iso(now), iso(now)),
    )


def _account(tenant: str, customer: str, now: float) -> Statement:
    """The customer's billing account, owned by ``tenant``."""
    return Statement(
        "INSERT INTO billing_accounts (id, tenant_id, provider, provider_customer_id, "
        "created_at, updated_at) VALUES (?, ?, 'stripe', ?, ?, ?) "
        "ON CONFLICT(provider, provider_customer_id) DO UPDATE SET "
        "tenant_id = excluded.tenant_id, updated_at = excluded.updated_at",
        (customer, tenant, customer, iso(now), iso(now)),
    )


def _subscription(tenant: str, customer: str, sub: Subscription, now: float) -> Statement:
    """One subscription as Stripe shows it."""
    return Statement(
        "INSERT INTO subscriptions (id, billing_account_id, tenant_id, "
        "provider_subscription_id, status, latest_invoice_id, current_period_end, "
        f"synced_at, created_at, updated_at) VALUES (?, {_ACCOUNT}, ?, ?, ?, ?, ?, "
        "?, ?, ?) ON CONFLICT(provider_subscription_id) DO UPDATE SET "
        "billing_account_id = excluded.billing_account_id, "
        "tenant_id = excluded.tenant_id, status = excluded.status, "
        "latest_invoice_id = excluded.latest_invoice_id, "
        "current_period_end = excluded.current_period_end, "
        "synced_at = excluded.synced_at, updated_at = excluded.updated_at",
        (sub.id, customer, tenant, sub.id, sub.status, sub.latest_invoice,
         opt_iso(sub.current_period_end), iso(now), iso(now), iso(now)),
    )  # fmt: skip


def _invoice(tenant: str, customer: str, invoice: Invoice, now: float) -> Statement:
    """One invoice as Stripe shows it; ``paid_at`` is set once, when it is first seen paid."""
    paid_at = iso(now) if invoice.status == "paid" else None
    return Statement(
        "INSERT INTO invoices (id, provider_invoice_id, subscription_id, "
        "billing_account_id, tenant_id, status, amount_due, currency, "
        "attempt_count, hosted_invoice_url, finalized_at, due_at, first_failed_at, "
        "paid_at, synced_at, created_at, updated_at) VALUES (?, ?, "
        "(SELECT id FROM subscriptions WHERE provider_subscription_id = ?), "
        f"{_ACCOUNT}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(provider_invoice_id) DO UPDATE SET "
        "subscription_id = COALESCE(excluded.subscription_id, "
        "invoices.subscription_id), billing_account_id = excluded.billing_account_id, "
        "tenant_id = excluded.tenant_id, status = excluded.status, "
        "amount_due = excluded.amount_due, currency = excluded.currency, "
        "attempt_count = excluded.attempt_count, "
        "hosted_invoice_url = excluded.hosted_invoice_url, "
        "finalized_at = excluded.finalized_at, due_at = excluded.due_at, "
        "first_failed_at = excluded.first_failed_at, "
        "paid_at = COALESCE(invoices.paid_at, excluded.paid_at), "
        "synced_at = excluded.synced_at, updated_at = excluded.updated_at",
        (invoice.id, invoice.id, invoice.subscription, customer, tenant, invoice.status,
         invoice.amount_due, invoice.currency or "usd", invoice.attempt_count,
         invoice.hosted_invoice_url, opt_iso(invoice.finalized_at), iso(invoice.due_at),
         iso(invoice.overdue_since), paid_at, iso(now), iso(invoice.created), iso(now)),
    )  # fmt: skip


def _voided(invoice_id: str, now: float) -> Statement:
    """A mirrored open invoice Stripe no longer knows: ``void``."""
    return Statement(
        "UPDATE invoices SET status = 'void', synced_at = ?, updated_at = ? WHERE id = ?",
        (iso(now), iso(now), invoice_id),
    )


def _digest(tenant: str, customer: str, digest: str, now: float) -> Statement:
    """The mirror's digest and sync time, and the account status the rows now imply."""
    return Statement(
        "UPDATE billing_accounts SET mirror_digest = ?, mirror_synced_at = ?, "
        "status = CASE WHEN (SELECT status FROM tenants WHERE id = ?) "
        "IN ('soft_locked', 'hard_locked') THEN (SELECT status FROM tenants WHERE id = ?) "
        "WHEN EXISTS (SELECT 1 FROM invoices WHERE invoices.billing_account_id = "
        f"billing_accounts.id AND invoices.status IN {UNSETTLED}) THEN 'past_due' "
        "WHEN status = 'canceled' THEN 'canceled' ELSE 'active' END, updated_at = ? "
        "WHERE provider = 'stripe' AND provider_customer_id = ?",
        (digest, now, tenant, tenant, iso(now), customer),
    )


async def read_mirror(db: Database, customers: Collection[str] | None) -> dict[str, str]:
    """Stripe customer -> the billing digest stored at its last sync (None: every customer)."""
    rows = await read_rows(
        db,
        "SELECT provider_customer_id, mirror_digest FROM billing_accounts "
        "WHERE provider = 'stripe' AND provider_customer_id IS NOT NULL",
        "provider_customer_id",
        customers,
    )
    return {
        str(row["provider_customer_id"]): str(row["mirror_digest"])
        for row in rows
        if row["mirror_digest"] is not None
    }
