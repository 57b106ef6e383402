"""CONTRIBUTING.md's test layout, by machine: folders mirror reconciler/, one helper package.

A folder under ``tests/`` is either the name of a package of ``reconciler/`` (its tests) or one
of the named cross-cutting tiers; it holds only ``test_*.py`` modules and a ``conftest.py``.
Helper modules live in ``tests/support`` only, and test module names are unique (pytest's
default import mode imports each by its bare name).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "reconciler"
TIERS = frozenset({"scenarios", "e2e", "contract", "crash", "chaos", "support"})


def _folders() -> list[Path]:
    return sorted(
        path
        for path in TESTS.rglob("*")
        if path.is_dir() and "__pycache__" not in path.parts and any(path.glob("*.py"))
    )


def test_every_test_folder_mirrors_a_package_or_is_a_named_tier() -> None:
    strays = []
    for folder in _folders():
        relative = folder.relative_to(TESTS)
        top = relative.parts[0]
        if top in TIERS:
            continue
        if not (PACKAGE / relative).is_dir():
            strays.append(relative.as_posix())
    assert strays == [], f"test folders with no reconciler/ package of that name: {strays}"


def test_helpers_live_only_in_the_support_package() -> None:
    helpers = [
        path.relative_to(TESTS).as_posix()
        for folder in _folders()
        if folder.relative_to(TESTS).parts[0] != "support"
        for path in folder.glob("*.py")
        if not path.name.startswith("test_") and path.name != "conftest.py"
    ]
    helpers += [
        path.relative_to(TESTS).as_posix()
        for path in TESTS.glob("*.py")
        if not path.name.startswith("test_") and path.name != "conftest.py"
    ]
    assert helpers == [], f"helper modules outside tests/support: {helpers}"


def test_test_module_names_are_unique() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
