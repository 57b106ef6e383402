"""Billing facts as the core sees them: plain, frozen values read from Stripe (or the D1 mirror).

``providers/stripe.py`` translates Stripe objects into these; ``core`` derives desired access and
due dunning steps from them. Times are epoch seconds (UTC); money is in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Invoice:
    """One Stripe invoice of a managed customer."""

    id: str
    customer: str
    subscription: str | None
    status: str  # draft | open | paid | void | uncollectible
    amount_due: int  # minor units (cents)
    currency: str  # lowercase ISO code, e.g. "usd"
    created: float
    finalized_at: float | None = None  # status_transitions.finalized_at when Stripe gives it
    due_date: float | None = None
    hosted_invoice_url: str | None = None
    attempt_count: int = 0

    @property
    def overdue_since(self) -> float:
        """When the clock for days past due starts: finalisation, else creation."""
        return self.finalized_at if self.finalized_at is not None else self.created

    @property
    def due_at(self) -> float:
        """When payment is due: Stripe's ``due_date`` when it gives one (``send_invoice``
        collection), else the moment days past due count from (a charged invoice is due when
        it is finalised); what D1 ``invoices.due_at`` records."""
        return self.due_date if self.due_date is not None else self.overdue_since


@dataclass(frozen=True, slots=True)
class Subscription:
    """One Stripe subscription of a managed customer."""

    id: str
    customer: str
    status: str  # active | past_due | unpaid | canceled | incomplete | trialing | ...
    latest_invoice: str | None = None
    current_period_end: float | None = None


@dataclass(frozen=True, slots=True)
class CustomerBilling:
    """Everything billing-related known about one Stripe customer."""

    customer: str
    subscriptions: tuple[Subscription, ...] = ()
    # Every invoice Stripe shows as open or uncollectible (``core.policy.UNSETTLED_STATUSES``);
    # whether one is owed is ``core.policy.invoice_owed``'s decision, per policy.
    open_invoices: tuple[Invoice, ...] = field(default=())
