"""The crash-test world: a small fleet that needs every kind of write, and a CLI runner.

Used by ``tests/crash/test_crash_apply.py`` and ``tests/crash/test_second_apply_is_read_only.py``.
One :class:`CrashWorld` per test module (``crash_world``): the Cloudflare and Evolution
simulators run on loopback in this process (so they outlive a killed ``apply``), localstripe
runs as its own process, and ``reconciler apply`` / ``reconciler plan`` run as subprocesses of
the venv's Python (:meth:`CrashWorld.cli`) with the sandbox's settings and ``--now`` from its
virtual clock. :meth:`CrashWorld.reset` puts the simulators and D1 back into the starting
state between cases: :func:`reconciler.sandbox.seed.seed_world` (tenants, sites, content
snapshots, Pages projects, DNS) plus the drift below. localstripe is seeded once per module
(the reconciler only reads it): seed_world's customers, each subscription then made past due.

The starting state needs, in one apply (about a dozen actions):

- tenant ``alpha``: an open invoice created today (dunning step ``D0`` due), its site
  ``alpha-home`` never published (a production publish of v1 and a preview publish of v2),
  ``www.alpha.test`` missing from the zone (its routing entry written, then the create) and
  ``shop.alpha.test`` ours but routed to the wrong site by the routing table (a routing write);
- tenant ``bravo``: an open invoice four days old (step ``D3`` due, ``D0`` superseded), its
  site ``bravo-home`` live at v2 in D1 and Pages while the spec asks for v1, whose successful
  deployment still exists (rollback), ``www.bravo.test`` failed (validation timed out a week
  ago: recreate) and ``old.bravo.test`` ours but no longer in the spec (delete, and its
  routing entry removed);
- both tenants' billing not yet mirrored in D1 (two billing syncs).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.cloudflare_models import DeploymentTag
from reconciler.runtime.checkpoints import CRASH_ENV
from reconciler.sandbox.cloudflare_kv import Entry
from reconciler.sandbox.localstripe import LocalStripe, LocalStripeError
from reconciler.sandbox.seed import Seeded, seed_world, write_stripe_ids
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import load_directory

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400.0
CLI_TIMEOUT = 180.0  # seconds one CLI run may take on a loaded 2-core machine

ALPHA_PHONE = "+5511912345678"
BRAVO_PHONE = "+14155550123"
PROJECTS = ("alpha-home", "bravo-home")
DECLARED = ("www.alpha.test", "shop.alpha.test", "www.bravo.test")
ROUTES_NAMESPACE = "sitebuilder-routes"
BRAVO = {"action": "serve", "project": "bravo-home", "site": "bravo-home", "tenant": "bravo"}
SERVED = {  # what every declared hostname must be routed to once converged
    "www.alpha.test": {
        "action": "serve",
        "project": "alpha-home",
        "site": "alpha-home",
        "tenant": "alpha",
    },
    "shop.alpha.test": {
        "action": "serve",
        "project": "alpha-home",
        "site": "alpha-home",
        "tenant": "alpha",
    },
    "www.bravo.test": BRAVO,
}
UNPOINTED = ("www.bravo.test",)  # its customer never set DNS: validation times out
# Tables a converged second apply must leave byte-for-byte alone.
APP_TABLES = (
    "tenants",
    "billing_accounts",
    "subscriptions",
    "invoices",
    "dunning_step_logs",
    "sites",
    "site_versions",
    "publish_versions",
    "domains",
    "performance_budgets",
)

POLICY = """\
apiVersion: sitebuilder/v1
kind: BillingPolicy
metadata:
  name: crash
spec:
  grace_days: 7
  hard_lock_days: 21
  dunning:
    - {code: D0, day: 0, template: failed}
    - {code: D3, day: 3, template: reminder}
  templates:
    failed: "Hi {tenant_name}, invoice {invoice_id} failed: {invoice_url}"
    reminder: "{tenant_name}, invoice {invoice_id} is still open: {invoice_url}"
  performance_budget: {max_js_kb: 600, max_css_kb: 200, max_third_party_scripts: 6}
  domains: {validation_timeout: 24h, ssl_timeout: 12h, max_recreates: 3}
  suspension_origin: suspended.sitebuilder.app
"""

TENANT = """\
apiVersion: sitebuilder/v1
kind: Tenant
metadata:
  name: {name}
spec:
  display_name: {display}
  policy: crash
  stripe: {{customer: {customer}, subscription: {subscription}}}
  whatsapp: "{phone}"
"""

SITE = """\
apiVersion: sitebuilder/v1
kind: Site
metadata:
  name: {name}
spec:
  tenant: {tenant}
  pages_project: {name}
  production: {{version: 1}}
{preview}  domains:
{domains}  deletion_policy: delete
"""


@dataclass
class Run:
    """One finished CLI subprocess."""

    args: tuple[str, ...]
    crash_at: str | None
    code: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """Everything a failing assertion should show."""
        return (
            f"reconciler {' '.join(self.args)} (crash at {self.crash_at}) exited {self.code}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


@dataclass
class CrashWorld:
    """The running sandbox, the specs written for it and the starting state to reset to."""

    sandbox: Sandbox
    stripe: LocalStripe
    specs: Path
    invoices: dict[str, str]  # tenant -> open invoice id
    base_env: dict[str, str] = field(default_factory=dict)

    @property
    def d1_path(self) -> Path:
        """The SQLite file behind the sandbox's D1."""
        return self.sandbox.cloudflare.d1_path

    # ---- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the starting state: simulators reset, D1 and DNS seeded, the zone seeded."""
        sim = self.sandbox.cloudflare
        sim.reset()
        self.sandbox.evolution.reset()
        # Stripe keeps its module-long seed (the reconciler only reads it): hide it from
        # seed_world, which would otherwise create new customers.
        stripe, self.sandbox.stripe = self.sandbox.stripe, None
        try:
            seed_world(self.sandbox, load_directory(self.specs), unpointed=UNPOINTED)
        finally:
            self.sandbox.stripe = stripe
        self._seed_zone()
        self.sandbox.clock.advance(5)  # the seeded deployments are in the past
        sim.clear_calls()
        self.sandbox.evolution.clear_calls()

    def _seed_zone(self) -> None:
        sim = self.sandbox.cloudflare
        clock = self.sandbox.clock
        # hostnames as an ordinary account holds them: no origin, no metadata; ours by D1
        # routing drift: ours, DNS right (seed_world pointed it), but routed to bravo's site
        sim.add_hostname("shop.alpha.test")
        # recreate: ours, DNS never pointed, created a week ago: validation timed out
        made = sim.add_hostname("www.bravo.test")
        with sim.lock:
            stale = sim.hostnames.by_id[made["id"]]
            stale.created -= 8 * DAY
            stale.anchor -= 8 * DAY
        # delete: ours, in the zone, no longer in the spec (seed_world points declared names)
        sim.point_dns("old.bravo.test")
        sim.add_hostname("old.bravo.test")
        table = sim.kv.create(ROUTES_NAMESPACE)
        for name in ("shop.alpha.test", "www.bravo.test", "old.bravo.test"):
            sim.kv.put(table, name, Entry(value=json.dumps(BRAVO).encode(), metadata=BRAVO))
        # rollback: v1 and v2 deployed, v2 live in Pages and in D1, the spec wants v1
        deployments = {}
        for version in (1, 2):
            deployments[version] = _deploy(sim, "bravo-home", site="bravo-home", version=version)
            clock.advance(1)
        ids = {h.hostname: h.id for h in self.hostnames()}
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now()))
        connection = sqlite3.connect(self.d1_path)
        try:
            with connection:
                # what earlier passes recorded about the hostnames already in the zone
                for name, site, tenant, status in (
                    ("shop.alpha.test", "alpha-home", "alpha", "active"),
                    ("www.bravo.test", "bravo-home", "bravo", "failed"),
                    ("old.bravo.test", "bravo-home", "bravo", "active"),
                ):
                    connection.execute(
                        "INSERT INTO domains (id, site_id, tenant_id, domain, status, "
                        "custom_hostname_id, status_since) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (f"dom_{name}", site, tenant, name, status, ids[name], since),
                    )
                for version, status in ((1, "superseded"), (2, "live")):
                    connection.execute(
                        "INSERT INTO publish_versions (site_id, version_number, environment, "
                        "status, deployment_id, completed_at) "
                        "VALUES ('bravo-home', ?, 'production', ?, ?, '2026-01-01T00:00:00Z')",
                        (version, status, deployments[version]),
                    )
        finally:
            connection.close()

    # ---- running the CLI -----------------------------------------------------------------

    def cli(self, *args: str, crash_at: str | None = None) -> Run:
        """Run ``python -m reconciler <args> --specs <specs> --now <virtual now>``.

        Args:
            args: the subcommand and its options.
            crash_at: ``RECONCILER_CRASH_AT`` for this run (None: no fault injection).
        """
        env = {**self.base_env, **self.sandbox.settings_env()}
        env.pop(CRASH_ENV, None)
        if crash_at is not None:
            env[CRASH_ENV] = crash_at
        full = (*args, "--specs", str(self.specs), "--now", repr(self.sandbox.clock.now()))
        result = subprocess.run(
            [python(), "-m", "reconciler", *full],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        return Run(full, crash_at, result.returncode, result.stdout, result.stderr)

    def apply(self, *, crash_at: str | None = None) -> Run:
        """``reconciler apply --yes --color never``."""
        return self.cli("apply", "--yes", "--color", "never", crash_at=crash_at)

    def plan(self) -> Run:
        """``reconciler plan --color never``."""
        return self.cli("plan", "--color", "never")

    # ---- reading the world ---------------------------------------------------------------

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a query on the D1 file, as dicts."""
        connection = sqlite3.connect(self.d1_path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql, params)]
        finally:
            connection.close()

    def dump(self, tables: tuple[str, ...] = APP_TABLES) -> dict[str, list[dict[str, Any]]]:
        """Every row of ``tables``, in rowid order."""
        return {table: self.rows(f"SELECT * FROM {table} ORDER BY rowid") for table in tables}

    def deployments(self) -> list[SimDeployment]:
        """Every Pages deployment in the simulator, with its tag and whether it succeeded."""
        sim = self.sandbox.cloudflare
        found = []
        with sim.lock:
            now = sim.clock.now()
            for name, project in sorted(sim.pages.projects.items()):
                live = project.live(now)
                for dep in project.deployments.values():
                    found.append(
                        SimDeployment(
                            id=dep.id,
                            project=name,
                            environment=dep.environment,
                            tag=DeploymentTag.parse(dep.commit_message),
                            succeeded=dep.is_success(now),
                            live=live is not None and live.id == dep.id,
                        )
                    )
        return found

    def hostnames(self) -> list[SimHostname]:
        """Every custom hostname in the simulator's zone; ``owned``: D1 records its id."""
        recorded = {
            row["domain"]: row["custom_hostname_id"]
            for row in self.rows("SELECT domain, custom_hostname_id FROM domains")
        }
        sim = self.sandbox.cloudflare
        with sim.lock:
            return [
                SimHostname(
                    id=h.id,
                    hostname=h.hostname,
                    owned=recorded.get(h.hostname) == h.id,
                    origin=h.custom_origin_server,
                )
                for h in sim.hostnames.by_id.values()
            ]

    def routes(self) -> dict[str, dict[str, Any]]:
        """The routing table as the dispatch Worker reads it: hostname -> entry."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            for namespace in sim.kv.namespaces.values():
                if namespace.title == ROUTES_NAMESPACE:
                    return {k: json.loads(e.value) for k, e in namespace.entries.items()}
        return {}


@dataclass(frozen=True)
class SimDeployment:
    """One deployment as the Pages simulator holds it."""

    id: str
    project: str
    environment: str
    tag: DeploymentTag | None
    succeeded: bool
    live: bool


@dataclass(frozen=True)
class SimHostname:
    """One custom hostname as the simulator holds it."""

    id: str
    hostname: str
    owned: bool
    origin: str | None


def python() -> str:
    """The venv's interpreter (the one running the tests when there is no .venv)."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _deploy(sim: Any, project: str, *, site: str, version: int) -> str:
    """A tagged production deployment of ``site`` at ``version`` (no HTTP, not logged)."""
    tag = DeploymentTag(site=site, version=version, publish=f"seed{version:08d}")
    with sim.lock:
        pages_project = sim.pages.project(project)
        form = {
            "manifest": "{}",
            "branch": pages_project.production_branch,
            "commit_message": tag.commit_message(),
        }
        deployment_id: str = sim.pages.create_deployment(
            pages_project, form, [], sim.clock.now()
        ).id
        return deployment_id


def _write_specs(root: Path) -> None:
    (root / "policies").mkdir(parents=True)
    (root / "tenants").mkdir()
    (root / "sites").mkdir()
    (root / "policies" / "crash.yaml").write_text(POLICY, encoding="utf-8")
    for name, display, phone in (
        ("alpha", "Alpha Bakery", ALPHA_PHONE),
        ("bravo", "Bravo Bistro", BRAVO_PHONE),
    ):
        (root / "tenants" / f"{name}.yaml").write_text(
            TENANT.format(
                name=name,
                display=display,
                customer=f"cus_{name}",  # seed_world's localstripe ids replace these
                subscription=f"sub_{name}",
                phone=phone,
            ),
            encoding="utf-8",
        )
    (root / "sites" / "alpha-home.yaml").write_text(
        SITE.format(
            name="alpha-home",
            tenant="alpha",
            preview="  preview: {version: 2}\n",
            domains="    - hostname: www.alpha.test\n    - hostname: shop.alpha.test\n",
        ),
        encoding="utf-8",
    )
    (root / "sites" / "bravo-home.yaml").write_text(
        SITE.format(
            name="bravo-home",
            tenant="bravo",
            preview="",
            domains="    - hostname: www.bravo.test\n",
        ),
        encoding="utf-8",
    )


def _open_invoices(stripe: LocalStripe, seeded: Seeded, now: float) -> dict[str, str]:
    """Each tenant's subscription made past due: a declined renewal, one open invoice."""
    invoices: dict[str, str] = {}
    for tenant, age_days in (("alpha", 0), ("bravo", 4)):
        past_due = stripe.make_past_due(seeded.stripe[tenant].subscription)
        assert past_due.invoice is not None, f"localstripe made no open invoice for {tenant}"
        if age_days:
            stripe.backdate_invoice(past_due.invoice, now - age_days * DAY - 3600)
        invoices[tenant] = past_due.invoice
    return invoices


@pytest.fixture(scope="module")
def crash_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashWorld]:
    """One sandbox (simulators + localstripe) per test module, in its starting state."""
    state = tmp_path_factory.mktemp("crash-sandbox")
    sandbox = Sandbox(
        state_dir=state / "state",
        with_stripe=False,
        projects=PROJECTS,
        cloudflare={"stage_seconds": 0.0},
    )
    stripe = LocalStripe(api_key="sk_test_crash_" + os.urandom(6).hex(), startup_timeout=60.0)
    with sandbox:
        try:
            stripe.start()
        except LocalStripeError as exc:
            pytest.fail(f"localstripe could not be started: {exc}")
        try:
            sandbox.stripe = stripe  # settings_env() points the CLI at it
            specs = state / "specs"
            _write_specs(specs)
            seeded = seed_world(sandbox, load_directory(specs), unpointed=UNPOINTED)
            write_stripe_ids(specs, load_directory(specs), seeded.stripe)
            invoices = _open_invoices(stripe, seeded, sandbox.clock.now())
            base_env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("CLOUDFLARE_", "D1_", "STRIPE_", "EVOLUTION_"))
                and key != CRASH_ENV
            }
            world = CrashWorld(sandbox, stripe, specs, invoices, base_env)
            world.reset()
            yield world
        finally:
            sandbox.stripe = None
            stripe.stop()
