"""Dunning records: ``dunning_step_logs``, one row per (invoice, step) the dunning handler sends.

A row goes ``pending`` (with one more attempt) right before a send and ``sent``, ``failed``,
``unknown`` or ``skipped`` after; the observer reads them back as
:class:`~reconciler.core.observed.DunningRecord` values. Writes upsert on
``(invoice_id, step_code)`` and create the ``invoices`` row a log needs if it is missing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.observed import DunningRecord
from reconciler.providers.d1 import Database, Statement
from reconciler.runtime.records.sql import (
    TableGroup,
    ensure_tenant,
    iso,
    read_rows,
    to_int,
    to_json,
    to_str,
    to_text,
)

__all__ = ["DunningRecords", "DunningRow", "read_dunning"]


@dataclass(frozen=True, slots=True)
class DunningRow:
    """A row of ``dunning_step_logs``."""

    invoice_id: str
    step_code: str
    status: str
    attempts: int
    provider_message_id: str | None
    error_message: str | None


def _ensure_invoice(invoice_id: str, tenant: str, now: float) -> list[Statement]:
    """The tenant and invoice rows a log row's foreign keys need, created if missing."""
    return [
        ensure_tenant(tenant, now),
        Statement(
            "INSERT INTO invoices (id, provider_invoice_id, tenant_id, status, created_at, "
            "updated_at) VALUES (?, ?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING",
            (invoice_id, invoice_id, tenant, iso(now), iso(now)),
        ),
    ]


class DunningRecords(TableGroup):
    """The dunning handler's ``dunning_step_logs`` rows."""

    async def dunning_row(self, invoice_id: str, step_code: str) -> DunningRow | None:
        """The log row of one (invoice, step), if any."""
        rows = await self.db.query(
            "SELECT invoice_id, step_code, status, attempts, provider_message_id, error_message "
            "FROM dunning_step_logs WHERE invoice_id = ? AND step_code = ?",
            (invoice_id, step_code),
        )
        if not rows:
            return None
        row = rows[0]
        return DunningRow(
            invoice_id=str(row["invoice_id"]),
            step_code=str(row["step_code"]),
            status=str(row["status"]),
            attempts=to_int(row["attempts"]),
            provider_message_id=to_str(row["provider_message_id"]),
            error_message=to_str(row["error_message"]),
        )

    async def dunning_skipped(
        self, *, invoice_id: str, tenant: str, steps: Sequence[str], now: float
    ) -> None:
        """Record superseded steps as ``skipped`` (rows already sent or failed are kept)."""
        if not steps:
            return
        statements = _ensure_invoice(invoice_id, tenant, now)
        for step in steps:
            statements.append(
                Statement(
                    "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                    "step_code, status, error_message, created_at, updated_at) "
                    "VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, ?, "
                    "'skipped', 'superseded by a later step', ?, ?) "
                    "ON CONFLICT(invoice_id, step_code) DO UPDATE SET status = 'skipped', "
                    "error_message = 'superseded by a later step', "
                    "updated_at = excluded.updated_at WHERE dunning_step_logs.status = 'pending'",
                    (invoice_id, invoice_id, tenant, step, iso(now), iso(now)),
                )
            )
        await self.db.batch(statements)

    async def dunning_attempt(
        self,
        *,
        invoice_id: str,
        step_code: str,
        tenant: str,
        phone: str,
        message: str,
        now: float,
    ) -> None:
        """Right before a send: the row is ``pending`` with one more attempt and no error.

        A ``pending`` row with attempts and neither a message id nor an error therefore means
        "a send was started and its outcome never recorded".
        """
        statements = _ensure_invoice(invoice_id, tenant, now)
        statements.append(
            Statement(
                "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                "step_code, phone, message, status, attempts, created_at, updated_at) "
                "VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, ?, ?, ?, "
                "'pending', 1, ?, ?) ON CONFLICT(invoice_id, step_code) DO UPDATE SET "
                "attempts = dunning_step_logs.attempts + 1, error_message = NULL, "
                "phone = excluded.phone, message = excluded.message, "
                "updated_at = excluded.updated_at WHERE dunning_step_logs.status = 'pending'",
                (invoice_id, invoice_id, tenant, step_code, phone, message, iso(now), iso(now)),
            )
        )
        await self.db.batch(statements)

    async def dunning_sent(
        self,
        *,
        invoice_id: str,
        step_code: str,
        message_id: str,
        response: Mapping[str, Any],
        now: float,
    ) -> None:
        """The gateway accepted the text: ``sent`` with its message id and response body."""
        await self.db.execute(
            "UPDATE dunning_step_logs SET status = 'sent', provider_message_id = ?, "
            "provider_response = ?, error_message = NULL, sent_at = ?, updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ?",
            (message_id, to_json(dict(response)), iso(now), iso(now), invoice_id, step_code),
        )

    async def dunning_failed(
        self,
        *,
        invoice_id: str,
        step_code: str,
        tenant: str,
        error: str,
        response: Mapping[str, Any] | None,
        now: float,
        status: str = "failed",
        phone: str | None = None,
    ) -> None:
        """The step ended without a send: ``failed`` with the reason and the number it was
        for, or ``unknown`` when it may have been sent (never resent, not even by hand).

        A ``failed`` step is sent again only by ``core.policy`` rule 6 (an invalid number
        since corrected) or a manual lever (:meth:`dunning_reopen`).
        """
        if status not in ("failed", "unknown"):
            raise ValueError(f"a finished unsent step is failed or unknown, not {status!r}")
        statements = _ensure_invoice(invoice_id, tenant, now)
        statements.append(
            Statement(
                "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, "
                "step_code, phone, status, error_message, provider_response, created_at, "
                "updated_at) VALUES (?, (SELECT subscription_id FROM invoices WHERE id = ?), ?, "
                "?, ?, ?, ?, ?, ?, ?) ON CONFLICT(invoice_id, step_code) DO UPDATE SET "
                "status = excluded.status, "
                "phone = COALESCE(excluded.phone, dunning_step_logs.phone), "
                "error_message = excluded.error_message, "
                "provider_response = COALESCE(excluded.provider_response, "
                "dunning_step_logs.provider_response), updated_at = excluded.updated_at",
                (
                    invoice_id,
                    invoice_id,
                    tenant,
                    step_code,
                    phone,
                    status,
                    error,
                    to_json(dict(response)) if response is not None else None,
                    iso(now),
                    iso(now),
                ),
            )
        )
        await self.db.batch(statements)

    async def dunning_reopen(self, *, invoice_id: str, step_code: str, now: float) -> bool:
        """A ``failed`` step (nothing was sent) or a skipped one back to ``pending``, to send.

        The error is kept (so the row does not read as an interrupted send) until the attempt
        clears it; a sent row, or one whose outcome is unknown, is never reopened. Returns
        whether the row was reopened.
        """
        before = await self.dunning_row(invoice_id, step_code)
        await self.db.execute(
            "UPDATE dunning_step_logs SET status = 'pending', updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ? AND status IN ('failed', 'skipped')",
            (iso(now), invoice_id, step_code),
        )
        after = await self.dunning_row(invoice_id, step_code)
        return before is not None and after is not None and after.status == "pending"

    async def dunning_deferred(
        self, *, invoice_id: str, step_code: str, error: str, now: float
    ) -> None:
        """The send certainly did not happen: the row stays ``pending`` with the error."""
        await self.db.execute(
            "UPDATE dunning_step_logs SET error_message = ?, updated_at = ? "
            "WHERE invoice_id = ? AND step_code = ? AND status = 'pending'",
            (error, iso(now), invoice_id, step_code),
        )


async def read_dunning(
    db: Database, tenants: Collection[str] | None
) -> dict[tuple[str, str], DunningRecord]:
    """The log rows of ``tenants`` (None: every tenant), by (invoice, step)."""
    rows = await read_rows(
        db,
        "SELECT invoice_id, step_code, status, error_message, phone, attempts "
        "FROM dunning_step_logs",
        "tenant_id",
        tenants,
    )
    return {
        (str(row["invoice_id"]), str(row["step_code"])): DunningRecord(
            invoice_id=str(row["invoice_id"]),
            step_code=str(row["step_code"]),
            status=str(row["status"]),
            error_message=to_text(row["error_message"]),
            phone=to_text(row["phone"]),
            attempts=int(row["attempts"] or 0),
        )
        for row in rows
    }
