"""What the core reads of the validated specs: read-only Protocols, free of pydantic.

``spec/load.py``'s ``Specs`` and the pydantic models of ``spec/models.py`` satisfy these
structurally (mypy checks it where runtime hands specs to ``core/desired.py``), so the pure core
names only the fields it reads and never imports the models, pydantic, or the loader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from reconciler.core.budget import BudgetLimits
from reconciler.spec.vocabulary import Access, DeletionPolicy, Kind, SslMethod, Uncollectible

__all__ = [
    "BillingPolicySpec",
    "DomainTimingRules",
    "DunningStepRule",
    "Located",
    "PolicyDocument",
    "SiteDocument",
    "SiteFields",
    "SpecsView",
    "TenantDocument",
    "WorkerDocument",
]


class Located(Protocol):
    """A position in a spec file (``spec.source.SourceLocation``); 1-based."""

    @property
    def path(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


# --- BillingPolicy -----------------------------------------------------------------------


class DunningStepRule(Protocol):
    """One dunning message: its code, the day past due it is sent, its template."""

    @property
    def code(self) -> str: ...
    @property
    def day(self) -> int: ...
    @property
    def template(self) -> str: ...


class DomainTimingRules(Protocol):
    """How long a custom hostname may take to validate and get its certificate."""

    @property
    def validation_timeout(self) -> timedelta: ...
    @property
    def ssl_timeout(self) -> timedelta: ...
    @property
    def max_recreates(self) -> int: ...


class BillingPolicySpec(Protocol):
    """A billing policy's spec (``BillingPolicySpec``): locks, dunning, budget, timings."""

    @property
    def grace_days(self) -> int: ...
    @property
    def hard_lock_days(self) -> int: ...
    @property
    def dunning(self) -> Sequence[DunningStepRule]: ...
    @property
    def templates(self) -> Mapping[str, str]: ...
    @property
    def performance_budget(self) -> BudgetLimits: ...
    @property
    def domains(self) -> DomainTimingRules: ...
    @property
    def suspension_origin(self) -> str: ...
    @property
    def uncollectible(self) -> Uncollectible: ...


class PolicyDocument(Protocol):
    """A ``BillingPolicy`` document."""

    @property
    def spec(self) -> BillingPolicySpec: ...


# --- Tenant ------------------------------------------------------------------------------


class _StripeIdentity(Protocol):
    @property
    def customer(self) -> str: ...


class _TenantFields(Protocol):
    @property
    def display_name(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def stripe(self) -> _StripeIdentity: ...
    @property
    def whatsapp(self) -> str: ...
    @property
    def access(self) -> Access: ...
    @property
    def access_reason(self) -> str | None: ...


class TenantDocument(Protocol):
    """A ``Tenant`` document."""

    @property
    def spec(self) -> _TenantFields: ...


# --- Site --------------------------------------------------------------------------------


class _Version(Protocol):
    @property
    def version(self) -> int: ...


class _Ssl(Protocol):
    @property
    def method(self) -> SslMethod: ...


class _Domain(Protocol):
    @property
    def canonical(self) -> str: ...
    @property
    def ssl(self) -> _Ssl: ...


class SiteFields(Protocol):
    @property
    def tenant(self) -> str: ...
    @property
    def pages_project(self) -> str: ...
    @property
    def production(self) -> _Version: ...
    @property
    def preview(self) -> _Version | None: ...
    @property
    def domains(self) -> Sequence[_Domain]: ...
    @property
    def scripts(self) -> Sequence[str]: ...
    @property
    def deletion_policy(self) -> DeletionPolicy: ...


class SiteDocument(Protocol):
    """A ``Site`` document."""

    @property
    def spec(self) -> SiteFields: ...


# --- Worker ------------------------------------------------------------------------------


class _Canary(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def percentage(self) -> int: ...


class _HealthCheck(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def expect(self) -> Sequence[int]: ...
    @property
    def steps(self) -> Sequence[int]: ...


class _WorkerFields(Protocol):
    @property
    def script(self) -> str: ...
    @property
    def production(self) -> _Version: ...
    @property
    def canary(self) -> _Canary | None: ...
    @property
    def health_check(self) -> _HealthCheck | None: ...


class WorkerDocument(Protocol):
    """A ``Worker`` document (one of the platform's own Workers)."""

    @property
    def spec(self) -> _WorkerFields: ...


# --- the fleet ---------------------------------------------------------------------------


class SpecsView(Protocol):
    """The validated desired state of the fleet (``spec.load.Specs``), as the core reads it."""

    @property
    def tenants(self) -> Mapping[str, TenantDocument]: ...
    @property
    def sites(self) -> Mapping[str, SiteDocument]: ...
    @property
    def policies(self) -> Mapping[str, PolicyDocument]: ...
    @property
    def workers(self) -> Mapping[str, WorkerDocument]: ...
    @property
    def revision(self) -> str | None: ...

    def location(self, kind: Kind, name: str, field: str = "") -> Located:
        """Best-known position of a dotted field of a document; KeyError when there is none."""
        ...
