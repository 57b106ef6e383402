"""The composed sandbox (``Sandbox``) and ``reconciler sandbox up`` as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from reconciler.sandbox.workerd import unavailable_reason
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_projects_from_specs_finds_every_site_project(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "kind: Site\nmetadata: {name: a}\nspec: {pages_project: alpha}\n---\n"
        "kind: Tenant\nmetadata: {name: t}\nspec: {}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yml").write_text("kind: Site\nspec: {pages_project: beta}\n", encoding="utf-8")
    assert projects_from_specs(tmp_path) == ["alpha", "beta"]


def test_settings_env_points_the_settings_at_the_running_world(tmp_path: Path) -> None:
    with Sandbox(state_dir=tmp_path, with_stripe=False, projects=["acme-home"]) as world:
        env = world.settings_env()
        settings = Settings.from_env(env)
        answer = httpx.get(
            f"{settings.cloudflare.base_url}/accounts/{settings.cloudflare.account_id}"
            "/pages/projects/acme-home",
            headers={"Authorization": f"Bearer {settings.cloudflare.token.reveal()}"},
        )
    assert answer.status_code == 200
    assert settings.d1.backend == "sqlite"
    assert Path(settings.d1.sqlite_path).parent == tmp_path / "d1"
    assert {
        "CLOUDFLARE_API_BASE",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_ZONE_ID",
        "D1_BACKEND",
        "D1_SQLITE_PATH",
    } <= set(env)
    assert not any(name.startswith("STRIPE_") for name in env)


def test_the_d1_backend_setting_selects_the_database_id(tmp_path: Path) -> None:
    with Sandbox(state_dir=tmp_path, with_stripe=False, with_evolution=False, d1_backend="d1") as w:
        env = w.settings_env()
    assert env["D1_BACKEND"] == "d1"
    assert env["D1_DATABASE_ID"] == w.cloudflare_config.database_id
    assert "D1_SQLITE_PATH" not in env


def test_sandbox_up_prints_exports_and_stops_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "up",
            "--no-stripe",
            "--state-dir",
            str(tmp_path / "state"),
            "--specs",
            str(REPO / "specs"),
            "--env-file",
            str(tmp_path / "sandbox.env"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("# visitors"):
                break
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    with process:
        reader.start()
        try:
            assert done.wait(120), "sandbox up printed no settings within 120 s"
            # stdout passes through the CLI's redaction (tokens show as ***): read the file.
            env_file = tmp_path / "sandbox.env"
            exports = _exports(env_file)
            printed = [line for line in lines if line.startswith("export CLOUDFLARE_API_TOKEN")]
            answer = httpx.get(
                f"{exports['CLOUDFLARE_API_BASE']}/accounts/{exports['CLOUDFLARE_ACCOUNT_ID']}"
                "/pages/projects/acme-home",
                headers={"Authorization": f"Bearer {exports['CLOUDFLARE_API_TOKEN']}"},
            )
            edge = _edge_answer(lines)
        finally:
            process.send_signal(signal.SIGINT)
            reader.join(60)
            _, err = process.communicate(timeout=60)
    assert any("fakes" in line for line in lines if line.startswith("#"))
    assert printed == ["export CLOUDFLARE_API_TOKEN=***"]  # stdout masks even the fakes
    assert exports["CLOUDFLARE_API_TOKEN"] != "***"
    assert exports["ROUTING_FALLBACK_ORIGIN"]  # an apply there sets up the dispatch Worker
    assert env_file.stat().st_mode & 0o077 == 0
    assert answer.status_code == 200
    if unavailable_reason() is None:  # the Worker host runs: no hostname is served yet
        assert edge is not None and edge.headers["x-sandbox-edge"] == "not-served"
    assert process.returncode == 0, err
    assert "sandbox stopped" in err


def _exports(env_file: Path) -> dict[str, str]:
    """The ``export`` lines of ``--env-file``, once written (it follows stdout)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = env_file.read_text() if env_file.is_file() else ""
        if "CLOUDFLARE_API_BASE" in text and text.endswith("\n"):
            break
        time.sleep(0.05)
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )


def _edge_answer(lines: list[str]) -> httpx.Response | None:
    """A visitor's request to the edge URL that ``sandbox up`` printed (None when not running)."""
    for line in lines:
        if line.startswith("# visitors (") and "http://" in line:
            url = line.split(": ", 1)[1].split("/ ", 1)[0]
            return httpx.get(url + "/", headers={"Host": "www.acmebakery.com"}, timeout=30)
    return None


def test_the_full_world_sets_every_setting_and_stops_cleanly(tmp_path: Path) -> None:
    world = Sandbox(state_dir=tmp_path, projects=["acme-home"])
    with world:
        env = world.settings_env()
        control = world.control_url
        stripe = httpx.get(
            env["STRIPE_API_BASE"] + "/v1/customers", auth=(env["STRIPE_API_KEY"], "")
        )
        evolution = httpx.get(
            f"{env['EVOLUTION_API_BASE']}/instance/connectionState/{env['EVOLUTION_INSTANCE']}",
            headers={"apikey": env["EVOLUTION_API_KEY"]},
        )
    assert set(env) == {
        "CLOUDFLARE_API_BASE",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_ZONE_ID",
        "D1_BACKEND",
        "D1_SQLITE_PATH",
        "STRIPE_API_BASE",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "EVOLUTION_API_BASE",
        "EVOLUTION_API_KEY",
        "EVOLUTION_INSTANCE",
        "RECONCILER_SANDBOX_CONTROL",
        "DNS_RESOLVER",
        "DNS_CNAME_TARGET",
    }
    assert env["RECONCILER_SANDBOX_CONTROL"] == control
    assert env["DNS_RESOLVER"] == "sandbox"
    assert env["DNS_CNAME_TARGET"] == world.cloudflare_config.cname_target
    assert stripe.status_code == 200
    assert evolution.status_code == 200
    assert world.stripe is None and world.evolution_url is None
