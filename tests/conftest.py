"""Shared fixtures: the Cloudflare API simulator on loopback, once per session.

``cloudflare_sim`` (session) serves :mod:`reconciler.sandbox.cloudflare` over real HTTP and
gives a :class:`CloudflareSandbox` handle (state, base URL, token, ids, clients). ``cf``
(function) is the same handle after a reset: initial config and projects, empty D1, no DNS,
faults or calls, the clock flowing.

``pytest_plugins`` registers the suite-wide fixtures of the ``support`` package once: the
Evolution simulator (``evolution_sim``, ``evo``, ``fake_time``, ``make_client``), localstripe
(``localstripe_server``, ``local``, ``billing`` and the Stripe stubs; started only when a test
asks for it) and D1 scratch databases (``sqlite_db``, ``migrations_copy``, ``fake_api``,
``dump``). Session-scoped fixtures registered here start once per session, however many
folders use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.cloudflare import (
    API_ROOT,
    TRANSITIONAL_ENTITLEMENTS,
    CloudflareConfig,
    CloudflareSim,
    create_app,
)
from reconciler.sandbox.host import ServerHost

pytest_plugins = ("support.d1", "support.evolution", "support.stripe")

SIM_PROJECTS = ("acme-home", "acme-shop", "bistro-menu", "lumen")


@dataclass
class CloudflareSandbox:
    """A running Cloudflare simulator and what a client needs to reach it."""

    sim: CloudflareSim
    host: ServerHost
    clock: VirtualClock

    @property
    def config(self) -> CloudflareConfig:
        """The simulator's current config."""
        return self.sim.config

    @property
    def base_url(self) -> str:
        """The API root, as ``CLOUDFLARE_API_BASE``."""
        return self.host.base_url + API_ROOT

    @property
    def control_url(self) -> str:
        """The control root ``.../__sandbox``."""
        return self.host.base_url + "/__sandbox"

    @property
    def token(self) -> str:
        """The Bearer token the simulator accepts."""
        return self.sim.config.token

    @property
    def account_id(self) -> str:
        """The account id (Pages, D1)."""
        return self.sim.config.account_id

    @property
    def zone_id(self) -> str:
        """The SaaS zone id (custom hostnames, purge)."""
        return self.sim.config.zone_id

    @property
    def database_id(self) -> str:
        """The D1 database id."""
        return self.sim.config.database_id

    def settings_env(self) -> dict[str, str]:
        """Settings env vars pointing the Cloudflare and D1 (REST) clients at the simulator."""
        return {
            "CLOUDFLARE_API_BASE": self.base_url,
            "CLOUDFLARE_API_TOKEN": self.token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "CLOUDFLARE_ZONE_ID": self.zone_id,
            "D1_BACKEND": "d1",
            "D1_DATABASE_ID": self.database_id,
        }

    def client(self, **kwargs: Any) -> httpx.Client:
        """A sync httpx client for the API with the Bearer token set."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=kwargs.pop("timeout", 30.0),
            **kwargs,
        )

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async httpx client for the API with the Bearer token set."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=kwargs.pop("timeout", 30.0),
            **kwargs,
        )

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call a control endpoint, e.g. ``control("POST", "/clock", json={"seconds": 60})``."""
        return httpx.request(method, self.control_url + path, timeout=30.0, **kwargs)

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """The call log (``seq > since``)."""
        return self.sim.calls_since(since)


@pytest.fixture(scope="session")
def cloudflare_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudflareSandbox]:
    """One Cloudflare simulator for the whole session (no localstripe)."""
    clock = VirtualClock()
    config = CloudflareConfig.generate(seed=1, projects=SIM_PROJECTS, **TRANSITIONAL_ENTITLEMENTS)
    app, sim = create_app(clock=clock, config=config, d1_dir=tmp_path_factory.mktemp("cf-d1"))
    host = ServerHost(app, name="cloudflare-test")
    host.start()
    try:
        yield CloudflareSandbox(sim=sim, host=host, clock=clock)
    finally:
        host.stop()
        sim.close()


@pytest.fixture
def cf(cloudflare_sim: CloudflareSandbox) -> CloudflareSandbox:
    """The session simulator, reset: fresh state, empty call log, clock flowing."""
    cloudflare_sim.clock.thaw()
    cloudflare_sim.sim.reset()
    return cloudflare_sim
