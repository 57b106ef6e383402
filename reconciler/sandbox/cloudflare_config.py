"""The simulated Cloudflare account's knobs: its ids, rate limit, timings and entitlements.

Read by :class:`~reconciler.sandbox.cloudflare.CloudflareSim` (which re-exports
:class:`CloudflareConfig`); :func:`hostname_policy` is the part its hostname store enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from reconciler.sandbox.cloudflare_common import (
    IdSource,
)
from reconciler.sandbox.cloudflare_hostname_rules import HostnamePolicy
from reconciler.sandbox.cloudflare_hostnames import (
    CHECK_OFFSETS,
)

TRANSITIONAL_ENTITLEMENTS: dict[str, Any] = {
    "refuse_reserved_tlds": False,
}
"""What the sandbox world and the shared test simulator opt into, explicitly, for now.

The simulator's defaults are an ordinary account (ROUTING.md §1), and the reconciler sends
neither ``custom_metadata`` nor ``custom_origin_server`` on one (docs/routing.md), so only the
reserved-TLD refusal stays off: older tests name hostnames under ``.test``.
"""


@dataclass(frozen=True, slots=True)
class CloudflareConfig:
    """Identity and behaviour knobs of one simulated Cloudflare account and SaaS zone.

    Ids default to deterministic values from ``seed`` (see :meth:`generate`).
    """

    account_id: str
    zone_id: str
    token: str
    database_id: str
    database_name: str = "sitebuilder"
    zone_name: str = "sitebuilder-sandbox.test"
    cname_target: str = "customers.sitebuilder-sandbox.test"
    fallback_origin: str = "fallback.sitebuilder-sandbox.test"
    projects: tuple[str, ...] = ()
    rate_limit_requests: int = 1200
    rate_limit_period: float = 300.0
    rate_limit_block: float = 300.0
    stage_seconds: float = 3.0
    ssl_initializing_seconds: float = 2.0
    ssl_issuance_seconds: float = 5.0
    validation_window: float = CHECK_OFFSETS[-1]
    purge_max_items: int = 100
    purge_max_files: int = 100
    hostname_statuses: str = "docs"  # "docs": POST 201, PATCH 202; "schema": always 200
    hostname_delete_body: str = "envelope"  # or "bare": {"id": ...} without the envelope
    # What the account is entitled to (ROUTING.md §1): an ordinary account by default.
    entitled_custom_metadata: bool = False
    entitled_custom_origin: bool = False
    custom_origin_outside_zone: bool = False  # even entitled, the origin must be in zone DNS
    refuse_reserved_tlds: bool = True
    # After a rollback, the project's canonical_deployment is the rollback target ("live") or
    # the most recently created production deployment ("latest"): unconfirmed (CONTRACT.md §9).
    canonical_after_rollback: str = "live"
    retry_creates_new: bool = True
    upload_jwt_ttl: float = 300.0
    seed: int = 0

    @classmethod
    def generate(cls, *, seed: int = 0, **overrides: Any) -> CloudflareConfig:
        """A config with ids drawn from ``seed`` and the token ``sandbox-cf-<hex>``."""
        ids = IdSource(seed + 7919)
        base = cls(
            account_id=ids.hex32(),
            zone_id=ids.hex32(),
            token=f"sandbox-cf-{ids.hex32()}",
            database_id=ids.uuid(),
            seed=seed,
        )
        return replace(base, **overrides)


def hostname_policy(cfg: CloudflareConfig) -> HostnamePolicy:
    """The hostname rules the account's entitlements and zone imply."""
    return HostnamePolicy(
        zone=cfg.zone_name,
        custom_metadata=cfg.entitled_custom_metadata,
        custom_origin=cfg.entitled_custom_origin,
        origin_outside_zone=cfg.custom_origin_outside_zone,
        refuse_reserved_tlds=cfg.refuse_reserved_tlds,
    )
