"""The Tenant and Site specs: a paying customer, and a customer site with its domains.

Per-document checks: a hostname listed twice in a Site, a manual access override without a
reason. ``reconciler.spec.models`` wraps these specs in their documents and re-exports them.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, model_validator

from reconciler.spec.models_base import (
    E164,
    FieldCheck,
    Hostname,
    HttpsUrl,
    Name,
    PagesProjectName,
    Strict,
    normalize_hostname,
    raise_unless_deferred,
)
from reconciler.spec.vocabulary import Access, DeletionPolicy, SslMethod

__all__ = ["Domain", "SiteSpec", "Ssl", "StripeRef", "TenantSpec", "VersionRef"]

# --- Site --------------------------------------------------------------------------------


class VersionRef(Strict):
    """Which content version (a row of D1 ``site_versions``) must be live."""

    version: int = Field(ge=1, description="Content version number, 1 or more.")


class Ssl(Strict):
    """Certificate settings for a custom hostname."""

    method: SslMethod = SslMethod.HTTP


class Domain(Strict):
    """A customer's own hostname, served as a Cloudflare for SaaS custom hostname."""

    hostname: Hostname
    ssl: Ssl = Field(default_factory=Ssl)

    @property
    def canonical(self) -> str:
        """The hostname as Cloudflare stores it (IDNA A-labels, lowercase, no final dot)."""
        return normalize_hostname(self.hostname)


class SiteSpec(Strict):
    """A customer site: a Cloudflare Pages project, its live versions and its domains."""

    tenant: Name
    pages_project: PagesProjectName
    production: VersionRef
    preview: VersionRef | None = None
    domains: tuple[Domain, ...] = ()
    scripts: tuple[HttpsUrl, ...] = Field(
        default=(), description="Third-party script URLs; counted by the performance budget."
    )
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN

    def checks(self) -> list[FieldCheck]:
        """Cross-field findings: a hostname listed twice (in any case or IDNA form)."""
        found: list[FieldCheck] = []
        seen: dict[str, int] = {}
        for index, domain in enumerate(self.domains):
            canonical = domain.canonical
            if canonical in seen:
                found.append(
                    (
                        f"domains[{index}].hostname",
                        f"hostname {domain.hostname!r} is already listed as "
                        f"domains[{seen[canonical]}]",
                    )
                )
            else:
                seen[canonical] = index
        return found

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SiteSpec:
        raise_unless_deferred(self, info)
        return self


# --- Tenant ------------------------------------------------------------------------------


class StripeRef(Strict):
    """The tenant's Stripe identity; the reconciler reads these, it never creates them."""

    customer: str = Field(pattern=r"^cus_[A-Za-z0-9]+$")
    subscription: str | None = Field(default=None, pattern=r"^sub_[A-Za-z0-9]+$")


class TenantSpec(Strict):
    """A paying customer: billing identity, contact, policy and access."""

    display_name: str = Field(min_length=1, max_length=200)
    policy: Name
    stripe: StripeRef
    whatsapp: E164
    access: Access = Access.AUTO
    access_reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Why access is overridden; required whenever access is not 'auto'.",
    )

    def checks(self) -> list[FieldCheck]:
        """Cross-field findings: a manual access override must say why."""
        if self.access is not Access.AUTO and not self.access_reason:
            return [
                (
                    "access",
                    f"access is overridden to {self.access.value!r}: say why in access_reason",
                )
            ]
        return []

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TenantSpec:
        raise_unless_deferred(self, info)
        return self
