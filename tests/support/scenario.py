"""Support for the runbook scenarios: a small fleet written as specs, and the world's records.

The scenario tests (one file per runbook of ``../shared/RUNBOOKS.md``) start from a runbook's
symptom in the sandbox and drive ``reconciler apply --yes`` in process through
:func:`reconciler.cli.main`, with the sandbox's settings in the environment and ``--now`` on
the sandbox's virtual clock (frozen: only the scenario moves it). They read the outcome from
the D1 SQLite file behind the simulated D1, the simulators' call and message logs, and the
CLI's exit code and output.

:class:`Scenario` is what the ``world`` fixture (``conftest.py``) hands each test. Specs are
written by :class:`Fleet` into a per-test directory; the Stripe customer ids come from
localstripe (it draws its own ids): the world is seeded with
:func:`reconciler.sandbox.seed.seed_world` and the specs then point at the customers it made.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.cli import main
from reconciler.sandbox.seed import seed_world
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import load_directory

DAY = 86400.0
REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO_ROOT / "migrations"
PHONE = "+5511912345678"
UPLOAD_ROUTE = "/pages/projects/{project_name}/deployments"

SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "pages": [
        {"path": "/", "title": "Home", "blocks": [{"type": "hero", "heading": "Fresh bread"}]}
    ],
}

STANDARD_POLICY: dict[str, Any] = {
    "grace_days": 7,
    "hard_lock_days": 21,
    "dunning": [
        {"code": "D0", "day": 0, "template": "payment-failed"},
        {"code": "D3", "day": 3, "template": "reminder"},
        {"code": "D7", "day": 7, "template": "soft-locked"},
        {"code": "D21", "day": 21, "template": "hard-locked"},
    ],
    "templates": {
        "payment-failed": "Hi {tenant_name}, we could not charge {amount_due} for invoice "
        "{invoice_id}. Please update your card: {invoice_url}",
        "reminder": "{tenant_name}, invoice {invoice_id} is {days_past_due} days past due.",
        "soft-locked": "{tenant_name}, editing is paused until invoice {invoice_id} is paid.",
        "hard-locked": "{tenant_name}, your sites are suspended: invoice {invoice_id} is unpaid.",
    },
    "performance_budget": {"max_js_kb": 300, "max_css_kb": 100, "max_third_party_scripts": 3},
    "domains": {"validation_timeout": "24h", "ssl_timeout": "12h", "max_recreates": 2},
    "suspension_origin": "suspended.sitebuilder.app",
}


def snapshot(*blocks: Mapping[str, Any], title: str = "Home") -> str:
    """A content_json with one page holding ``blocks`` (a hero when none are given)."""
    content = deepcopy(SNAPSHOT)
    page = content["pages"][0]
    page["title"] = title
    if blocks:
        page["blocks"] = [dict(b) for b in blocks]
    return json.dumps(content)


@dataclass
class Fleet:
    """Specs written as YAML files under ``root``: one policy, tenants and sites."""

    root: Path
    policy: dict[str, Any] = field(default_factory=lambda: deepcopy(STANDARD_POLICY))
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind: Worker specs

    def tenant(self, name: str, *, customer: str, phone: str = PHONE, **extra: Any) -> None:
        """Declare a tenant on the ``standard`` policy."""
        self.tenants[name] = {
            "display_name": name.title(),
            "policy": "standard",
            "stripe": {"customer": customer},
            "whatsapp": phone,
            **extra,
        }

    def site(
        self,
        name: str,
        *,
        tenant: str,
        version: int,
        domains: Iterable[str] = (),
        **extra: Any,
    ) -> None:
        """Declare a site (its Pages project has the site's name)."""
        self.sites[name] = {
            "tenant": tenant,
            "pages_project": name,
            "production": {"version": version},
            "domains": [{"hostname": d} for d in domains],
            **extra,
        }

    def write(self) -> Path:
        """Write every document (replacing earlier files) and return the directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.glob("*.yaml"):
            old.unlink()
        docs = [("policy-standard", "BillingPolicy", "standard", self.policy)]
        docs += [(f"tenant-{n}", "Tenant", n, s) for n, s in self.tenants.items()]
        docs += [(f"site-{n}", "Site", n, s) for n, s in self.sites.items()]
        docs += [(f"worker-{n}", "Worker", n, s) for n, s in self.workers.items()]
        for filename, kind, name, spec in docs:
            document = {
                "apiVersion": "sitebuilder/v1",
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec,
            }
            (self.root / f"{filename}.yaml").write_text(
                yaml.safe_dump(document, sort_keys=False), encoding="utf-8"
            )
        return self.root


@dataclass(frozen=True)
class Billing:
    """What :meth:`Scenario.customer` created in localstripe."""

    customer: str
    subscription: str
    invoice: str | None


@dataclass(frozen=True)
class Run:
    """One CLI invocation: exit code and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        """stdout parsed as JSON (for ``--format json``)."""
        parsed: dict[str, Any] = json.loads(self.out)
        return parsed


@dataclass
class Scenario:
    """The running sandbox, this test's specs, and readers of every record the runbooks use."""

    sandbox: Sandbox
    fleet: Fleet

    # ---- driving -----------------------------------------------------------------------------

    def now(self) -> float:
        """The virtual clock (frozen; only :meth:`advance` moves it)."""
        return self.sandbox.clock.now()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass for the whole world."""
        self.sandbox.clock.advance(seconds)

    def cli(self, *args: str) -> Run:
        """Run ``reconciler <args>`` in process, capturing stdout and stderr."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return Run(code, out.getvalue(), err.getvalue())

    def apply(self, *args: str) -> Run:
        """``reconciler apply --yes`` on this test's specs at the virtual now."""
        specs = self.fleet.write()
        return self.cli(
            "apply", "--yes", "--color", "never", "--now", repr(self.now()),
            "--specs", str(specs), *args,
        )  # fmt: skip

    def lever(self, verb: str, *args: str, confirm: bool = True) -> Run:
        """A manual verb (``reconciler purge acme-home --yes``) on this test's specs at now."""
        specs = self.fleet.write()
        yes = ("--yes",) if confirm else ()
        return self.cli(
            verb, *args, *yes, "--color", "never", "--now", repr(self.now()),
            "--specs", str(specs),
        )  # fmt: skip

    def plan(self, *args: str) -> Run:
        """``reconciler plan`` on this test's specs at the virtual now."""
        specs = self.fleet.write()
        return self.cli(
            "plan", "--color", "never", "--now", repr(self.now()), "--specs", str(specs), *args
        )

    def converge(self, *, passes: int = 4) -> Run:
        """Apply until an apply has nothing to do (at most ``passes`` runs); the last run."""
        run = self.apply()
        for _ in range(passes - 1):
            if "nothing to do" in run.out:
                break
            run = self.apply()
        return run

    # ---- setting the scene -------------------------------------------------------------------

    def seed(self, *, unpointed: Iterable[str] = ()) -> dict[str, Billing]:
        """Seed the declared fleet with :func:`reconciler.sandbox.seed.seed_world`.

        D1 gets tenants, sites and content versions, Cloudflare the Pages projects and the
        DNS of every domain but ``unpointed``, localstripe a paying customer per tenant; the
        specs are then pointed at the customers localstripe created.
        """
        specs = load_directory(self.fleet.write())
        seeded = seed_world(self.sandbox, specs, unpointed=tuple(unpointed))
        billing: dict[str, Billing] = {}
        for tenant, ids in seeded.stripe.items():
            self.fleet.tenants[tenant]["stripe"] = {
                "customer": ids.customer,
                "subscription": ids.subscription,
            }
            billing[tenant] = Billing(ids.customer, ids.subscription, ids.invoice)
        return billing

    def fail_payment(self, billing: Billing) -> Billing:
        """The next payment of ``billing``'s subscription is declined: a new ``open`` invoice
        (aged from the virtual now: localstripe has no clock) and a ``past_due`` subscription."""
        local = self.sandbox.stripe
        seeded = local.make_past_due(billing.subscription)
        assert seeded.invoice is not None and seeded.invoice != billing.invoice
        local.backdate_invoice(seeded.invoice, self.now())
        return Billing(billing.customer, billing.subscription, seeded.invoice)

    def pay(self, billing: Billing) -> None:
        """The tenant pays its open invoice in Stripe (no webhook is delivered anywhere)."""
        assert billing.invoice is not None
        assert self.sandbox.stripe.pay_invoice(billing.invoice) == "paid"

    def tenant_with_site(
        self,
        tenant: str = "acme",
        site: str = "acme-home",
        *,
        version: int = 1,
        domains: Iterable[str] = ("www.acme.test",),
        failing: bool = False,
        phone: str = PHONE,
        pointed: bool = True,
    ) -> Billing:
        """Declare one tenant and its site, seed the world for them (:meth:`seed`).

        With ``failing`` the tenant's latest payment is declined (:meth:`fail_payment`).
        """
        domains = list(domains)
        self.fleet.tenant(tenant, customer="cus_unseeded", phone=phone)
        self.fleet.site(site, tenant=tenant, version=version, domains=domains)
        billing = self.seed(unpointed=() if pointed else domains)[tenant]
        return self.fail_payment(billing) if failing else billing

    def settle(self) -> Run:
        """Apply, let the hostnames validate (ten virtual minutes), and apply until quiet."""
        first = self.apply()
        assert first.code in (0, 1, 3), first.err
        self.advance(600)
        return self.converge()

    # ---- D1 ----------------------------------------------------------------------------------

    @property
    def d1_path(self) -> Path:
        """The SQLite file behind the simulated D1 database."""
        return self.sandbox.cloudflare.d1_path

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a query on D1, as dicts."""
        connection = sqlite3.connect(self.d1_path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql, params)]
        finally:
            connection.close()

    def execute(self, sql: str, *params: Any) -> None:
        """Write to D1 directly (what the site editor does: content versions)."""
        connection = sqlite3.connect(self.d1_path)
        try:
            with connection:
                connection.execute(sql, params)
        finally:
            connection.close()

    def put_content(self, site: str, version: int, content: str) -> None:
        """Store (or replace) a content snapshot, as the site editor would."""
        self.execute(
            "INSERT OR REPLACE INTO site_versions (site_id, version_number, content_json) "
            "VALUES (?, ?, ?)",
            site,
            version,
            content,
        )

    def publishes(self, site: str) -> list[dict[str, Any]]:
        """``publish_versions`` rows of a site, oldest first (runbook 1's query)."""
        return self.rows("SELECT * FROM publish_versions WHERE site_id = ? ORDER BY id", site)

    def domain(self, hostname: str) -> dict[str, Any]:
        """The ``domains`` row of a hostname (runbook 2's query)."""
        [row] = self.rows("SELECT * FROM domains WHERE domain = ?", hostname)
        return row

    def tenant_status(self, tenant: str) -> str:
        """``tenants.status`` (active, soft_locked, hard_locked)."""
        [row] = self.rows("SELECT status FROM tenants WHERE id = ?", tenant)
        return str(row["status"])

    def dunning_logs(self) -> list[dict[str, Any]]:
        """Every ``dunning_step_logs`` row (runbook 3 and 8's query)."""
        return self.rows("SELECT * FROM dunning_step_logs ORDER BY id")

    # ---- simulators --------------------------------------------------------------------------

    def cf_seq(self) -> int:
        """The Cloudflare call log's latest sequence number (a mark for :meth:`cf_calls`)."""
        calls = self.sandbox.cloudflare.calls_since(0)
        return int(calls[-1]["seq"]) if calls else 0

    def cf_calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Cloudflare API calls after the mark ``since``."""
        return self.sandbox.cloudflare.calls_since(since)

    def messages(self) -> list[dict[str, Any]]:
        """Every WhatsApp message the Evolution simulator accepted."""
        messages: list[dict[str, Any]] = self.sandbox.evolution.messages_since(0)
        return messages

    def hostname(self, name: str) -> dict[str, Any] | None:
        """The simulator's custom hostname named ``name`` as the API shows it now, or None."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            return sim.hostnames.shown(name, self.now())

    def route(self, name: str) -> dict[str, Any] | None:
        """The routing-table entry of ``name`` as the dispatch Worker reads it, or None."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            for namespace in sim.kv.namespaces.values():
                if namespace.title == "sitebuilder-routes" and name in namespace.entries:
                    entry: dict[str, Any] = json.loads(namespace.entries[name].value)
                    return entry
            return None

    def hostnames(self) -> list[str]:
        """Every custom hostname in the simulated zone (duplicates would show twice)."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            return sorted(h.hostname for h in sim.hostnames.by_id.values())

    def deployments(self, project: str) -> list[Any]:
        """The simulator's deployments of a Pages project, oldest first."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            return list(sim.pages.projects[project].deployments.values())

    def live_deployment(self, project: str) -> Any:
        """The deployment serving production in the simulator."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            return sim.pages.projects[project].live(sim.clock.now())


def uploads(calls: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Deployment uploads (``POST .../deployments``) in a call log."""
    return [c for c in calls if c["method"] == "POST" and str(c["route"]).endswith(UPLOAD_ROUTE)]


def purges(calls: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Cache purges in a call log."""
    return [c for c in calls if c["method"] == "POST" and str(c["path"]).endswith("/purge_cache")]


def writes(calls: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Calls that change the world (anything but GET; D1 queries excluded)."""
    return [c for c in calls if c["method"] != "GET" and "/d1/" not in str(c["path"])]
