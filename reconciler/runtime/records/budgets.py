"""Budget records: ``performance_budgets``, the limits and figures of a site's production build.

Written in the batch that makes a publish or rollback live (:func:`went_live`), so the figures
always belong to the live build; read by the publisher when its action carries no budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.providers.d1 import Statement
from reconciler.runtime.records.sql import iso

if TYPE_CHECKING:  # publishes imports this module
    from reconciler.runtime.records.publishes import PublishTarget

__all__ = ["SIZE_COLUMNS", "BuildSizes", "size_values", "went_live"]

# A build's sizes as ``publish_versions`` columns, in size_values order.
SIZE_COLUMNS = "js_kb, css_kb, third_party_scripts, image_kb, page_weight_kb"


@dataclass(frozen=True, slots=True)
class BuildSizes:
    """A build's sizes, as recorded on its publish row and in ``performance_budgets``."""

    js_kb: int
    css_kb: int
    third_party_scripts: int
    image_kb: int = 0  # the largest image file served
    page_weight_kb: int = 0  # the heaviest page


def size_values(sizes: BuildSizes | None) -> tuple[int | None, ...]:
    """The five size columns in :data:`SIZE_COLUMNS` order (all None without sizes)."""
    if sizes is None:
        return (None, None, None, None, None)
    return (sizes.js_kb, sizes.css_kb, sizes.third_party_scripts, sizes.image_kb,
            sizes.page_weight_kb)  # fmt: skip


def _media_budget(site: str, sizes: BuildSizes, limits: Mapping[str, int]) -> Statement:
    """``performance_budgets``' image columns: limits, current figures, and ``exceeded``."""
    return Statement(
        "UPDATE performance_budgets SET "
        "max_image_kb = COALESCE(?, max_image_kb), "
        "max_page_weight_kb = COALESCE(?, max_page_weight_kb), "
        "current_image_kb = ?, current_page_weight_kb = ?, "
        "status = CASE WHEN ? > COALESCE(?, max_image_kb, 1e18) "
        "OR ? > COALESCE(?, max_page_weight_kb, 1e18) THEN 'exceeded' ELSE status END "
        "WHERE site_id = ?",
        (
            limits.get("max_image_kb"),
            limits.get("max_page_weight_kb"),
            sizes.image_kb,
            sizes.page_weight_kb,
            sizes.image_kb,
            limits.get("max_image_kb"),
            sizes.page_weight_kb,
            limits.get("max_page_weight_kb"),
            site,
        ),
    )


def _script_budget(
    site: str, version: int, sizes: BuildSizes, limits: Mapping[str, int], now: float
) -> Statement:
    """``performance_budgets``' script and style columns: limits, figures and status."""
    exceeded = any(
        limit is not None and actual > limit
        for actual, limit in (
            (sizes.js_kb, limits.get("max_js_kb")),
            (sizes.css_kb, limits.get("max_css_kb")),
            (sizes.third_party_scripts, limits.get("max_third_party_scripts")),
        )
    )
    maxima = (
        limits.get("max_js_kb"),
        limits.get("max_css_kb"),
        limits.get("max_third_party_scripts"),
    )
    return Statement(
        "INSERT INTO performance_budgets (site_id, max_js_kb, max_css_kb, "
        "max_third_party_scripts, current_js_kb, current_css_kb, "
        "current_third_party_scripts, status, measured_version, measured_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(site_id) DO UPDATE SET "
        "max_js_kb = COALESCE(?, performance_budgets.max_js_kb), "
        "max_css_kb = COALESCE(?, performance_budgets.max_css_kb), "
        "max_third_party_scripts = "
        "COALESCE(?, performance_budgets.max_third_party_scripts), "
        "current_js_kb = excluded.current_js_kb, "
        "current_css_kb = excluded.current_css_kb, "
        "current_third_party_scripts = excluded.current_third_party_scripts, "
        "status = CASE WHEN excluded.current_js_kb > COALESCE(?, "
        "performance_budgets.max_js_kb) OR excluded.current_css_kb > COALESCE(?, "
        "performance_budgets.max_css_kb) OR excluded.current_third_party_scripts > "
        "COALESCE(?, performance_budgets.max_third_party_scripts) THEN 'exceeded' "
        "ELSE 'ok' END, measured_version = excluded.measured_version, "
        "measured_at = excluded.measured_at, updated_at = excluded.updated_at",
        (
            site,
            limits.get("max_js_kb", sizes.js_kb),
            limits.get("max_css_kb", sizes.css_kb),
            limits.get("max_third_party_scripts", sizes.third_party_scripts),
            sizes.js_kb,
            sizes.css_kb,
            sizes.third_party_scripts,
            "exceeded" if exceeded else ("ok" if limits else "unknown"),
            version,
            iso(now),
            iso(now),
            *maxima,
            *maxima,
        ),
    )


def went_live(
    target: PublishTarget,
    *,
    keep: int | None,
    now: float,
    sizes: BuildSizes | None,
    budget: Mapping[str, int] | None,
) -> list[Statement]:
    """Supersede other live rows, set the site's version, refresh the budget's sizes."""
    site, environment, version = target.site, target.environment, target.version
    if environment not in ("production", "preview"):
        raise ValueError(f"unknown environment {environment!r}")
    statements = [
        Statement(
            "UPDATE publish_versions SET status = 'superseded' WHERE site_id = ? "
            "AND environment = ? AND status = 'live' AND id IS NOT ?",
            (site, environment, keep),
        ),
        Statement(
            f"UPDATE sites SET {environment}_version = ?, updated_at = ? WHERE id = ?",
            (version, iso(now), site),
        ),
    ]
    if environment == "production" and sizes is not None:
        limits = budget or {}
        statements.append(_script_budget(site, version, sizes, limits, now))
        statements.append(_media_budget(site, sizes, limits))
    return statements
