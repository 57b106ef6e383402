"""Fixtures for the contract tests: one corrected checker per shared contract.

Role: loads ``../shared/contracts/cloudflare/openapi-subset.json`` and
``../shared/contracts/evolution/openapi-v2.json`` once per session, applies the documented
corrections (``corrections.py``) and hands out ``OpenAPIChecker`` instances. When the shared
directory is absent (a clone without ``../shared``), the fixtures skip with the reason.

Called by: pytest, for the modules in ``tests/contract/``.
Calls: ``openapi_checker.OpenAPIChecker``, ``corrections``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corrections import (
    CLOUDFLARE_CORRECTIONS,
    CLOUDFLARE_DOCUMENT,
    EVOLUTION_CORRECTIONS,
    EVOLUTION_DOCUMENT,
)
from openapi_checker import OpenAPIChecker


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared contract not found at {path} (../shared is absent beside the repo)")
    return path


@pytest.fixture(scope="session")
def cloudflare_checker() -> OpenAPIChecker:
    """The Cloudflare subset, corrected as cloudflare/CONTRACT.md documents."""
    path = _require(CLOUDFLARE_DOCUMENT)
    return OpenAPIChecker.from_file("cloudflare", path, *CLOUDFLARE_CORRECTIONS)


@pytest.fixture(scope="session")
def evolution_checker() -> OpenAPIChecker:
    """The Evolution API v2 document, corrected as evolution/CONTRACT.md documents."""
    path = _require(EVOLUTION_DOCUMENT)
    return OpenAPIChecker.from_file("evolution", path, *EVOLUTION_CORRECTIONS)
