"""Tenant records: ``tenants.status`` (the access a lock sets) and its audit event.

Written by the lock handler (:meth:`TenantRecords.set_access`, with the billing accounts'
status and an ``events`` row in one batch); read back by the observer as one
:class:`~reconciler.core.observed.TenantRecord` per tenant.
"""

from __future__ import annotations

from collections.abc import Collection

from reconciler.core.observed import TenantRecord
from reconciler.providers.d1 import Database, SqlValue, Statement
from reconciler.runtime.records.sql import (
    UNSETTLED,
    TableGroup,
    ensure_tenant,
    epoch,
    iso,
    read_rows,
    to_json,
    to_str,
)

__all__ = ["TenantRecords", "read_tenants"]


class TenantRecords(TableGroup):
    """The lock handler's ``tenants`` rows."""

    async def tenant_access(self, tenant: str) -> str | None:
        """``tenants.status`` of ``tenant``, or None when there is no row."""
        rows = await self.db.query("SELECT status FROM tenants WHERE id = ?", (tenant,))
        return to_str(rows[0]["status"]) if rows else None

    async def set_access(
        self,
        *,
        tenant: str,
        access: str,
        previous: str | None,
        reason: str,
        source: str,
        action_id: str,
        now: float,
    ) -> None:
        """One batch: ``tenants.status`` and its reason, the billing accounts, an audit event."""
        account_status = (
            "CASE WHEN EXISTS (SELECT 1 FROM invoices WHERE invoices.billing_account_id = "
            f"billing_accounts.id AND invoices.status IN {UNSETTLED}) THEN 'past_due' "
            "ELSE 'active' END"
            if access == "active"
            else "?"
        )
        account_params: tuple[SqlValue, ...] = (
            (iso(now), tenant) if access == "active" else (access, iso(now), tenant)
        )
        statements = [
            ensure_tenant(tenant, now),
            Statement(
                "UPDATE tenants SET status = ?, status_reason = ?, status_changed_at = ?, "
                "updated_at = ? WHERE id = ?",
                (access, f"{source}: {reason}", iso(now), iso(now), tenant),
            ),
            Statement(
                f"UPDATE billing_accounts SET status = {account_status}, updated_at = ? "
                "WHERE tenant_id = ? AND status != 'canceled'",
                account_params,
            ),
            Statement(
                "INSERT INTO events (at, kind, resource, action_id, message, data) "
                "VALUES (?, 'tenant.access', ?, ?, ?, ?)",
                (
                    now,
                    f"Tenant/{tenant}",
                    action_id,
                    f"access {previous or 'active'} -> {access} ({source}): {reason}",
                    to_json({"from": previous, "to": access, "source": source, "reason": reason}),
                ),
            ),
        ]
        await self.db.batch(statements)


async def read_tenants(db: Database, tenants: Collection[str] | None) -> dict[str, TenantRecord]:
    """The access of ``tenants`` (None: every tenant)."""
    rows = await read_rows(db, "SELECT id, status, status_changed_at FROM tenants", "id", tenants)
    return {
        str(row["id"]): TenantRecord(
            name=str(row["id"]),
            access=str(row["status"]),
            changed_at=epoch(row["status_changed_at"]),
        )
        for row in rows
    }
