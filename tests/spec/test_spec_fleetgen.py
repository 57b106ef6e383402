"""The benchmark fleet generator: deterministic, valid, and shaped as promised."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from reconciler.spec.load import load_directory

from support.spec import REPO_ROOT


def _fleetgen() -> ModuleType:
    # bench/ is not an installed package; load the generator from its file.
    spec = importlib.util.spec_from_file_location(
        "bench_fleetgen", REPO_ROOT / "bench" / "fleetgen.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fleetgen = _fleetgen()
build = fleetgen.build
generate = fleetgen.generate


def test_the_same_seed_gives_the_same_fleet() -> None:
    assert build(60, seed=7).files == build(60, seed=7).files
    assert build(60, seed=7).files != build(60, seed=8).files


def test_a_generated_fleet_is_valid_and_has_the_requested_sites(tmp_path: Path) -> None:
    fleet = generate(tmp_path / "specs", 300, seed=3)
    specs = load_directory(tmp_path / "specs")
    assert len(specs.sites) == fleet.sites == 300
    assert len(specs.tenants) == fleet.tenants
    assert specs.domain_count == fleet.domains
    assert 100 < fleet.tenants < 300
    assert 300 < fleet.domains < 600
