"""Compact specs: equal fields-sets become one object; values and behaviour stay the same."""

from __future__ import annotations

from pathlib import Path

from reconciler.spec.compact import share_fields_sets
from reconciler.spec.load import load_directory

from support.spec import site, write


def test_models_with_the_same_fields_set_share_one_and_nothing_else_changes(specs: Path) -> None:
    write(specs, "sites/second.yaml", site("second", "second.example.com"))
    write(specs, "sites/third.yaml", site("third", "third.example.com"))
    loaded, reference = load_directory(specs), load_directory(specs)
    before = {name: s.model_fields_set for name, s in loaded.sites.items()}
    assert share_fields_sets(loaded) > 1
    assert loaded == reference
    assert {name: s.model_fields_set for name, s in loaded.sites.items()} == before
    second, third = loaded.sites["second"], loaded.sites["third"]
    assert second.model_fields_set is third.model_fields_set
    assert second.spec.domains[0].model_fields_set is third.spec.domains[0].model_fields_set


def test_a_copy_with_an_update_does_not_touch_the_models_sharing_its_set(specs: Path) -> None:
    write(specs, "sites/second.yaml", site("second", "second.example.com"))
    write(specs, "sites/third.yaml", site("third", "third.example.com"))
    loaded = load_directory(specs)
    share_fields_sets(loaded)
    second, third = loaded.sites["second"].metadata, loaded.sites["third"].metadata
    assert second.model_fields_set is third.model_fields_set
    assert "labels" not in third.model_fields_set
    copied = second.model_copy(update={"labels": {"x": "y"}})
    assert "labels" in copied.model_fields_set
    assert "labels" not in second.model_fields_set
    assert "labels" not in third.model_fields_set
