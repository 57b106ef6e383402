"""Support for the chaos test: the seeded world, daemons as tasks, and call-log analysis.

``tests/chaos/conftest.py`` builds a :class:`ChaosWorld` (a started
:class:`~reconciler.sandbox.world.Sandbox`, the example fleet seeded with
:func:`~reconciler.sandbox.seed.seed_world`, two tenants past due in localstripe, the specs
pushed to a local bare Git remote). ``test_chaos.py`` starts daemons on it with
:func:`start_daemon` and judges the sandbox's call logs with :func:`own_rate_limit_429s`,
:func:`hot_retries` and :func:`busiest_second`. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import httpx
import pytest

from reconciler.runtime.actions import ActionSettings
from reconciler.runtime.loop import Daemon, LoopSettings
from reconciler.sandbox.seed import Seeded
from reconciler.sandbox.world import Sandbox
from reconciler.settings import Settings
from reconciler.spec.load import Specs, load_directory
from reconciler.wiring import DaemonWorld

GIT_SECRET = "chaos-git-secret"
LEASE_TTL = 6.0  # short enough for a quick takeover, long enough for a loaded 2-core machine
# Client-side Cloudflare budget, deliberately below the simulator's (see conftest.SIM_RATE):
# two buckets across a leader handover can together send at most 2 x burst + the steady rate.
CLIENT_RATE = "240/20"
# The loop's knobs, compressed: sweeps every few seconds instead of minutes and hours.
LOOP = LoopSettings(
    interval=2.0,
    workers=2,
    hostname_sweep=4.0,
    billing_sweep=10.0,
    full_sweep=12.0,
    grace=3.0,
    backoff_base=0.5,
    backoff_cap=4.0,
    max_failures=8,
    reread_after=2.0,
    lease_poll=0.3,
)
ACTIONS = ActionSettings(deploy_poll_interval=0.5, deploy_timeout=60.0)


@dataclass
class ChaosWorld:
    """The sandbox, the seeded fleet, and a working copy pushing to a bare remote."""

    sandbox: Sandbox
    seeded: Seeded
    remote: Path
    repo: git.Repo
    root: Path
    past_due: dict[str, str] = field(default_factory=dict)  # tenant -> Stripe invoice id

    @property
    def url(self) -> str:
        return self.remote.as_uri()

    def specs(self) -> Specs:
        return load_directory(Path(self.repo.working_dir) / "specs")

    def edit(self, relative: str, old: str, new: str) -> None:
        path = Path(self.repo.working_dir) / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "-m", message)
        self.repo.git.push("-q", "origin", "main")
        return str(self.repo.head.commit.hexsha)

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        connection = sqlite3.connect(self.sandbox.cloudflare.d1_path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql, params)]
        finally:
            connection.close()

    def live_versions(self) -> dict[tuple[str, str], list[int]]:
        """Per (site, environment), the versions D1 records as live."""
        found: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in self.rows(
            "SELECT site_id, environment, version_number FROM publish_versions "
            "WHERE status = 'live' ORDER BY id"
        ):
            found[(row["site_id"], row["environment"])].append(int(row["version_number"]))
        return dict(found)

    def desired_versions(self) -> dict[tuple[str, str], list[int]]:
        wanted: dict[tuple[str, str], list[int]] = {}
        for name, site in self.specs().sites.items():
            wanted[(name, "production")] = [site.spec.production.version]
            if site.spec.preview is not None:
                wanted[(name, "preview")] = [site.spec.preview.version]
        return wanted

    def hostnames(self) -> list[dict[str, Any]]:
        """Every custom hostname in the simulator, as the API shows it now."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            now = sim.clock.now()
            return [sim.hostnames.to_json(h, now) for h in sim.hostnames.by_id.values()]

    def hostname_problems(self) -> list[str]:
        """What keeps the hostnames from "active, owned, one per declared domain"."""
        declared = {
            d.canonical: name for name, s in self.specs().sites.items() for d in s.spec.domains
        }
        problems: list[str] = []
        seen: dict[str, int] = defaultdict(int)
        recorded = {
            row["domain"]: (row["custom_hostname_id"], row["site_id"])
            for row in self.rows("SELECT domain, custom_hostname_id, site_id FROM domains")
        }
        for host in self.hostnames():
            name = host["hostname"]
            seen[name] += 1
            # ours: D1 domains records this id for its site (docs/routing.md "Ownership")
            if recorded.get(name) != (host["id"], declared.get(name)):
                problems.append(f"{name}: not owned by its site ({recorded.get(name)})")
            if host["status"] != "active" or host["ssl"]["status"] != "active":
                problems.append(f"{name}: {host['status']}/{host['ssl']['status']}")
        problems += [f"{n}: {count} hostnames" for n, count in seen.items() if count > 1]
        problems += [f"{n}: missing" for n in sorted(set(declared) - set(seen))]
        return sorted(problems)

    def converged(self) -> bool:
        return self.live_versions() == self.desired_versions() and not self.hostname_problems()


@dataclass
class Running:
    """A daemon running as a task of the test's event loop."""

    holder: str
    daemon: Daemon
    world: DaemonWorld
    task: asyncio.Task[int]
    http: httpx.AsyncClient
    d1_writes: list[tuple[float, str]]  # (clock, statement) of every D1 write this daemon sent
    sent: list[tuple[float, str, str]]  # (clock, method, url) of every HTTP request it sent

    async def push_webhook(self, chaos: ChaosWorld) -> httpx.Response:
        """A signed GitHub push for the remote's head, as the Git host would send it."""
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": "0" * 40,
                "after": chaos.repo.head.commit.hexsha,
                "repository": {"full_name": "acme/fleet"},
            }
        ).encode()
        signature = hmac.new(GIT_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return await self.http.post(
            "/webhooks/git",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )

    def requests(self) -> dict[str, int]:
        """HTTP requests this daemon's clients sent so far, by provider (readers + writers)."""
        total: dict[str, int] = defaultdict(int)
        for part in (self.world.readers.requests(), self.world.writers.requests()):
            for provider, count in part.items():
                total[provider] += count
        return dict(total)


def _record_requests(
    world: DaemonWorld, clock: Callable[[], float]
) -> list[tuple[float, str, str]]:
    """Log (clock, method, URL) of every request the daemon's HTTP clients send.

    An httpx request hook on each Cloudflare and Evolution client (readers and writers) of
    this daemon; the simulators' own call logs cannot tell two daemons apart.
    """
    log: list[tuple[float, str, str]] = []

    async def hook(request: httpx.Request) -> None:
        log.append((clock(), request.method, str(request.url.path)))

    for client in (
        world.readers.cloudflare,
        world.writers.cloudflare,
        world.readers.evolution,
        world.writers.evolution,
    ):
        if client is not None:
            # NB: test-only reach into the adapter's HttpApi: there is no public hook.
            client._api._client.event_hooks["request"].append(hook)
    return log


def _record_writes(database: Any, clock: Callable[[], float]) -> list[tuple[float, str]]:
    """Wrap ``database``'s write methods (instance attributes) to log when each was called.

    The daemon's fenced proxy looks the method up on every call, so the wrapper sees every
    journal, status, ledger and lease write of that daemon, and nothing of any other.
    """
    log: list[tuple[float, str]] = []
    execute, batch = database.execute, database.batch

    async def recorded_execute(sql: str, params: Any = ()) -> Any:
        log.append((clock(), " ".join(sql.split())[:60]))
        return await execute(sql, params)

    async def recorded_batch(statements: Any) -> Any:
        log.append((clock(), f"batch of {len(statements)}"))
        return await batch(statements)

    database.execute = recorded_execute
    database.batch = recorded_batch
    return log


async def wait_for(
    predicate: Callable[[], bool], *, within: float = 60.0, what: str = "condition"
) -> float:
    """Poll ``predicate`` every 50 ms; return the seconds it took (fail after ``within`` s)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def start_daemon(chaos: ChaosWorld, *, holder: str, workdir: Path) -> AsyncIterator[Running]:
    """Build a :class:`DaemonWorld` on the chaos world and run its daemon as a task."""
    env = {
        **chaos.sandbox.settings_env(),
        "GIT_WEBHOOK_SECRET": GIT_SECRET,
        "CLOUDFLARE_RATE_LIMIT": CLIENT_RATE,
    }
    clock = chaos.sandbox.clock.now
    world = DaemonWorld(
        Settings.from_env(env),
        repo_url=chaos.url,
        branch="main",
        workdir=workdir,
        listen=("127.0.0.1", 0),
        holder=holder,
        lease_ttl=LEASE_TTL,
        clock=clock,
        action_settings=ACTIONS,
        handler_sleep=asyncio.sleep,
    )
    writes = _record_writes(world.writers.database, clock)
    sent = _record_requests(world, clock)
    daemon = Daemon(world.parts, LOOP)
    world.serve(daemon)
    task = asyncio.create_task(daemon.run(), name=f"daemon-{holder}")
    server = world.parts.server
    assert server is not None
    await wait_for(lambda: server.started.is_set() or task.done(), what="the endpoints")
    assert not task.done(), task
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30.0) as http:
        running = Running(holder, daemon, world, task, http, writes, sent)
        try:
            yield running
        finally:
            if not task.done():
                daemon.stop()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=30.0)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await world.aclose()


async def kill(running: Running) -> None:
    """Kill a daemon: cancel its task without releasing the lease (as a crash would)."""

    async def no_release() -> None:
        return None

    running.world.lease.release = no_release  # type: ignore[method-assign]
    running.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running.task


# --------------------------------------------------------------------------- call-log analysis


def failed(call: Mapping[str, Any]) -> bool:
    """Whether the client saw this exchange fail (5xx, 429, or a dropped connection)."""
    return int(call["status"]) >= 500 or int(call["status"]) == 429 or call["fault"] == "drop"


def own_rate_limit_429s(calls: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """429s the simulator's real rate limiter answered (not the fault injector's bursts)."""
    return [c for c in calls if int(c["status"]) == 429 and c["fault"] != "rate_limited"]


def _key(call: Mapping[str, Any]) -> tuple[str, str, str]:
    """The request's identity: method, path, query, and a digest of its body."""
    query = "&".join(f"{k}={v}" for k, v in sorted(call["query"].items()))
    body = json.dumps([call["request_json"], call["request_form"]], sort_keys=True, default=str)
    if body != "[null, null]":
        query += f" body#{hashlib.sha256(body.encode()).hexdigest()[:8]}"
    return str(call["method"]), str(call["path"]), query


def hot_retries(
    calls: Iterable[Mapping[str, Any]],
    *,
    floor: float,
    concurrent: int = 1,
    in_flight: float = 0.1,
) -> list[str]:
    """Failed requests that were repeated sooner than the backoff floor or their retry-after.

    A request is identified by method, path, query and a digest of its body. After a failed
    exchange at ``t`` (5xx, dropped connection, 429):

    - after a 5xx or a drop, at most ``concurrent`` requests of the same identity may arrive
      before ``t + floor``: two actions may legitimately make the same read at the same moment
      (a site's preview and production publishes both fetch the project's upload token), but a
      retry loop makes one after the other;
    - after a 429, none may arrive before ``t + retry-after``, except within ``in_flight``
      seconds of it (requests already on the wire when the 429 was answered).
    """
    by_key: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: int(c["seq"])):
        by_key[_key(call)].append(call)
    problems: list[str] = []
    for key, series in by_key.items():
        for index, before in enumerate(series):
            if not failed(before):
                continue
            at = float(before["at"])
            limited = int(before["status"]) == 429
            needed = floor
            if limited:
                needed = max(floor, float(before["response_headers"].get("retry-after", 0)))
            soon = [c for c in series[index + 1 :] if float(c["at"]) - at < needed]
            if limited:
                soon = [c for c in soon if float(c["at"]) - at >= in_flight]
                allowed = 0
            else:
                allowed = concurrent
            if len(soon) > allowed:
                gaps = ", ".join(f"+{float(c['at']) - at:.3f} s" for c in soon)
                problems.append(
                    f"{' '.join(key)}: seq {before['seq']} ({before['status']}, "
                    f"{before['fault']}) then {len(soon)} within {needed:g} s ({gaps})"
                )
    return problems


def busiest_second(calls: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """The most times one request (method, path, query, body) was made within one second."""
    times: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        times[" ".join(_key(call))].append(float(call["at"]))
    best = (0, "")
    for resource, stamps in times.items():
        stamps.sort()
        start = 0
        for end, moment in enumerate(stamps):
            while moment - stamps[start] >= 1.0:
                start += 1
            if end - start + 1 > best[0]:
                best = (end - start + 1, resource)
    return best
