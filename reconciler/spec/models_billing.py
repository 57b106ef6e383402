"""The BillingPolicy spec: locks, dunning steps and their message templates, budgets, domain timing.

Per-document checks: the soft lock comes before the hard lock, dunning steps are in day order
with unique codes and defined templates, and templates use only :data:`TEMPLATE_VARIABLES`.
``reconciler.spec.models`` wraps the spec in its document and re-exports it.
"""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Annotated

from pydantic import Field, ValidationInfo, model_validator

from reconciler.spec.models_base import (
    Duration,
    FieldCheck,
    Hostname,
    Name,
    Strict,
    raise_unless_deferred,
)
from reconciler.spec.vocabulary import Uncollectible

__all__ = [
    "TEMPLATE_VARIABLES",
    "BillingPolicySpec",
    "DomainTiming",
    "DunningStep",
    "PerformanceBudget",
    "template_variables",
]

# --- BillingPolicy -----------------------------------------------------------------------

TEMPLATE_VARIABLES: frozenset[str] = frozenset(
    {
        "tenant_name",
        "amount_due",
        "currency",
        "invoice_id",
        "invoice_url",
        "days_past_due",
        "due_date",
        "soft_lock_date",
        "hard_lock_date",
        "step_code",
    }
)
"""Variables a dunning message template may use, written ``{name}``."""


def template_variables(text: str) -> list[str]:
    """Return the ``{variables}`` a template uses, in order; raise ``ValueError`` if malformed."""
    names: list[str] = []
    try:
        for _, field_name, format_spec, conversion in string.Formatter().parse(text):
            if field_name is None:
                continue
            if not field_name or format_spec or conversion:
                raise ValueError("placeholders are written {name}, without format options")
            names.append(field_name)
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    return names


class DunningStep(Strict):
    """One message of the dunning schedule, sent ``day`` days after the first failed payment."""

    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_+-]{0,31}$")
    day: int = Field(ge=0, le=365)
    template: Name


class PerformanceBudget(Strict):
    """Limits a publish must respect; a build over budget is not published."""

    max_js_kb: int = Field(ge=0)
    max_css_kb: int = Field(ge=0)
    max_third_party_scripts: int = Field(ge=0)
    max_image_kb: int = Field(
        default=500,
        ge=1,
        description="Largest image file a page may serve (any WebP or AVIF variant), in KB.",
    )
    max_page_weight_kb: int = Field(
        default=2000,
        ge=1,
        description="Heaviest page: HTML, CSS, JS and its images' largest variants, in KB.",
    )


class DomainTiming(Strict):
    """How long a custom hostname may take, and how often it may be recreated."""

    validation_timeout: Duration = timedelta(hours=24)
    ssl_timeout: Duration = timedelta(hours=24)
    max_recreates: int = Field(default=3, ge=0, le=20)


class BillingPolicySpec(Strict):
    """Billing rules shared by many tenants: locks, dunning, budgets and domain timing."""

    grace_days: int = Field(ge=0, le=365, description="Soft lock after this many days past due.")
    hard_lock_days: int = Field(ge=1, le=730, description="Hard lock after this many days.")
    dunning: tuple[DunningStep, ...] = ()
    templates: dict[Name, Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=dict
    )
    performance_budget: PerformanceBudget
    domains: DomainTiming = Field(default_factory=DomainTiming)
    suspension_origin: Hostname
    uncollectible: Uncollectible = Field(
        default=Uncollectible.OWED,
        description="owed (default): an uncollectible invoice keeps the tenant locked and "
        "dunned until it is paid or voided; written_off: it counts like a void one.",
    )

    def checks(self) -> list[FieldCheck]:
        """Cross-field findings: lock order, dunning order and codes, templates and variables."""
        found: list[FieldCheck] = []
        if self.grace_days >= self.hard_lock_days:
            found.append(
                (
                    "grace_days",
                    f"grace_days ({self.grace_days}) must be less than "
                    f"hard_lock_days ({self.hard_lock_days})",
                )
            )
        codes: set[str] = set()
        last_day = -1
        for index, step in enumerate(self.dunning):
            if step.code in codes:
                found.append((f"dunning[{index}].code", f"step code {step.code!r} is used twice"))
            codes.add(step.code)
            if step.day < last_day:
                found.append(
                    (
                        f"dunning[{index}].day",
                        f"day {step.day} comes before the previous step's day {last_day}; "
                        "list steps in order",
                    )
                )
            last_day = max(last_day, step.day)
            if step.template not in self.templates:
                defined = ", ".join(sorted(self.templates)) or "none"
                found.append(
                    (
                        f"dunning[{index}].template",
                        f"template {step.template!r} is not defined in templates "
                        f"(defined: {defined})",
                    )
                )
        for name, text in sorted(self.templates.items()):
            try:
                used = template_variables(text)
            except ValueError as exc:
                found.append((f"templates.{name}", str(exc)))
                continue
            unknown = sorted(set(used) - TEMPLATE_VARIABLES)
            if unknown:
                found.append(
                    (
                        f"templates.{name}",
                        f"unknown variable{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join('{' + u + '}' for u in unknown)}; "
                        f"known: {', '.join(sorted(TEMPLATE_VARIABLES))}",
                    )
                )
        return found

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> BillingPolicySpec:
        raise_unless_deferred(self, info)
        return self
