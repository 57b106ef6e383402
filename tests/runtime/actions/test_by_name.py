"""``copy_fields``: a record made from the same-named attributes of another value."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reconciler.runtime.actions.by_name import copy_fields
from reconciler.runtime.records.budgets import BuildSizes


@dataclass(frozen=True)
class _Build:
    js_kb: int
    css_kb: int
    third_party_scripts: int
    image_kb: int
    page_weight_kb: int
    heaviest_page: str  # not a BuildSizes field: left behind


def test_every_field_of_the_target_is_read_by_name() -> None:
    build = _Build(1, 2, 3, 4, 5, "/index.html")
    assert copy_fields(BuildSizes, build) == BuildSizes(
        js_kb=1, css_kb=2, third_party_scripts=3, image_kb=4, page_weight_kb=5
    )


def test_a_missing_field_is_an_error_not_a_default() -> None:
    @dataclass(frozen=True)
    class _Half:
        js_kb: int

    with pytest.raises(AttributeError, match="css_kb"):
        copy_fields(BuildSizes, _Half(1))
