"""The spec kinds as pydantic models: the one definition of what a valid document is.

``spec/load.py`` parses YAML into these models and adds the fleet-wide checks (references,
hostname uniqueness); ``spec/schema.py`` exports them as JSON Schema into ``schemas/``. Models
are frozen and reject unknown fields, so a typo in a spec is an error, never silently ignored.

Per-document checks live with each kind's model (field formats, E.164 numbers, IDNA hostnames,
dunning order, template variables); checks that need the whole fleet live in ``spec/fleet.py``.

The models are split by kind: ``models_base.py`` (the strict base and the scalar types),
``models_site.py`` (Tenant and Site), ``models_billing.py`` (BillingPolicy) and
``models_worker.py`` (Worker). This module holds the documents that wrap their specs and
re-exports every public name, which is where the rest of the reconciler imports them from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from reconciler.spec.models_base import API_VERSION as API_VERSION
from reconciler.spec.models_base import DEFER_CHECKS as DEFER_CHECKS
from reconciler.spec.models_base import DURATION_PATTERN as DURATION_PATTERN
from reconciler.spec.models_base import E164 as E164
from reconciler.spec.models_base import NAME_PATTERN as NAME_PATTERN
from reconciler.spec.models_base import Duration as Duration
from reconciler.spec.models_base import FieldCheck as FieldCheck
from reconciler.spec.models_base import Hostname as Hostname
from reconciler.spec.models_base import HttpsUrl as HttpsUrl
from reconciler.spec.models_base import Metadata as Metadata
from reconciler.spec.models_base import Name as Name
from reconciler.spec.models_base import PagesProjectName as PagesProjectName
from reconciler.spec.models_base import Strict as Strict
from reconciler.spec.models_base import format_duration as format_duration
from reconciler.spec.models_base import normalize_hostname as normalize_hostname
from reconciler.spec.models_base import parse_duration as parse_duration
from reconciler.spec.models_billing import TEMPLATE_VARIABLES as TEMPLATE_VARIABLES
from reconciler.spec.models_billing import BillingPolicySpec as BillingPolicySpec
from reconciler.spec.models_billing import DomainTiming as DomainTiming
from reconciler.spec.models_billing import DunningStep as DunningStep
from reconciler.spec.models_billing import PerformanceBudget as PerformanceBudget
from reconciler.spec.models_billing import template_variables as template_variables
from reconciler.spec.models_site import Domain as Domain
from reconciler.spec.models_site import SiteSpec as SiteSpec
from reconciler.spec.models_site import Ssl as Ssl
from reconciler.spec.models_site import StripeRef as StripeRef
from reconciler.spec.models_site import TenantSpec as TenantSpec
from reconciler.spec.models_site import VersionRef as VersionRef
from reconciler.spec.models_worker import HealthCheck as HealthCheck
from reconciler.spec.models_worker import HealthUrl as HealthUrl
from reconciler.spec.models_worker import WorkerCanary as WorkerCanary
from reconciler.spec.models_worker import WorkerScriptName as WorkerScriptName
from reconciler.spec.models_worker import WorkerSpec as WorkerSpec
from reconciler.spec.models_worker import WorkerVersion as WorkerVersion

# The enums live in the pydantic-free vocabulary (the core reads them); re-exported here.
from reconciler.spec.vocabulary import Access as Access
from reconciler.spec.vocabulary import DeletionPolicy as DeletionPolicy
from reconciler.spec.vocabulary import Kind as Kind
from reconciler.spec.vocabulary import SslMethod as SslMethod
from reconciler.spec.vocabulary import Uncollectible as Uncollectible

# --- documents ---------------------------------------------------------------------------


class _Document(Strict):
    api_version: Literal["sitebuilder/v1"] = Field(alias="apiVersion")
    metadata: Metadata

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def name(self) -> str:
        """The document's ``metadata.name``."""
        return self.metadata.name


class Tenant(_Document):
    """``kind: Tenant``."""

    kind: Literal["Tenant"]
    spec: TenantSpec


class Site(_Document):
    """``kind: Site``."""

    kind: Literal["Site"]
    spec: SiteSpec


class BillingPolicy(_Document):
    """``kind: BillingPolicy``."""

    kind: Literal["BillingPolicy"]
    spec: BillingPolicySpec


class Worker(_Document):
    """``kind: Worker``."""

    kind: Literal["Worker"]
    spec: WorkerSpec


Document = Tenant | Site | BillingPolicy | Worker

MODEL_BY_KIND: dict[Kind, type[Tenant] | type[Site] | type[BillingPolicy] | type[Worker]] = {
    Kind.TENANT: Tenant,
    Kind.SITE: Site,
    Kind.BILLING_POLICY: BillingPolicy,
    Kind.WORKER: Worker,
}


def document_checks(document: Document) -> list[FieldCheck]:
    """Return the cross-field findings of a document, with paths from its root (``spec.…``)."""
    return [
        (f"spec.{field}" if field else "spec", message) for field, message in document.spec.checks()
    ]
