"""Fixtures of the daemon loop tests: the sandbox, a Git remote with the example fleet, daemons.

``daemon_sandbox`` (module) starts the whole :class:`~reconciler.sandbox.world.Sandbox` once,
localstripe included, with deployments that take 50 ms per stage, so publishes finish quickly
in real time (the virtual clock flows with real time here and is never jumped: the lease and
the work queue run on it). ``fleet`` (function) resets the sandbox, seeds it for the example
fleet with :func:`reconciler.sandbox.seed.seed_world`, and pushes the specs (pointed at the
localstripe customers) to a local bare remote. ``start_daemon`` builds a
:class:`~reconciler.wiring.DaemonWorld` on it and runs a :class:`~reconciler.runtime.loop.Daemon`
as a task of the test's own event loop, with its HTTP endpoints on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import shutil
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import httpx
import pytest

from reconciler.runtime.actions import ActionSettings
from reconciler.runtime.loop import Daemon, LoopSettings
from reconciler.sandbox.localstripe import LocalStripeError
from reconciler.sandbox.seed import Seeded, seed_world, write_stripe_ids
from reconciler.sandbox.world import Sandbox
from reconciler.settings import Settings
from reconciler.spec.load import load_directory
from reconciler.wiring import DaemonWorld

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO_ROOT / "specs"
GIT_SECRET = "git-" + secrets.token_hex(12)
FAST_ACTIONS = ActionSettings(deploy_poll_interval=0.05, deploy_timeout=60.0)


@pytest.fixture(scope="module")
def daemon_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The whole local world with fast deployments, started once per module."""
    sandbox = Sandbox(
        state_dir=tmp_path_factory.mktemp("daemon-sandbox"),
        with_stripe=True,
        cloudflare={"stage_seconds": 0.05},
    )
    try:
        sandbox.start()
    except LocalStripeError as exc:
        pytest.fail(f"the sandbox could not start localstripe: {exc}")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@dataclass
class Fleet:
    """A working copy of the example fleet pushing to a bare remote, and the seeded world."""

    sandbox: Sandbox
    root: Path
    seeded: Seeded
    remote: Path
    repo: git.Repo

    @property
    def url(self) -> str:
        return self.remote.as_uri()

    def edit(self, relative: str, old: str, new: str) -> None:
        path = Path(self.repo.working_dir) / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "-m", message)
        return self.push()

    def revert_head(self) -> str:
        self.repo.git.revert("--no-edit", "HEAD")
        return self.push()

    def push(self) -> str:
        self.repo.git.push("-q", "origin", "main")
        return str(self.repo.head.commit.hexsha)

    # ---- reading the world -----------------------------------------------------------------

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        connection = sqlite3.connect(self.sandbox.cloudflare.d1_path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql, params)]
        finally:
            connection.close()

    def live_version(self, site: str, env: str = "production") -> int | None:
        rows = self.rows(
            "SELECT version_number FROM publish_versions WHERE site_id = ? AND environment = ? "
            "AND status = 'live'",
            site,
            env,
        )
        return int(rows[0]["version_number"]) if rows else None

    def tenant_status(self, tenant: str) -> str:
        [row] = self.rows("SELECT status FROM tenants WHERE id = ?", tenant)
        return str(row["status"])

    def deployments(self, project: str) -> list[Any]:
        sim = self.sandbox.cloudflare
        with sim.lock:
            return list(sim.pages.projects[project].deployments.values())

    def live_deployment(self, project: str) -> Any:
        sim = self.sandbox.cloudflare
        with sim.lock:
            return sim.pages.projects[project].live(sim.clock.now())

    def converged(self) -> bool:
        """Every site of the example fleet live at its spec'd production version."""
        specs = load_directory(Path(self.repo.working_dir) / "specs")
        return all(
            self.live_version(name) == site.spec.production.version
            for name, site in specs.sites.items()
        )


@pytest.fixture
def fleet(daemon_sandbox: Sandbox, tmp_path: Path) -> Iterator[Fleet]:
    """A fresh, seeded world and the example fleet pushed to a bare remote."""
    sandbox = daemon_sandbox
    sandbox.clock.thaw()
    sandbox.cloudflare.reset()
    sandbox.evolution.reset()
    sandbox.stripe.flush()
    specs = load_directory(EXAMPLE_SPECS)
    seeded = seed_world(sandbox, specs)
    remote = tmp_path / "remote.git"
    git.Repo.init(remote, bare=True, initial_branch="main")
    work = tmp_path / "work"
    repo = git.Repo.init(work, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.invalid")
    repo.create_remote("origin", str(remote))
    shutil.copytree(EXAMPLE_SPECS, work / "specs")
    write_stripe_ids(work / "specs", specs, seeded.stripe)
    made = Fleet(sandbox=sandbox, root=tmp_path, seeded=seeded, remote=remote, repo=repo)
    made.commit("example fleet")
    yield made
    sandbox.cloudflare.faults.clear()


@dataclass
class Running:
    """A daemon running as a task, its world, and a client for its endpoints."""

    daemon: Daemon
    world: DaemonWorld
    task: asyncio.Task[int]
    base_url: str
    http: httpx.AsyncClient
    deliveries: list[str] = field(default_factory=list)

    async def push_webhook(self, fleet: Fleet) -> httpx.Response:
        """POST a signed GitHub push for the remote's head, as the Git host would."""
        head = fleet.repo.head.commit.hexsha
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": "0" * 40,
                "after": head,
                "repository": {"full_name": "acme/fleet"},
            }
        ).encode()
        signature = hmac.new(GIT_SECRET.encode(), body, hashlib.sha256).hexdigest()
        delivery = str(uuid.uuid4())
        self.deliveries.append(delivery)
        return await self.http.post(
            "/webhooks/git",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )

    async def stripe_webhook(self, event: dict[str, Any], secret: str) -> httpx.Response:
        """POST a Stripe event signed with ``secret`` (v1 scheme, current timestamp)."""
        body = json.dumps(event).encode()
        stamp = int(time.time())
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return await self.http.post(
            "/webhooks/billing/stripe",
            content=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={mac}"},
        )


async def wait_for(
    predicate: Callable[[], bool], *, within: float = 60.0, what: str = "condition"
) -> float:
    """Poll ``predicate`` every 20 ms; return the seconds it took (fail after ``within`` s)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


DaemonFactory = Callable[..., "contextlib.AbstractAsyncContextManager[Running]"]


@pytest.fixture
def start_daemon(fleet: Fleet, tmp_path: Path) -> DaemonFactory:
    """Build and run a daemon on the fleet (``async with start_daemon(...) as running``)."""
    counter = iter(range(1000))

    @contextlib.asynccontextmanager
    async def start(
        *,
        interval: float = 3600.0,
        lease_ttl: float = 15.0,
        settings: LoopSettings | None = None,
        holder: str | None = None,
    ) -> AsyncIterator[Running]:
        env = {**fleet.sandbox.settings_env(), "GIT_WEBHOOK_SECRET": GIT_SECRET}
        index = next(counter)
        world = DaemonWorld(
            Settings.from_env(env),
            repo_url=fleet.url,
            branch="main",
            workdir=tmp_path / f"daemon-{index}",
            listen=("127.0.0.1", 0),
            holder=holder or f"test-daemon-{index}",
            lease_ttl=lease_ttl,
            clock=fleet.sandbox.clock.now,
            action_settings=FAST_ACTIONS,
            handler_sleep=asyncio.sleep,
        )
        loop_settings = settings or LoopSettings(
            interval=interval, workers=2, grace=10.0, lease_poll=0.2
        )
        daemon = Daemon(world.parts, loop_settings)
        world.serve(daemon)
        task = asyncio.create_task(daemon.run())
        server = world.parts.server
        assert server is not None
        await wait_for(lambda: server.started.is_set() or task.done(), what="the endpoints")
        assert not task.done(), task
        base_url = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
            running = Running(daemon, world, task, base_url, http)
            try:
                yield running
            finally:
                daemon.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=30.0)
                if not task.done():
                    task.cancel()
                await world.aclose()

    return start
