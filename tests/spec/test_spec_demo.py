"""The demo's first stage: the example fleet validates and its desired state is shown.

``--summary-only`` stops after that stage; ``tests/e2e/test_demo.py`` runs the whole story."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.demo import main

from support.spec import EXAMPLE_SPECS


def test_the_demo_validates_the_example_fleet_and_summarises_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(EXAMPLE_SPECS), "--summary-only"]) == 0
    out = capsys.readouterr().out
    assert "is valid: 3 tenants, 2 policies, 5 sites, 8 domains" in out
    assert "access active (manual override: " in out
    assert "https://bistrô-lisboa.pt (xn--bistr-lisboa-iib.pt)  ssl txt" in out


def test_the_demo_exits_1_and_shows_the_problems_of_invalid_specs(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (specs / "sites" / "empty.yaml").write_text("# todo\n", encoding="utf-8")
    assert main([str(specs), "--summary-only"]) == 1
    assert "specs/sites/empty.yaml:1:1: file holds no documents" in capsys.readouterr().out
