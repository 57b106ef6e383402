"""Fixtures of the chaos test: a started sandbox seeded with a fleet that needs work.

``chaos`` (function) starts the whole :class:`~reconciler.sandbox.world.Sandbox` (Cloudflare
and Evolution simulators, localstripe) with compressed timings: deployment stages of 0.2 s,
certificates issued within a second, and its rate limit scaled down to 300 requests per 20 s
(:data:`SIM_RATE`; the daemons' client budget is 240 per 20 s), so a window holds a few
passes' worth of requests and the client-side budget is actually exercised. It seeds the
example fleet (``specs/``) with :func:`reconciler.sandbox.seed.seed_world` (nothing published,
no hostname yet), makes two tenants' invoices past due (``acme`` 8 days: soft lock and dunning
step D7; ``lumen`` 1 day: dunning D0), and pushes the specs, pointed at the localstripe
customers, to a local bare Git remote. The virtual clock flows with real time and is never
jumped: the lease, the call log timestamps and the retry gaps all read it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from reconciler.sandbox.localstripe import LocalStripeError
from reconciler.sandbox.seed import seed_world, write_stripe_ids
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import load_directory

from support.chaos import ChaosWorld

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPECS = REPO_ROOT / "specs"
DAY = 86400.0
SIM_RATE = {"rate_limit_requests": 300, "rate_limit_period": 20.0, "rate_limit_block": 60.0}
PAST_DUE_DAYS = {"acme": 8, "lumen": 1}


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosWorld]:
    """The seeded world and the fleet's Git remote (see the module docstring)."""
    sandbox = Sandbox(
        state_dir=tmp_path / "sandbox",
        with_stripe=True,
        cloudflare={
            "stage_seconds": 0.2,
            "ssl_initializing_seconds": 0.0,
            "ssl_issuance_seconds": 0.3,
            **SIM_RATE,
        },
    )
    try:
        sandbox.start()
    except LocalStripeError as exc:
        pytest.fail(f"the sandbox could not start localstripe: {exc}")
    try:
        specs = load_directory(EXAMPLE_SPECS)
        seeded = seed_world(sandbox, specs)
        past_due: dict[str, str] = {}
        for tenant, days in PAST_DUE_DAYS.items():
            ids = seeded.stripe[tenant]
            made = sandbox.stripe.make_past_due(ids.subscription)
            assert made.invoice is not None
            sandbox.stripe.backdate_invoice(made.invoice, sandbox.clock.now() - days * DAY)
            past_due[tenant] = made.invoice

        remote = tmp_path / "remote.git"
        git.Repo.init(remote, bare=True, initial_branch="main")
        work = tmp_path / "work"
        repo = git.Repo.init(work, initial_branch="main")
        with repo.config_writer() as config:
            config.set_value("user", "name", "Chaos")
            config.set_value("user", "email", "chaos@example.invalid")
        repo.create_remote("origin", str(remote))
        shutil.copytree(EXAMPLE_SPECS, work / "specs")
        write_stripe_ids(work / "specs", specs, seeded.stripe)
        world = ChaosWorld(
            sandbox=sandbox,
            seeded=seeded,
            remote=remote,
            repo=repo,
            root=tmp_path,
            past_due=past_due,
        )
        world.commit("example fleet")
        yield world
    finally:
        sandbox.stop()
