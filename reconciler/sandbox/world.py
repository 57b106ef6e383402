"""The whole local world: one virtual clock, the Cloudflare and Evolution simulators, localstripe.

With ``with_workers=True`` it also runs the sandbox's edge: the zone's Worker in workerd
(:mod:`reconciler.sandbox.workerd`), reachable at :attr:`Sandbox.edge_url`.

Used by ``reconciler sandbox up`` (:mod:`reconciler.commands.sandbox`), the demo, the scenario
tests and the benchmarks. :class:`Sandbox` starts each simulator on its own loopback port
(:mod:`reconciler.sandbox.host`), starts localstripe as a separate process
(:mod:`reconciler.sandbox.localstripe`) unless told not to, moto in server mode as R2
(:mod:`reconciler.sandbox.r2`) when asked (``with_r2``: ``sandbox up`` and the demo do; tests opt
in, as it is a process start), and gives the environment variables
of :mod:`reconciler.settings` that point the reconciler at all of it
(:meth:`Sandbox.settings_env`). Every simulator shares the one :class:`VirtualClock`, so
advancing it makes time pass for the whole world.
"""

from __future__ import annotations

import importlib
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.cloudflare import (
    API_ROOT,
    TRANSITIONAL_ENTITLEMENTS,
    CloudflareConfig,
    CloudflareSim,
    create_app,
)
from reconciler.sandbox.dns import SandboxDNS
from reconciler.sandbox.host import ServerHost
from reconciler.sandbox.running import Running
from reconciler.settings import SANDBOX_CONTROL_ENV

EVOLUTION_INSTANCE = "sitebuilder"


def projects_from_specs(specs_dir: Path) -> list[str]:
    """The ``spec.pages_project`` of every ``Site`` document under ``specs_dir`` (sorted)."""
    names: set[str] = set()
    for path in sorted(specs_dir.rglob("*.y*ml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):
            continue
        for doc in documents:
            if isinstance(doc, dict) and doc.get("kind") == "Site":
                spec = doc.get("spec")
                project = spec.get("pages_project") if isinstance(spec, dict) else None
                if isinstance(project, str) and project:
                    names.add(project)
    return sorted(names)


class Sandbox(Running):
    """The composed local world; a context manager (``start`` on enter, ``stop`` on exit)."""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        with_stripe: bool = True,
        with_evolution: bool = True,
        projects: Iterable[str] = (),
        seed: int = 0,
        d1_backend: Literal["sqlite", "d1"] = "sqlite",
        clock: VirtualClock | None = None,
        cloudflare: dict[str, Any] | None = None,
        with_r2: bool = False,
        with_workers: bool = False,
    ) -> None:
        """Configure the world without starting anything.

        Args:
            state_dir: where D1 files (and other state) live; a temporary directory if None.
            with_stripe: start localstripe (a separate process; slow to start).
            with_evolution: start the Evolution API simulator.
            projects: Pages projects to create at start.
            seed: seed for ids and tokens of the Cloudflare simulator.
            d1_backend: what ``D1_BACKEND`` the settings select; both see the same SQLite file.
            clock: the shared clock (a new one if None).
            cloudflare: overrides of :class:`CloudflareConfig` fields (e.g. a tiny rate limit).
            with_r2: start moto as the R2 media bucket (a separate process).
            with_workers: start the Worker host (:mod:`reconciler.sandbox.workerd`): visitors'
                requests run the zone's Worker in workerd (needs node and ``make install``).
        """
        self.clock = clock if clock is not None else VirtualClock()
        self.dns = SandboxDNS(self.clock)
        self._state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._with_stripe = with_stripe
        self._with_evolution = with_evolution
        self._d1_backend = d1_backend
        overrides = {**TRANSITIONAL_ENTITLEMENTS, **(cloudflare or {})}
        self.cloudflare_config = CloudflareConfig.generate(seed=seed, **overrides)
        self.cloudflare_config = replace(
            self.cloudflare_config,
            projects=tuple(dict.fromkeys([*self.cloudflare_config.projects, *projects])),
        )
        self.webhook_secret = "whsec_" + secrets.token_hex(16)
        self.evolution_api_key = "sandbox-evo-" + secrets.token_hex(12)
        self.evolution_instance = EVOLUTION_INSTANCE
        self._cloudflare: CloudflareSim | None = None
        self._cf_host: ServerHost | None = None
        self.evolution: Any = None
        self._evo_host: ServerHost | None = None
        self.stripe: Any = None
        self._with_r2 = with_r2
        self.r2: Any = None  # a started sandbox.r2.LocalR2 when with_r2
        self._with_workers = with_workers
        self.edge: Any = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Start every part; on failure, stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sandbox-")
            self._state_dir = Path(self._tmp.name)
        self._state_dir.mkdir(parents=True, exist_ok=True)
        app, self._cloudflare = create_app(
            clock=self.clock,
            config=self.cloudflare_config,
            dns=self.dns,
            d1_dir=self._state_dir / "d1",
        )
        self._cf_host = ServerHost(app, name="cloudflare").start()
        if self._with_workers:
            module = importlib.import_module("reconciler.sandbox.workerd")
            base = self._cf_host.base_url
            self.edge = module.WorkerdHost(
                simulator_url=base, pages_origin=base + "/__pages/{project}"
            ).start()
        if self._with_evolution:
            self._start_evolution()
        if self._with_stripe:
            module = importlib.import_module("reconciler.sandbox.localstripe")
            self.stripe = module.LocalStripe(api_key="sk_test_sandbox_" + secrets.token_hex(8))
            self.stripe.start()
        if self._with_r2:
            module = importlib.import_module("reconciler.sandbox.r2")
            self.r2 = module.LocalR2().start()

    def _start_evolution(self) -> None:
        try:
            module = importlib.import_module("reconciler.sandbox.evolution")
        except ModuleNotFoundError:
            self._with_evolution = False
            return
        app, self.evolution = module.create_app(
            clock=self.clock, api_key=self.evolution_api_key, instance=self.evolution_instance
        )
        self._evo_host = ServerHost(app, name="evolution").start()

    def stop(self) -> None:
        """Stop every part that runs, the edge first and the Cloudflare host last (safe twice)."""
        for part in (self.edge, self.stripe, self.r2, self._evo_host, self._cf_host):
            if part is not None:
                part.stop()
        self.edge = self.stripe = self.r2 = self._evo_host = self._cf_host = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._state_dir = None

    # ---- access ---------------------------------------------------------------------------------

    @property
    def cloudflare(self) -> CloudflareSim:
        """The Cloudflare simulator's state (after ``start``)."""
        if self._cloudflare is None:
            raise RuntimeError("the sandbox is not started")
        return self._cloudflare

    def _cf_url(self, path: str) -> str:
        """``path`` on the Cloudflare simulator's host (after ``start``)."""
        if self._cf_host is None:
            raise RuntimeError("the sandbox is not started")
        return self._cf_host.base_url + path

    @property
    def cloudflare_url(self) -> str:
        """The Cloudflare API root, ``http://127.0.0.1:<port>/client/v4``."""
        return self._cf_url(API_ROOT)

    @property
    def control_url(self) -> str:
        """The Cloudflare simulator's control root, ``http://127.0.0.1:<port>/__sandbox``."""
        return self._cf_url("/__sandbox")

    @property
    def edge_url(self) -> str | None:
        """Where visitors' requests go (``Host: <customer hostname>``), or None without it."""
        return str(self.edge.base_url) if self.edge is not None else None

    @property
    def pages_sites_url(self) -> str:
        """The simulated ``https://<project>.pages.dev``, as ``…/__pages/{project}``."""
        return self._cf_url("/__pages/{project}")

    @property
    def evolution_url(self) -> str | None:
        """The Evolution API simulator's root, or None when it does not run."""
        return self._evo_host.base_url if self._evo_host is not None else None

    def ensure_projects(self, names: Iterable[str]) -> None:
        """Create the Pages projects that do not exist yet."""
        self.cloudflare.ensure_projects(list(names))

    def settings_env(self) -> dict[str, str]:
        """The environment variables of :mod:`reconciler.settings` that select this world.

        Stripe and Evolution variables are left out when those parts do not run. The control
        root (``RECONCILER_SANDBOX_CONTROL``) makes handler waits advance the virtual clock
        (``wiring.load_sleep``) and lets ``DNS_RESOLVER=sandbox`` read the sandbox DNS;
        ``DNS_CNAME_TARGET`` is the zone's CNAME target the simulator validates against.
        """
        cfg = self.cloudflare_config
        env = {
            "CLOUDFLARE_API_BASE": self.cloudflare_url,
            "CLOUDFLARE_API_TOKEN": cfg.token,
            "CLOUDFLARE_ACCOUNT_ID": cfg.account_id,
            "CLOUDFLARE_ZONE_ID": cfg.zone_id,
            "D1_BACKEND": self._d1_backend,
            SANDBOX_CONTROL_ENV: self.control_url,
            "DNS_RESOLVER": "sandbox",
            "DNS_CNAME_TARGET": cfg.cname_target,
        }
        if self._d1_backend == "d1":
            env["D1_DATABASE_ID"] = cfg.database_id
        else:
            env["D1_SQLITE_PATH"] = str(self.cloudflare.d1_path)
        if self.stripe is not None:
            env["STRIPE_API_BASE"] = str(self.stripe.base_url)
            env["STRIPE_API_KEY"] = str(self.stripe.api_key)
            env["STRIPE_WEBHOOK_SECRET"] = self.webhook_secret
        if self.r2 is not None:
            env.update(self.r2.env())
        if self._evo_host is not None:
            env["EVOLUTION_API_BASE"] = self._evo_host.base_url
            env["EVOLUTION_API_KEY"] = self.evolution_api_key
            env["EVOLUTION_INSTANCE"] = self.evolution_instance
        return env
