"""Runtime settings: where each system lives and the credentials to reach it.

``Settings.from_env`` is called by ``wiring`` (the only reader of the environment); nothing
else reads ``os.environ``. Tokens are wrapped in :class:`Secret`, whose ``repr`` and ``str``
never show the value, so a settings object can be logged or printed safely.

Environment variables (all optional; defaults point at the local sandbox's usual ports):

===============================  ==============================================================
``CLOUDFLARE_API_BASE``          Cloudflare API root (default ``https://api.cloudflare.com/client/v4``)
``CLOUDFLARE_API_TOKEN``         API token (Bearer)
``CLOUDFLARE_ACCOUNT_ID``        account id (Pages, D1)
``CLOUDFLARE_ZONE_ID``           the SaaS zone (custom hostnames, cache purge)
``CLOUDFLARE_RATE_LIMIT``        client-side budget, ``requests/seconds`` (default ``1200/300``)
``CLOUDFLARE_RATE_MARGIN``       share of that budget left to other users of the token (``0.015``)
``D1_BACKEND``                   ``sqlite`` (default) or ``d1``
``D1_SQLITE_PATH``               SQLite file (default ``reconciler.sqlite``)
``D1_DATABASE_ID``               database id for the ``d1`` backend
``STRIPE_API_BASE``              Stripe API root (default ``https://api.stripe.com``)
``STRIPE_API_KEY``               secret key
``STRIPE_WEBHOOK_SECRET``        ``whsec_…`` used to verify webhook signatures
``EVOLUTION_API_BASE``           Evolution API root (no default: dunning is off without it)
``EVOLUTION_API_KEY``            ``apikey`` header value
``EVOLUTION_INSTANCE``           instance name
``GIT_WEBHOOK_SECRET``           HMAC secret for push webhooks
``RECONCILER_PLAN_KEY``          HMAC key signing saved plans (``plan --out``, ``apply --plan``)
``DNS_RESOLVER``                 ``system`` (default: the host's resolvers), ``sandbox`` or ``off``
``DNS_CNAME_TARGET``             the SaaS zone's CNAME target customers point their hostnames at
``DNS_TIMEOUT``                  seconds one DNS lookup may take (default ``2``)
``RECONCILER_SANDBOX_CONTROL``   the sandbox's control root (``DNS_RESOLVER=sandbox`` asks it)
``ROUTING_KV_NAMESPACE``         the routing table's KV namespace title (``sitebuilder-routes``)
``ROUTING_KV_NAMESPACE_ID``      its id, when known: saves the lookup by title on every pass
``ROUTING_WORKER``               the dispatch Worker's script name (``sitebuilder-dispatch``)
``ROUTING_WORKER_ROUTE``         its zone route pattern (default ``*/*``)
``ROUTING_FALLBACK_ORIGIN``      the zone's originless fallback origin; setting it declares the
                                 platform (Worker, namespace, route, fallback) as desired state
``ROUTING_WORKER_SOURCE``        the Worker module to deploy (default: ``workers/dispatch`` of
                                 the repository)
``CLOUDFLARE_CUSTOM_METADATA``   ``on`` when the account is entitled to custom hostname
                                 metadata (default ``off``: never sent)
``R2_ENDPOINT``                  R2's S3 endpoint, ``https://<account id>.r2.cloudflarestorage.com``
``R2_BUCKET``                    the media bucket (originals and cached variants)
``R2_ACCESS_KEY_ID``             an R2 API token's access key id
``R2_SECRET_ACCESS_KEY``         its secret access key
``R2_REGION``                    the signing region (default ``auto``, what R2 expects)
===============================  ==============================================================

docs/routing.md explains the routing settings and what the account needs.

DNS is looked up only for custom hostnames that are stuck or past their validation timeout,
so the Stuck condition can name the record the customer must fix (``providers/dns.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


class Secret:
    """A credential whose value is only available through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap ``value``; it is never shown by ``repr``, ``str`` or formatting."""
        self._value = value

    def reveal(self) -> str:
        """Return the secret value, for building an authentication header."""
        return self._value

    def __bool__(self) -> bool:
        """True when a non-empty value is set."""
        return bool(self._value)

    def __repr__(self) -> str:
        """Never show the value."""
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        """Compare values without exposing them."""
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        """Hash like the value."""
        return hash(self._value)


DEFAULT_CLOUDFLARE_BASE = "https://api.cloudflare.com/client/v4"
DEFAULT_STRIPE_BASE = "https://api.stripe.com"
DEFAULT_SQLITE_PATH = "reconciler.sqlite"
SANDBOX_CONTROL_ENV = "RECONCILER_SANDBOX_CONTROL"
"""The sandbox's control root (``http://127.0.0.1:<port>/__sandbox``); unset in production."""


@dataclass(frozen=True, slots=True)
class RateBudget:
    """A token bucket's size: ``requests`` allowed per ``period`` seconds."""

    requests: int = 1200
    period: float = 300.0
    margin: float = 0.015  # share of the budget the bucket leaves to other users of the token

    @classmethod
    def parse(cls, text: str, margin: str = "0.015") -> RateBudget:
        """Parse ``"1200/300"`` (requests per seconds) and a margin such as ``"0.015"``."""
        try:
            requests_text, period_text = text.split("/", 1)
            budget = cls(requests=int(requests_text), period=float(period_text))
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r} must look like '1200/300'") from exc
        if budget.requests < 1 or budget.period <= 0:
            raise ValueError(f"rate limit {text!r} must be positive")
        try:
            share = float(margin)
        except ValueError as exc:
            raise ValueError(f"rate margin {margin!r} must be a share such as 0.015") from exc
        if not 0.0 <= share < 0.5:
            raise ValueError(f"rate margin {margin!r} must be from 0 up to 0.5")
        return cls(requests=budget.requests, period=budget.period, margin=share)


@dataclass(frozen=True, slots=True)
class CloudflareSettings:
    """How to reach the Cloudflare API."""

    base_url: str = DEFAULT_CLOUDFLARE_BASE
    token: Secret = field(default_factory=lambda: Secret(""))
    account_id: str = ""
    zone_id: str = ""
    rate: RateBudget = field(default_factory=RateBudget)


@dataclass(frozen=True, slots=True)
class D1Settings:
    """Where D1 lives: a local SQLite file, or a database behind the Cloudflare API."""

    backend: Literal["sqlite", "d1"] = "sqlite"
    sqlite_path: str = DEFAULT_SQLITE_PATH
    database_id: str = ""


@dataclass(frozen=True, slots=True)
class StripeSettings:
    """How to reach Stripe (or localstripe)."""

    base_url: str = DEFAULT_STRIPE_BASE
    api_key: Secret = field(default_factory=lambda: Secret(""))
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True, slots=True)
class EvolutionSettings:
    """How to reach the Evolution API gateway for WhatsApp."""

    base_url: str = ""
    api_key: Secret = field(default_factory=lambda: Secret(""))
    instance: str = ""


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Which DNS the observer asks about stuck hostnames, and what it expects to find."""

    resolver: Literal["system", "sandbox", "off"] = "system"
    cname_target: str = ""  # e.g. customers.sitebuilder.example; "" when not configured
    timeout: float = 2.0
    sandbox_control: str = ""  # the sandbox control root, for ``resolver == "sandbox"``

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DnsSettings:
        """Read ``DNS_RESOLVER``, ``DNS_CNAME_TARGET``, ``DNS_TIMEOUT`` and the control root."""
        resolver = env.get("DNS_RESOLVER", "system")
        if resolver not in ("system", "sandbox", "off"):
            raise ValueError(f"DNS_RESOLVER must be 'system', 'sandbox' or 'off', not {resolver!r}")
        control = env.get(SANDBOX_CONTROL_ENV, "").rstrip("/")
        if resolver == "sandbox" and not control:
            raise ValueError(f"DNS_RESOLVER=sandbox needs {SANDBOX_CONTROL_ENV}")
        try:
            timeout = float(env.get("DNS_TIMEOUT", "2"))
        except ValueError as exc:
            raise ValueError("DNS_TIMEOUT must be a number of seconds") from exc
        if timeout <= 0:
            raise ValueError("DNS_TIMEOUT must be positive")
        return cls(
            resolver="sandbox"
            if resolver == "sandbox"
            else "off"
            if resolver == "off"
            else "system",
            cname_target=env.get("DNS_CNAME_TARGET", "").strip().rstrip(".").lower(),
            timeout=timeout,
            sandbox_control=control,
        )


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """The dispatch Worker platform (docs/routing.md) and the account's entitlements."""

    namespace: str = "sitebuilder-routes"
    namespace_id: str = ""  # "" : looked up by title
    worker: str = "sitebuilder-dispatch"
    route_pattern: str = "*/*"
    fallback_origin: str = ""  # "" : the platform is not declared (managed by hand)
    worker_source: str = ""  # "" : the repository's workers/dispatch module
    custom_metadata: bool = False  # the account may send custom_metadata on hostnames

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RoutingSettings:
        """Read the ``ROUTING_*`` variables and ``CLOUDFLARE_CUSTOM_METADATA``."""
        flag = env.get("CLOUDFLARE_CUSTOM_METADATA", "off").strip().lower()
        if flag not in ("on", "off"):
            raise ValueError(f"CLOUDFLARE_CUSTOM_METADATA must be 'on' or 'off', not {flag!r}")
        namespace = env.get("ROUTING_KV_NAMESPACE", "sitebuilder-routes").strip()
        worker = env.get("ROUTING_WORKER", "sitebuilder-dispatch").strip()
        if not namespace or not worker:
            raise ValueError("ROUTING_KV_NAMESPACE and ROUTING_WORKER must not be empty")
        return cls(
            namespace=namespace,
            namespace_id=env.get("ROUTING_KV_NAMESPACE_ID", "").strip(),
            worker=worker,
            route_pattern=env.get("ROUTING_WORKER_ROUTE", "*/*").strip() or "*/*",
            fallback_origin=env.get("ROUTING_FALLBACK_ORIGIN", "").strip().rstrip(".").lower(),
            worker_source=env.get("ROUTING_WORKER_SOURCE", "").strip(),
            custom_metadata=flag == "on",
        )


@dataclass(frozen=True, slots=True)
class R2Settings:
    """How to reach the R2 media bucket through its S3-compatible API (``providers/r2.py``)."""

    endpoint: str = ""
    bucket: str = ""
    access_key_id: Secret = field(default_factory=lambda: Secret(""))
    secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    region: str = "auto"

    @property
    def configured(self) -> bool:
        """True when an endpoint, a bucket and both keys are set."""
        return bool(self.endpoint and self.bucket and self.access_key_id and self.secret_access_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> R2Settings:
        """Read the ``R2_*`` variables."""
        return cls(
            endpoint=env.get("R2_ENDPOINT", "").rstrip("/"),
            bucket=env.get("R2_BUCKET", ""),
            access_key_id=Secret(env.get("R2_ACCESS_KEY_ID", "")),
            secret_access_key=Secret(env.get("R2_SECRET_ACCESS_KEY", "")),
            region=env.get("R2_REGION", "auto") or "auto",
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the wiring needs to build clients."""

    cloudflare: CloudflareSettings = field(default_factory=CloudflareSettings)
    d1: D1Settings = field(default_factory=D1Settings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    evolution: EvolutionSettings = field(default_factory=EvolutionSettings)
    git_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    dns: DnsSettings = field(default_factory=DnsSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    plan_key: Secret = field(default_factory=lambda: Secret(""))
    r2: R2Settings = field(default_factory=R2Settings)

    def secrets(self) -> tuple[Secret, ...]:
        """Every credential these settings hold (registered for redaction by the wiring)."""
        return (
            self.cloudflare.token,
            self.stripe.api_key,
            self.stripe.webhook_secret,
            self.evolution.api_key,
            self.git_webhook_secret,
            self.plan_key,
            self.r2.access_key_id,
            self.r2.secret_access_key,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables (see the module docstring)."""
        backend = env.get("D1_BACKEND", "sqlite")
        if backend not in ("sqlite", "d1"):
            raise ValueError(f"D1_BACKEND must be 'sqlite' or 'd1', not {backend!r}")
        return cls(
            cloudflare=CloudflareSettings(
                base_url=env.get("CLOUDFLARE_API_BASE", DEFAULT_CLOUDFLARE_BASE).rstrip("/"),
                token=Secret(env.get("CLOUDFLARE_API_TOKEN", "")),
                account_id=env.get("CLOUDFLARE_ACCOUNT_ID", ""),
                zone_id=env.get("CLOUDFLARE_ZONE_ID", ""),
                rate=RateBudget.parse(
                    env.get("CLOUDFLARE_RATE_LIMIT", "1200/300"),
                    env.get("CLOUDFLARE_RATE_MARGIN", "0.015"),
                ),
            ),
            d1=D1Settings(
                backend="d1" if backend == "d1" else "sqlite",
                sqlite_path=env.get("D1_SQLITE_PATH", DEFAULT_SQLITE_PATH),
                database_id=env.get("D1_DATABASE_ID", ""),
            ),
            stripe=StripeSettings(
                base_url=env.get("STRIPE_API_BASE", DEFAULT_STRIPE_BASE).rstrip("/"),
                api_key=Secret(env.get("STRIPE_API_KEY", "")),
                webhook_secret=Secret(env.get("STRIPE_WEBHOOK_SECRET", "")),
            ),
            evolution=EvolutionSettings(
                base_url=env.get("EVOLUTION_API_BASE", "").rstrip("/"),
                api_key=Secret(env.get("EVOLUTION_API_KEY", "")),
                instance=env.get("EVOLUTION_INSTANCE", ""),
            ),
            git_webhook_secret=Secret(env.get("GIT_WEBHOOK_SECRET", "")),
            dns=DnsSettings.from_env(env),
            routing=RoutingSettings.from_env(env),
            plan_key=Secret(env.get("RECONCILER_PLAN_KEY", "")),
            r2=R2Settings.from_env(env),
        )
