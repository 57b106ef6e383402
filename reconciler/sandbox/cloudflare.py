"""The Cloudflare API simulator: a stateful Starlette app speaking the v4 REST contract.

``create_app(clock=..., config=...)`` returns the app and its :class:`CloudflareSim` state.
:mod:`reconciler.sandbox.world` serves it with :mod:`reconciler.sandbox.host`; tests use the
``cloudflare_sim`` fixture. The API lives under ``/client/v4`` (so ``CLOUDFLARE_API_BASE`` is
``http://127.0.0.1:<port>/client/v4``); the control endpoints live under ``/__sandbox/`` on the
same server (no auth; loopback only; :mod:`~reconciler.sandbox.cloudflare_control`).
docs/sandbox.md lists both.

Every API request goes through the request pipeline every simulator shares
(:mod:`reconciler.sandbox.pipeline`), with this simulator's rules: authentication (Bearer token,
else 401 code 10000), the per-token rate limit (``rate_limit_requests`` per
``rate_limit_period`` seconds of virtual time; exceeding it answers 429 code 971 and blocks the
token for ``rate_limit_block`` seconds), the fault plan (:mod:`reconciler.sandbox.faults`), the
route's handler (the route table and the Pages, custom hostname, purge and D1 handlers:
:mod:`~reconciler.sandbox.cloudflare_routes`; Workers KV: :mod:`~reconciler.sandbox.cloudflare_kv`;
Workers: :mod:`~reconciler.sandbox.cloudflare_workers`), then the call log. State is guarded by
one lock, so tests may read or drive it from other threads while the server runs. Visitors'
views (Pages sites, the edge) are in :mod:`~reconciler.sandbox.cloudflare_edge`.
"""

from __future__ import annotations

import collections
import json
import math
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.cloudflare_common import (
    ApiError,
    IdSource,
    iso,
    no_route,
    parse_multipart,
)
from reconciler.sandbox.cloudflare_config import (
    TRANSITIONAL_ENTITLEMENTS,
    CloudflareConfig,
    hostname_policy,
)
from reconciler.sandbox.cloudflare_control import control_routes
from reconciler.sandbox.cloudflare_d1 import D1Store
from reconciler.sandbox.cloudflare_edge import edge_routes, not_found
from reconciler.sandbox.cloudflare_hostnames import (
    HostnameBehaviour,
    HostnameStore,
    Lifecycle,
)
from reconciler.sandbox.cloudflare_kv import KVStore
from reconciler.sandbox.cloudflare_pages import Behaviour, PagesStore
from reconciler.sandbox.cloudflare_routes import ROUTES
from reconciler.sandbox.cloudflare_worker_versions import VersionsStore, worker_routes
from reconciler.sandbox.cloudflare_workers import WorkersStore
from reconciler.sandbox.dns import SandboxDNS
from reconciler.sandbox.faults import FaultPlan
from reconciler.sandbox.pipeline import (
    Call,
    CallLog,
    Exchange,
    Outcome,
    Rules,
    Simulated,
    Step,
    api_endpoint,
    bare_call,
    fault_step,
    handle,
    unrouted_step,
)

__all__ = [
    "API_ROOT",
    "TRANSITIONAL_ENTITLEMENTS",
    "CloudflareConfig",
    "CloudflareSim",
    "create_app",
]

API_ROOT = "/client/v4"
AUTH_ERROR = 10000
RATE_LIMITED = 971
RATE_LIMIT_MESSAGE = "Please wait and consider throttling your request speed"
# 5xx bodies by path family (CONTRACT.md §1.3): Pages 8000000, D1 7500, zones 1500.
SERVER_ERRORS: tuple[tuple[str, int, str], ...] = (
    (
        "/pages",
        8000000,
        "An unknown error occurred. Contact your account team or Cloudflare support.",
    ),
    ("/accounts/", 8000000, "An unknown error occurred."),
    ("/d1", 7500, "Internal error"),
    ("/zones/", 1500, "Internal Server Error"),
)


@dataclass(slots=True)
class _RateWindow:
    times: collections.deque[float] = field(default_factory=collections.deque)
    blocked_until: float = 0.0


class CloudflareSim(Simulated):
    """The simulator's state: stores, DNS, faults, rate windows and the call log."""

    def __init__(
        self,
        *,
        clock: VirtualClock,
        config: CloudflareConfig,
        dns: SandboxDNS | None = None,
        d1_dir: Path | None = None,
    ) -> None:
        """Build the initial world (projects from ``config.projects``, one D1 database)."""
        self.clock = clock
        self.config = config
        self.dns = dns if dns is not None else SandboxDNS(clock)
        self.faults = FaultPlan()
        self.lock = threading.RLock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if d1_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sandbox-d1-")
            d1_dir = Path(self._tmp.name)
        self.d1_dir = d1_dir
        self._initial_config = config
        self.call_log = CallLog(clock)
        self._build()

    def _build(self) -> None:
        cfg = self.config
        now = self.clock.now()
        self.ids = IdSource(cfg.seed)
        self.pages = PagesStore(
            self.ids,
            stage_seconds=cfg.stage_seconds,
            upload_jwt_ttl=cfg.upload_jwt_ttl,
            canonical_after_rollback=cfg.canonical_after_rollback,
        )
        self.fallback: dict[str, Any] | None = {
            "origin": cfg.fallback_origin,
            "status": "active",
            "errors": [],
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self.hostnames = HostnameStore(
            ids=self.ids,
            dns=self.dns,
            lifecycle=Lifecycle(
                ssl_initializing_seconds=cfg.ssl_initializing_seconds,
                ssl_issuance_seconds=cfg.ssl_issuance_seconds,
                validation_window=cfg.validation_window,
            ),
            targets={cfg.cname_target, cfg.fallback_origin},
            policy=hostname_policy(cfg),
        )
        self.d1 = D1Store(self.d1_dir)
        self.d1.create(cfg.database_id, cfg.database_name, now)
        self.rate: dict[str, _RateWindow] = {}
        self.purges: list[dict[str, Any]] = []
        self.kv = KVStore(self.ids)
        self.workers = WorkersStore(self.ids)
        self.worker_versions = VersionsStore.seeded(cfg.seed + 1, now)  # own ids: others' stay
        for name in cfg.projects:
            self.pages.create_project(name, now)

    # ---- control ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Return to the initial world: config, projects, empty D1; no faults, DNS or calls."""
        with self.lock:
            self.config = self._initial_config
            self.faults.clear()
            self.dns.clear()
            self.call_log.restart()
            self._build()
            self.d1.wipe()

    def configure(self, **overrides: Any) -> CloudflareConfig:
        """Change behaviour knobs of the running simulator; ``reset`` restores them.

        Rate limit, stage and lifecycle timings, purge limits and response variants can change.

        Raises:
            ValueError: for identity fields (ids, token, projects), which need a new simulator.
        """
        fixed = {"account_id", "zone_id", "token", "database_id", "projects", "seed"}
        if fixed & set(overrides):
            raise ValueError(f"cannot change {sorted(fixed & set(overrides))} of a running sim")
        with self.lock:
            self.config = replace(self.config, **overrides)
            cfg = self.config
            self.pages.stage_seconds = cfg.stage_seconds
            self.pages.upload_jwt_ttl = cfg.upload_jwt_ttl
            lifecycle = self.hostnames.lifecycle
            lifecycle.ssl_initializing_seconds = cfg.ssl_initializing_seconds
            lifecycle.ssl_issuance_seconds = cfg.ssl_issuance_seconds
            lifecycle.validation_window = cfg.validation_window
            self.hostnames.policy = hostname_policy(cfg)
            self.pages.canonical_after_rollback = cfg.canonical_after_rollback
            return cfg

    def add_hostname(
        self,
        hostname: str,
        *,
        ssl_method: str = "http",
        custom_origin_server: str | None = None,
        custom_metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a custom hostname directly (no HTTP, not logged): fast scenario setup."""
        body: dict[str, Any] = {"hostname": hostname, "ssl": {"method": ssl_method, "type": "dv"}}
        if custom_origin_server is not None:
            body["custom_origin_server"] = custom_origin_server
        if custom_metadata is not None:
            body["custom_metadata"] = custom_metadata
        with self.lock:
            now = self.clock.now()
            return self.hostnames.to_json(self.hostnames.create(body, now), now)

    def close(self) -> None:
        """Remove the temporary D1 directory, if the simulator made one."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def d1_path(self) -> Path:
        """The SQLite file behind the configured D1 database."""
        return self.d1.databases[self.config.database_id].path

    def create_project(self, name: str, *, production_branch: str = "main") -> dict[str, Any]:
        """Create a Pages project (ValueError when the name is invalid or taken)."""
        with self.lock:
            now = self.clock.now()
            project = self.pages.create_project(name, now, production_branch=production_branch)
            return self.pages.project_json(project, now)

    def ensure_projects(self, names: list[str]) -> None:
        """Create every project in ``names`` that does not exist yet."""
        with self.lock:
            for name in names:
                if name not in self.pages.projects:
                    self.pages.create_project(name, self.clock.now())

    def point_dns(self, hostname: str) -> None:
        """Point ``hostname``'s CNAME at the zone's CNAME target."""
        self.dns.put(hostname, cname=self.config.cname_target)

    def set_hostname_behaviour(self, hostname: str, behaviour: HostnameBehaviour | None) -> None:
        """Make ``hostname`` stick or fail (None: behave normally again)."""
        key = hostname.strip().rstrip(".").lower()
        with self.lock:
            if behaviour is None:
                self.hostnames.behaviours.pop(key, None)
            else:
                self.hostnames.behaviours[key] = behaviour

    def set_deployment_behaviour(
        self,
        behaviour: Behaviour,
        *,
        project: str | None = None,
        deployment_id: str | None = None,
        times: int = 1,
    ) -> None:
        """Apply ``behaviour`` to one deployment, or to the next ``times`` of a project.

        ``times=0`` makes it the project's default for every later deployment.
        """
        with self.lock:
            if deployment_id is not None:
                for proj in self.pages.projects.values():
                    if deployment_id in proj.deployments:
                        proj.deployments[deployment_id].behaviour = behaviour
                        return
                raise KeyError(f"no deployment {deployment_id}")
            if project is None or project not in self.pages.projects:
                raise KeyError(f"no project {project}")
            proj = self.pages.projects[project]
            if times == 0:
                proj.default_behaviour = behaviour
            else:
                proj.queued_behaviours.extend([behaviour] * times)

    def tallies(self) -> dict[str, Any]:
        """Hostnames, projects and purges, for ``/summary``."""
        return {
            "hostnames": len(self.hostnames.by_id),
            "projects": len(self.pages.projects),
            "purges": len(self.purges),
        }

    # ---- rate limit ---------------------------------------------------------------------------

    def _rate_check(self, token: str, now: float) -> Outcome | None:
        cfg = self.config
        window = self.rate.setdefault(token, _RateWindow())
        while window.times and window.times[0] <= now - cfg.rate_limit_period:
            window.times.popleft()
        if now < window.blocked_until:
            return self._rate_limited(math.ceil(window.blocked_until - now))
        if len(window.times) >= cfg.rate_limit_requests:
            window.blocked_until = now + cfg.rate_limit_block
            return self._rate_limited(math.ceil(cfg.rate_limit_block))
        window.times.append(now)
        return None

    def _rate_headers(self, token: str, now: float) -> dict[str, str]:
        cfg = self.config
        window = self.rate.get(token)
        used = len(window.times) if window else 0
        reset = (
            math.ceil(window.times[0] + cfg.rate_limit_period - now)
            if window and window.times
            else math.ceil(cfg.rate_limit_period)
        )
        return {
            "ratelimit": f'"default";r={max(cfg.rate_limit_requests - used, 0)};t={max(reset, 0)}',
            "ratelimit-policy": (
                f'"default";q={cfg.rate_limit_requests};w={math.ceil(cfg.rate_limit_period)}'
            ),
        }

    @staticmethod
    def _rate_limited(retry_after: int) -> Outcome:
        return Outcome(
            429,
            {
                "success": False,
                "errors": [{"code": RATE_LIMITED, "message": RATE_LIMIT_MESSAGE}],
                "messages": [],
                "result": None,
            },
            {"retry-after": str(max(retry_after, 1))},
        )


def _server_error(path: str, status: int) -> Outcome:
    for prefix, code, message in SERVER_ERRORS:
        if prefix in path:
            return Outcome(status, ApiError(status, code, message).body())
    return Outcome(status, ApiError(status, 1500, "Internal Server Error").body())


# ---- the rules of the request pipeline ---------------------------------------------------------


def _read_call(request: Request, raw: bytes, path: str) -> Call:
    """The request as the handlers see it: its JSON, form or multipart parts parsed once."""
    call = bare_call(request, raw, path)
    content_type = call.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        call.form, call.files, call.parts = parse_multipart(content_type, raw)
    elif raw and not content_type.startswith(("application/octet-stream", "text/plain")):
        try:
            call.json = json.loads(raw)
        except ValueError:
            call.json_error = True
    return call


def _admit(sim: CloudflareSim) -> Step:
    """Bearer token (else 401 code 10000), then the token's rate limit and its headers.

    Pages asset uploads carry their own JWT and are neither authenticated here nor counted.
    """

    def step(exchange: Exchange) -> Outcome | None:
        if exchange.call.path.startswith("/pages/assets/"):
            return None
        auth = exchange.call.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        now = sim.clock.now()
        with sim.lock:
            if token != sim.config.token:
                raise ApiError(401, AUTH_ERROR, "Authentication error")
            refused = sim._rate_check(token, now)
            exchange.headers = sim._rate_headers(token, now)
        return refused

    return step


def _crash(call: Call) -> Outcome:
    """The envelope, never a plain-text 500 (ROUTING.md §4)."""
    return _server_error(call.path, 500)


def _rules(sim: CloudflareSim) -> Rules:
    too_many = CloudflareSim._rate_limited
    return Rules(
        routes=ROUTES,
        read=_read_call,
        root=API_ROOT,
        steps=(
            _admit(sim),
            fault_step(
                sim.faults,
                too_many=too_many,
                server_error=lambda call, status, _: _server_error(call.path, status),
            ),
            unrouted_step(lambda call: no_route(call.path)),
            handle(sim, crash=_crash),
        ),
    )


def create_app(
    *,
    clock: VirtualClock,
    config: CloudflareConfig,
    dns: SandboxDNS | None = None,
    d1_dir: Path | None = None,
) -> tuple[Starlette, CloudflareSim]:
    """Build the simulator app and its state.

    Args:
        clock: the shared virtual clock.
        config: account, zone, token and behaviour knobs.
        dns: the sandbox DNS to validate hostnames against (a new one if None).
        d1_dir: where D1 SQLite files live (a temporary directory if None; see ``close``).

    Returns:
        ``(app, sim)``: serve ``app``; drive and inspect ``sim``.
    """
    sim = CloudflareSim(clock=clock, config=config, dns=dns, d1_dir=d1_dir)
    routes = [
        *control_routes(sim),
        *edge_routes(sim),
        *worker_routes(sim),
        Route(
            API_ROOT + "/{path:path}",
            api_endpoint(sim, _rules(sim)),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
    handlers = {404: not_found, 405: not_found}
    return Starlette(routes=routes, exception_handlers=handlers), sim
