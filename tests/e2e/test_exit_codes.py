"""Exit codes and errors people can script: usage errors, unreadable providers, closed pipes,
ports in use, ``NO_COLOR`` and progress off a terminal (issue 12, item 3)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_plan_cli import EXAMPLE_SPECS, converged

from reconciler.cli import main
from reconciler.providers.d1 import SqliteDatabase
from reconciler.runtime.status import ConditionUpdate, StatusStore
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import load_directory

RECONCILER = [sys.executable, "-m", "reconciler"]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A converged sandbox world (no localstripe) whose settings are in the environment."""
    with Sandbox(with_stripe=False, projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        for name, value in sandbox.settings_env().items():
            monkeypatch.setenv(name, value)
        for name in ("STRIPE_API_KEY", "STRIPE_API_BASE", "NO_COLOR"):
            monkeypatch.delenv(name, raising=False)
        specs = load_directory(EXAMPLE_SPECS)
        converged.converge(sandbox.cloudflare, sandbox.cloudflare.d1_path, specs)
        yield sandbox


def plan(world: Sandbox, *args: str) -> int:
    return main(["plan", "--now", str(world.clock.now()), "--specs", str(EXAMPLE_SPECS), *args])


def test_a_usage_error_exits_1_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--no-such-flag"])
    assert exit_info.value.code == 1
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--format", "yaml"])
    assert exit_info.value.code == 1


def test_a_wrong_cloudflare_token_exits_1_with_one_line_naming_the_endpoint(
    world: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "not-the-token")
    assert plan(world) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no plan, no wall of "blocked" lines
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cloudflare could not be read at {world.cloudflare_url}: authentication "
        "failed: GET /zones/{zone_id}/custom_hostnames -> HTTP 401: 10000 Authentication error"
    ]
    assert "not-the-token" not in captured.err


def test_cloudflare_down_exits_1_naming_the_address(
    world: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CLOUDFLARE_API_BASE", f"http://127.0.0.1:{port}/client/v4")
    assert plan(world) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: cloudflare could not be read at http://127.0.0.1:{port}")
    assert "blocked" not in captured.err


def test_a_wrong_stripe_key_exits_1_never_no_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(projects=projects_from_specs(EXAMPLE_SPECS)) as sandbox:
        for name, value in sandbox.settings_env().items():
            monkeypatch.setenv(name, value)
        specs = load_directory(EXAMPLE_SPECS)
        converged.converge(sandbox.cloudflare, sandbox.cloudflare.d1_path, specs)
        monkeypatch.setenv("STRIPE_API_KEY", "rk_wrong")  # localstripe refuses non-sk_ keys
        code = main(["plan", "--now", str(sandbox.clock.now()), "--specs", str(EXAMPLE_SPECS)])
        base = sandbox.settings_env()["STRIPE_API_BASE"]
    captured = capsys.readouterr()
    assert code == 1
    assert "No changes" not in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: stripe could not be read at {base}: ")
    assert "rk_wrong" not in captured.err


def test_progress_is_printed_as_plain_lines_off_a_terminal(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(world) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("plan: d1: ledger of ") for line in err)
    assert not any(line.startswith("…") for line in err)


def test_no_color_turns_colour_off_even_on_a_terminal(
    world: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = world.cloudflare
    sim.hostnames.delete(sim.hostnames.by_name["shop.acmebakery.com"])  # something to show
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert plan(world) == 2
    assert "\x1b[" in capsys.readouterr().out  # a terminal gets colour...
    monkeypatch.setenv("NO_COLOR", "1")
    assert plan(world) == 2
    assert "\x1b[" not in capsys.readouterr().out  # ...unless NO_COLOR says otherwise


def _status_database(path: Path, rows: int) -> None:
    subprocess.run(
        [*RECONCILER, "migrate"],
        env={**os.environ, "D1_BACKEND": "sqlite", "D1_SQLITE_PATH": str(path)},
        check=True,
        capture_output=True,
    )

    async def fill() -> None:
        db = SqliteDatabase(str(path))
        try:
            store = StatusStore(db, lambda: 1_700_000_000.0)
            await store.set_many(
                ConditionUpdate(f"Site/site-{i:05d}", "Synced", True, "Converged", "ok")
                for i in range(rows)
            )
        finally:
            await db.close()

    asyncio.run(fill())


def test_status_into_a_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    database = tmp_path / "d1.sqlite"
    _status_database(database, 3_000)  # more than a pipe buffer holds
    command = " ".join([*RECONCILER, "status", "--database", str(database)])
    result = subprocess.run(
        f"{command} | head -n 1", shell=True, capture_output=True, text=True, check=False
    )
    assert result.stdout.startswith("RESOURCE")
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr


def test_run_on_a_port_in_use_is_one_line_and_exit_1(world: Sandbox, tmp_path: Path) -> None:
    repo = tmp_path / "fleet"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                *RECONCILER,
                "run",
                "--repo-url",
                str(repo),
                "--workdir",
                str(tmp_path / "work"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: cannot serve the HTTP endpoints on 127.0.0.1:{port}:" in result.stderr
