"""Helpers shared by the spec tests: write spec files, load them, render their problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SpecError
from reconciler.spec.load import Limits, load_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO_ROOT / "specs"


def write(root: Path, relative: str, content: str | bytes) -> Path:
    """Write a spec file under ``root`` (text is written as UTF-8)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def problems(root: Path, limits: Limits | None = None) -> list[str]:
    """Load ``root``, expect a SpecError, and return its problems rendered."""
    with pytest.raises(SpecError) as caught:
        if limits is None:
            load_directory(root)
        else:
            load_directory(root, limits=limits)
    return [problem.render() for problem in caught.value.problems]


def only_problem(root: Path, limits: Limits | None = None) -> str:
    """Load ``root`` and return its single problem, rendered."""
    found = problems(root, limits)
    assert len(found) == 1, found
    return found[0]


SITE = """\
apiVersion: sitebuilder/v1
kind: Site
metadata:
  name: {name}
spec:
  tenant: {tenant}
  pages_project: {name}
  production: {{version: 1}}
  domains:
    - hostname: {hostname}
"""


def site(name: str, hostname: str, tenant: str = "acme") -> str:
    """A valid Site document with one domain."""
    return SITE.format(name=name, hostname=hostname, tenant=tenant)
