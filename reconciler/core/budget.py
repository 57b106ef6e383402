"""Performance budget check: a build's sizes against its tenant's BillingPolicy budget.

Pure. The publisher calls :func:`check_budget` with the sizes of a ``build.site.BuildOutput`` and
the policy's ``PerformanceBudget`` (``spec/models.py``) before uploading; a non-empty result
fails the publish with :func:`describe_violations` as ``publish_versions.error_message``
(runbook 4). The planner may call it too, to show a blocked publish in a plan.

The budget is taken through the :class:`BudgetLimits` protocol, so core does not import the
pydantic spec models: any object with ``max_js_kb``, ``max_css_kb``,
``max_third_party_scripts``, ``max_image_kb`` and ``max_page_weight_kb`` fits,
``PerformanceBudget`` included. Image and page-weight violations name their culprit (the asset
key, the page path) so the plan and ``publish_versions.error_message`` say what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class BudgetLimits(Protocol):
    """The limits of a performance budget (``spec.models.PerformanceBudget`` satisfies it)."""

    @property
    def max_js_kb(self) -> int:
        """Largest first-party JavaScript size allowed, in KiB."""
        ...

    @property
    def max_css_kb(self) -> int:
        """Largest first-party CSS size allowed, in KiB."""
        ...

    @property
    def max_third_party_scripts(self) -> int:
        """Most distinct third-party script URLs allowed."""
        ...

    @property
    def max_image_kb(self) -> int:
        """Largest image file (any variant) a page may serve, in KiB."""
        ...

    @property
    def max_page_weight_kb(self) -> int:
        """Heaviest page allowed (HTML, CSS, JS and its images), in KiB."""
        ...


UNLIMITED = 2**62
"""The image limits of a budget from a plan written before image limits existed: none."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A publish's limits as the plan carries them; a :class:`BudgetLimits`.

    The image limits are None in a plan written before they existed: nothing is checked
    against them and nothing is recorded for them.
    """

    max_js_kb: int
    max_css_kb: int
    max_third_party_scripts: int
    image_kb_limit: int | None = None
    page_weight_kb_limit: int | None = None

    @property
    def max_image_kb(self) -> int:
        """The image limit to check (:data:`UNLIMITED` when the plan has none)."""
        return UNLIMITED if self.image_kb_limit is None else self.image_kb_limit

    @property
    def max_page_weight_kb(self) -> int:
        """The page weight limit to check (:data:`UNLIMITED` when the plan has none)."""
        return UNLIMITED if self.page_weight_kb_limit is None else self.page_weight_kb_limit

    def limits(self) -> dict[str, int]:
        """The limits it has, by ``performance_budgets`` column name."""
        limits = {
            "max_js_kb": self.max_js_kb,
            "max_css_kb": self.max_css_kb,
            "max_third_party_scripts": self.max_third_party_scripts,
        }
        if self.image_kb_limit is not None:
            limits["max_image_kb"] = self.image_kb_limit
        if self.page_weight_kb_limit is not None:
            limits["max_page_weight_kb"] = self.page_weight_kb_limit
        return limits


@dataclass(frozen=True, slots=True)
class BudgetViolation:
    """One limit a build goes over."""

    metric: BudgetMetric
    actual: int
    limit: int
    message: str  # e.g. "JS 312 KB is over the budget of 250 KB"


@dataclass(frozen=True, slots=True)
class MediaWeight:
    """A build's image figures and their culprits (``BuildOutput`` / ``BuildPreview``)."""

    image_kb: int = 0  # the largest image file served, KiB rounded up
    largest_image: str = ""  # its asset key
    page_weight_kb: int = 0  # the heaviest page, KiB rounded up
    heaviest_page: str = ""  # its path


class MeasuredBuild(Protocol):
    """A build's measured sizes (``observed.BuildPreview`` satisfies it)."""

    @property
    def js_kb(self) -> int: ...

    @property
    def css_kb(self) -> int: ...

    @property
    def third_party_scripts(self) -> int: ...

    @property
    def media(self) -> MediaWeight: ...


class BudgetMetric(StrEnum):
    """What a budget limits."""

    JS_KB = "js_kb"
    CSS_KB = "css_kb"
    THIRD_PARTY_SCRIPTS = "third_party_scripts"
    IMAGE_KB = "image_kb"
    PAGE_WEIGHT_KB = "page_weight_kb"


def check_build(build: MeasuredBuild, budget: BudgetLimits) -> tuple[BudgetViolation, ...]:
    """:func:`check_budget` on the sizes of a measured build."""
    return check_budget(
        js_kb=build.js_kb,
        css_kb=build.css_kb,
        third_party_scripts=build.third_party_scripts,
        budget=budget,
        media=build.media,
    )


def check_budget(
    *,
    js_kb: int,
    css_kb: int,
    third_party_scripts: int,
    budget: BudgetLimits,
    media: MediaWeight | None = None,
) -> tuple[BudgetViolation, ...]:
    """Every limit the sizes go over, in the order JS, CSS, third-party scripts, image, page.

    A size equal to its limit is within the budget.

    Args:
        js_kb: first-party JavaScript of the build, KiB rounded up.
        css_kb: first-party CSS of the build, KiB rounded up.
        third_party_scripts: distinct external script URLs the site loads.
        budget: the limits.
        media: the build's image figures (None: a build without images).

    Returns:
        The violations; empty when the build is within budget.
    """
    scripts = "script is" if third_party_scripts == 1 else "scripts are"
    script_limit = budget.max_third_party_scripts
    checks = [
        (
            BudgetMetric.JS_KB,
            js_kb,
            budget.max_js_kb,
            f"JS {js_kb} KB is over the budget of {budget.max_js_kb} KB",
        ),
        (
            BudgetMetric.CSS_KB,
            css_kb,
            budget.max_css_kb,
            f"CSS {css_kb} KB is over the budget of {budget.max_css_kb} KB",
        ),
        (
            BudgetMetric.THIRD_PARTY_SCRIPTS,
            third_party_scripts,
            script_limit,
            f"{third_party_scripts} third-party {scripts} over the budget of {script_limit}",
        ),
    ]
    if media is not None:
        checks.extend(_media_checks(media, budget))
    return tuple(
        BudgetViolation(metric=metric, actual=actual, limit=limit, message=message)
        for metric, actual, limit, message in checks
        if actual > limit
    )


def _media_checks(
    media: MediaWeight, budget: BudgetLimits
) -> list[tuple[BudgetMetric, int, int, str]]:
    """The image and page-weight figures, each with its limit and what an overrun says."""
    return [
        (
            BudgetMetric.IMAGE_KB,
            media.image_kb,
            budget.max_image_kb,
            f"image {media.largest_image!r} is {media.image_kb} KB, over the budget "
            f"of {budget.max_image_kb} KB per image",
        ),
        (
            BudgetMetric.PAGE_WEIGHT_KB,
            media.page_weight_kb,
            budget.max_page_weight_kb,
            f"page {media.heaviest_page} weighs {media.page_weight_kb} KB, over the "
            f"budget of {budget.max_page_weight_kb} KB",
        ),
    ]


def describe_violations(violations: tuple[BudgetViolation, ...]) -> str:
    """One line for ``publish_versions.error_message``: ``performance budget exceeded: ...``.

    Returns ``""`` when there is no violation.
    """
    if not violations:
        return ""
    return "performance budget exceeded: " + "; ".join(v.message for v in violations)
