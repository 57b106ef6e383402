"""``reconciler optimize-site`` end to end: the seeded sandbox (moto as R2), the real CLI.

The first run encodes the site's photos and stores their variants in R2, reporting the bytes
saved; the second finds everything cached and encodes nothing; an unknown site and a world
without R2 are clear errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.build.media import forget_optimised
from reconciler.cli import main
from reconciler.sandbox.seed import seed_world
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import load_directory

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    with Sandbox(with_stripe=False, with_evolution=False, with_r2=True) as sandbox:
        seed_world(sandbox, load_directory(SPECS))
        yield sandbox


def test_optimize_site_encodes_once_then_finds_everything_cached(
    world: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in world.settings_env().items():
        monkeypatch.setenv(name, value)
    forget_optimised()
    assert main(["optimize-site", "acme-shop", "--specs", str(SPECS)]) == 0
    first = capsys.readouterr().out
    assert re.search(r"versions \d+; 4 images encoded, 0 already cached in R2", first)
    assert "acme-shop/hero.jpg: " in first and "-> AVIF " in first
    saved = re.search(r"saved [\d,.]+ KB \((\d+)%\)", first)
    assert saved is not None and int(saved.group(1)) > 50
    forget_optimised()  # a new process: only R2 remembers
    assert main(["optimize-site", "acme-shop", "--specs", str(SPECS)]) == 0
    assert "0 images encoded, 4 already cached in R2" in capsys.readouterr().out


def test_an_unknown_site_or_no_r2_is_a_clear_error(
    world: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in world.settings_env().items():
        monkeypatch.setenv(name, value)
    assert main(["optimize-site", "nope", "--specs", str(SPECS)]) == 1
    assert "no Site named 'nope'" in capsys.readouterr().err
    monkeypatch.delenv("R2_ENDPOINT")
    assert main(["optimize-site", "acme-shop", "--specs", str(SPECS)]) == 1
    assert "R2 is not configured" in capsys.readouterr().err
