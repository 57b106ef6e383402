"""Fixtures for the spec tests: a writable copy of the example fleet."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.spec import EXAMPLE_SPECS


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A copy of the example fleet under ``tmp_path/specs``, free to break."""
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLE_SPECS, root)
    return root
