"""The spec kinds as pydantic models: the one definition of what a valid document is.

``spec/load.py`` parses YAML into these models and adds the fleet-wide checks (references,
hostname uniqueness); ``spec/schema.py`` exports them as JSON Schema into ``schemas/``. Models
are frozen and reject unknown fields, so a typo in a spec is an error, never silently ignored.

Per-document checks live here (field formats, E.164 numbers, IDNA hostnames, dunning order,
template variables); checks that need the whole fleet live in ``spec/fleet.py``.
"""

from __future__ import annotations

import functools
import re
import string
from datetime import timedelta
from typing import Annotated, Any, Literal

import idna
import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

# The enums live in the pydantic-free vocabulary (the core reads them); re-exported here.
from reconciler.spec.vocabulary import Access as Access
from reconciler.spec.vocabulary import DeletionPolicy as DeletionPolicy
from reconciler.spec.vocabulary import Kind as Kind
from reconciler.spec.vocabulary import SslMethod as SslMethod
from reconciler.spec.vocabulary import Uncollectible as Uncollectible

API_VERSION = "sitebuilder/v1"


class Strict(BaseModel):
    """Base for every spec model: immutable, unknown fields rejected, no coercion surprises."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


DEFER_CHECKS = "defer_checks"
"""Validation-context key: when true, cross-field checks do not raise inside pydantic.

``spec/load.py`` validates with ``context={DEFER_CHECKS: True}`` and then asks
:func:`document_checks` for the same findings, each with its own field path, so every one gets
its own line and column. Constructing a model any other way still raises on them.
"""

FieldCheck = tuple[str, str]
"""A cross-field finding: (dotted field path relative to the checked model, message)."""


def _raise_unless_deferred(model: Any, info: ValidationInfo) -> None:
    if isinstance(info.context, dict) and info.context.get(DEFER_CHECKS):
        return
    checks: list[FieldCheck] = model.checks()
    if checks:
        raise ValueError(
            "; ".join(f"{field}: {message}" if field else message for field, message in checks)
        )


# --- scalar types --------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"


def parse_duration(value: Any) -> Any:
    """Turn ``"24h"``, ``"90m"``, ``"1h30m"``, ``"2d"`` or ``"45s"`` into a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("a duration is written like '24h', '90m', '1h30m' or '2d'")
    match = _DURATION_RE.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"{value!r} is not a duration; write it like '24h', '90m' or '1h30m'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if delta <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return delta


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration`, in the shortest exact form (``5400s`` -> ``1h30m``)."""
    total = int(value.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out += f"{amount}{unit}"
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as '24h', '90m', '1h30m', '2d' or '45s'.",
        }
    ),
]

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="DNS-label style: lowercase letters, digits and '-', at most 63 characters.",
    ),
]

# Cloudflare Pages project names: lowercase, digits and dashes, at most 58 characters.
PagesProjectName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?$", max_length=58),
]


_ASCII_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# A lowercase LDH hostname whose labels are not IDNA-prefixed ("xn--", or any "??--") and whose
# last label is not numeric is already canonical; most fleets are made of nothing else.
_CANONICAL_ASCII_RE = re.compile(
    r"(?:(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?!..--)(?![0-9]+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


@functools.lru_cache(maxsize=65536)
def normalize_hostname(value: str) -> str:
    """Return the canonical form of a hostname: IDNA 2008 A-labels, lowercase, no final dot.

    ``WWW.Acme.com.``, ``www.acme.com`` and ``xn--bcher-kva.example`` / ``bücher.example`` pairs
    normalise to the same string, which is how Cloudflare stores and compares custom hostnames.
    Results are cached: a fleet validation normalises every hostname several times.

    Raises:
        ValueError: with a readable message when the name is not a valid hostname.
    """
    text = value.strip()
    if text.endswith("."):
        text = text[:-1]
    lowered = text.lower()
    if len(lowered) <= 253 and _CANONICAL_ASCII_RE.fullmatch(lowered):
        # Skipping the pure-Python IDNA codec (~30 µs a name) keeps a 15,000-domain fleet fast.
        return lowered
    if not text:
        raise ValueError("a hostname may not be empty")
    if any(ch.isspace() for ch in text) or "/" in text or ":" in text:
        raise ValueError(f"{value!r} is not a valid hostname")
    labels = text.split(".")
    if any(not label for label in labels):
        raise ValueError(f"{value!r} is not a valid hostname (empty label)")
    if len(labels) < 2:
        raise ValueError(f"{value!r} is not a fully qualified hostname")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{value!r} is not a valid hostname: {exc}") from exc
    if len(ascii_name) > 253:
        raise ValueError(f"{value!r} is longer than 253 characters")
    for label in ascii_name.split("."):
        if not _ASCII_LABEL_RE.fullmatch(label):
            raise ValueError(f"{value!r} is not a valid hostname (label {label!r})")
    if ascii_name.split(".")[-1].isdigit():
        raise ValueError(f"{value!r} is an IP address, not a hostname")
    return ascii_name


def _check_hostname(value: str) -> str:
    normalize_hostname(value)
    return value


Hostname = Annotated[
    str,
    AfterValidator(_check_hostname),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 3,
            "maxLength": 253,
            "pattern": r"^[^\s/:]+\.[^\s/:]+\.?$",
            "description": "A fully qualified hostname (IDNA 2008; Unicode or punycode).",
        }
    ),
]


def _check_e164(value: str) -> str:
    if not re.fullmatch(r"\+[1-9]\d{6,14}", value):
        raise ValueError(f"{value!r} is not an E.164 number (write it like +5511912345678)")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a valid phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return value


E164 = Annotated[
    str,
    AfterValidator(_check_e164),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\+[1-9][0-9]{6,14}$",
            "description": "A phone number in E.164 form, such as +5511912345678.",
        }
    ),
]

HttpsUrl = Annotated[
    str,
    Field(
        pattern=r"^https://[^\s/]+(/\S*)?$",
        max_length=2048,
        description="An https:// URL; plain http scripts are refused (mixed content).",
    ),
]


# --- metadata ----------------------------------------------------------------------------


class Metadata(Strict):
    """Identity of a document: its name is unique per kind."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


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
        _raise_unless_deferred(self, info)
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
        _raise_unless_deferred(self, info)
        return self


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
        _raise_unless_deferred(self, info)
        return self


# --- Worker ------------------------------------------------------------------------------

WorkerScriptName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$",
        max_length=63,
        description="The Worker script's name on the account, e.g. site-builder-api-production.",
    ),
]
HealthUrl = Annotated[
    str,
    Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        max_length=2048,
        description="The URL the health check GETs (http:// only for loopback test worlds).",
    ),
]


class WorkerVersion(Strict):
    """A Worker version, by Cloudflare's sequential version number."""

    version: int = Field(ge=1, description="The version's number (as `wrangler versions list`).")


class WorkerCanary(Strict):
    """A gradual split: this version takes ``percentage`` of the traffic, production the rest."""

    version: int = Field(ge=1)
    percentage: int = Field(ge=1, le=99)


class HealthCheck(Strict):
    """What a healthy rollout answers: ``url`` must return one of ``expect``."""

    url: HealthUrl
    expect: tuple[int, ...] = Field(default=(200,), min_length=1)
    steps: tuple[int, ...] = Field(
        default=(),
        description="Split schedule: percentages the new version takes, checked at each step, "
        "before it takes 100 % (e.g. [10, 50]).",
    )

    def checks(self) -> list[FieldCheck]:
        """Statuses are HTTP statuses; steps rise strictly within 1-99."""
        found: list[FieldCheck] = []
        for index, status in enumerate(self.expect):
            if not 100 <= status <= 599:
                found.append((f"expect[{index}]", f"{status} is not an HTTP status"))
        for index, step in enumerate(self.steps):
            low = self.steps[index - 1] if index else 0
            if not low < step < 100:
                found.append((f"steps[{index}]", "steps rise strictly, each from 1 to 99"))
        return found


class WorkerSpec(Strict):
    """One of the platform's own Workers: which version serves production (runbook 6)."""

    script: WorkerScriptName
    production: WorkerVersion
    canary: WorkerCanary | None = None
    health_check: HealthCheck | None = None

    def checks(self) -> list[FieldCheck]:
        """The canary is another version than production; the health check's own checks."""
        found: list[FieldCheck] = []
        if self.canary is not None and self.canary.version == self.production.version:
            found.append(("canary.version", "the canary must be another version than production"))
        if self.health_check is not None:
            found.extend((f"health_check.{f}", m) for f, m in self.health_check.checks())
        return found

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> WorkerSpec:
        _raise_unless_deferred(self, info)
        return self


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
