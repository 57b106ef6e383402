"""The words of the spec vocabulary: document kinds and the enumerated field values.

Plain ``StrEnum`` s, free of pydantic, so the pure core (``reconciler/core``) can name a kind or
an access level without importing the spec models; ``spec/models.py`` uses them as field types.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Access", "DeletionPolicy", "Kind", "SslMethod", "Uncollectible"]


class Kind(StrEnum):
    """The kinds of document a spec file may hold."""

    TENANT = "Tenant"
    SITE = "Site"
    BILLING_POLICY = "BillingPolicy"
    WORKER = "Worker"


class Access(StrEnum):
    """A tenant's access level; ``auto`` follows the billing policy, others are overrides."""

    AUTO = "auto"
    ACTIVE = "active"
    SOFT_LOCKED = "soft_locked"
    HARD_LOCKED = "hard_locked"


class Uncollectible(StrEnum):
    """How an invoice Stripe marks ``uncollectible`` counts (docs/stripe.md, "What is owed")."""

    OWED = "owed"  # still owed: the tenant stays locked and dunned until paid or voided
    WRITTEN_OFF = "written_off"  # written off like a void invoice: unlocks, dunning stops


class SslMethod(StrEnum):
    """How Cloudflare validates domain control for the certificate."""

    HTTP = "http"
    TXT = "txt"


class DeletionPolicy(StrEnum):
    """What removing a domain or a site from Git does in the world."""

    RETAIN = "retain"
    DELETE = "delete"
