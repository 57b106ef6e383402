"""``make demo``: the reconciler's main job, told as a story against the local sandbox.

Run as ``python -m reconciler.demo [SPECS_DIR] [--summary-only] [--keep]``. Chapter 1 validates
the example fleet (:func:`reconciler.spec.load.load_directory`) and prints its desired state
(:func:`summarize`); ``--summary-only`` stops there. The story then runs everything in this
process, with no account anywhere and nothing beyond 127.0.0.1:

- :class:`reconciler.sandbox.world.Sandbox` (Cloudflare and Evolution API simulators,
  localstripe) on a virtual clock that starts at a fixed instant;
- ``reconciler migrate`` and :func:`reconciler.sandbox.seed.seed_world` (D1 sites and content
  snapshots, Pages projects, DNS, localstripe customers);
- a Git working copy of the specs in a temporary directory under ``.demo/`` (localstripe
  picks its own customer ids, so they are written into that copy before the first commit);
- the real CLI, :func:`reconciler.cli.main`, in process, with the sandbox's settings in the
  environment (plus ``RECONCILER_SANDBOX_CONTROL``, so waits for deployments move the virtual
  clock instead of taking real seconds) and ``--now`` set to the virtual time.

The chapters: converge from scratch; publish a version bump; ``git revert`` it (a rollback to
the earlier deployment, no build); a tenant's payment fails (dunning, soft lock, hard lock,
payment, unlock) as days pass; a domain stuck pending (retry, recreations, Stuck) recovers
when its DNS is pointed; the sites' photos (originals in R2, moto) are served as AVIF and
WebP ``<picture>``s, ``optimize-site`` shows the bytes saved, and removing a script from a Site
republishes it with that as the reason. Each chapter ends with one line saying what converged,
read from the world itself, and a chapter whose world does not look as told makes the demo exit 1.
docs/demo.md describes the story.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from reconciler.cli import main as cli_main
from reconciler.core.routing import ROUTE_SUSPEND, parse_route
from reconciler.demo_platform import api_worker_chapter, restore_point_chapter
from reconciler.demo_visit import visit
from reconciler.errors import LoadError, SpecError
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.seed import MIGRATIONS, Seeded, seed_world, write_stripe_ids
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs, load_directory
from reconciler.spec.models import Access, format_duration
from reconciler.wiring import SANDBOX_CONTROL_ENV

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
"""Where the demo's virtual clock starts: Monday 2 March 2026, 09:00 UTC."""

DAY = 86400.0
HOUR = 3600.0
VALIDATION_WINDOW = 36 * HOUR
"""The simulated Cloudflare gives up validating a hostname 36 h after its last (re)trigger
(real Cloudflare: about 7 days), so the domain chapter reaches "timed out" in a few steps."""

BUMPED_SITE = "acme-home"
MEDIA_SITE = "acme-home"  # chapter 8: its photos, and the script removed from its spec
BILLING_TENANT = "lumen"
STUCK_SITE = "acme-shop"
STUCK_HOSTNAME = "order.acmebakery.com"
VISITED = "www.acmebakery.com"  # the visitor of chapters 3 to 5
DELETED_HOSTNAME = "shop.acmebakery.com"  # removed in chapter 8


def summarize(specs: Specs) -> str:
    """Render the desired state as text, grouped by policy, tenant and site."""
    return "\n".join([*_policies(specs), "", *_tenants(specs), "", *_sites(specs)])


def _policies(specs: Specs) -> list[str]:
    lines = ["Billing policies"]
    for name, policy in specs.policies.items():
        spec = policy.spec
        steps = " -> ".join(f"{step.code} day {step.day}" for step in spec.dunning) or "none"
        budget = spec.performance_budget
        lines.append(
            f"  {name}: soft lock after {spec.grace_days} days, hard lock after "
            f"{spec.hard_lock_days} days past due"
        )
        lines.append(f"    dunning: {steps}")
        lines.append(
            f"    budget: {budget.max_js_kb} KB JS, {budget.max_css_kb} KB CSS, "
            f"{budget.max_third_party_scripts} third-party scripts; domains validate within "
            f"{format_duration(spec.domains.validation_timeout)}"
        )
    return lines


def _tenants(specs: Specs) -> list[str]:
    lines = ["Tenants"]
    for name, tenant in specs.tenants.items():
        spec = tenant.spec
        access = (
            f"access {spec.access.value} (manual override: {spec.access_reason})"
            if spec.access is not Access.AUTO
            else "access follows the policy"
        )
        lines.append(
            f"  {name}: {spec.display_name}, policy {spec.policy}, Stripe {spec.stripe.customer}, "
            f"WhatsApp {spec.whatsapp}"
        )
        lines.append(f"    {access}")
    return lines


def _sites(specs: Specs) -> list[str]:
    lines = ["Sites"]
    for name, site in specs.sites.items():
        spec = site.spec
        versions = f"production v{spec.production.version}"
        if spec.preview is not None:
            versions += f", preview v{spec.preview.version}"
        lines.append(
            f"  {name} (tenant {spec.tenant}, Pages project {spec.pages_project}): {versions}"
        )
        for domain in spec.domains:
            canonical = domain.canonical
            shown = (
                domain.hostname
                if canonical == domain.hostname
                else (f"{domain.hostname} ({canonical})")
            )
            lines.append(f"    https://{shown}  ssl {domain.ssl.method.value}")
        if spec.scripts:
            lines.append(f"    {len(spec.scripts)} third-party script(s)")
        lines.append(f"    removed from Git: {spec.deletion_policy.value}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the specs and print the summary, then tell the story; 0 when all went as told.

    Args:
        argv: ``[SPECS_DIR] [--summary-only] [--keep]`` (default ``specs``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    summary_only = "--summary-only" in args
    keep = "--keep" in args
    positional = [a for a in args if not a.startswith("--")]
    root = Path(positional[0]) if positional else Path("specs")
    chapter(1, "The desired state")
    print(f"$ reconciler validate {root}/")
    try:
        specs = load_directory(root)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem.render())
        return 1
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{root}/ is valid: {specs.summary()}")
    print()
    print(summarize(specs))
    if summary_only:
        return 0
    converged(f"the specs are valid: {specs.summary()}")
    started = time.monotonic()
    try:
        ok = Story(root, specs, keep=keep).tell()
    except DemoError as exc:
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        return 1
    print(f"\nThe story took {time.monotonic() - started:.1f}s of real time.")
    return 0 if ok else 1


class DemoError(RuntimeError):
    """The world did not do what the story says it does."""


def chapter(number: int, title: str) -> None:
    """Print a chapter heading."""
    print()
    line = f"== Chapter {number}: {title} "
    print(line + "=" * max(0, 78 - len(line)))
    print()


def converged(text: str) -> None:
    """Print the one line that ends a chapter."""
    print()
    print(f">> Converged: {text}")


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Point the in-process CLI at the sandbox (the settings are read from the environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Story:
    """The sandbox, the Git working copy of the specs, and the chapters told against them."""

    def __init__(self, root: Path, specs: Specs, *, keep: bool = False) -> None:
        """Prepare the story for the specs in ``root`` (already validated as ``specs``)."""
        self.root = root
        self.specs = specs
        self.keep = keep
        self.clock = VirtualClock(start=START)
        self.sandbox: Sandbox
        self.work: Path
        self.fleet: Path
        self.repo: git.Repo
        self.seeded: Seeded
        self.messages_seen = 0

    # ---- running the CLI ----------------------------------------------------------------------

    def cli(self, *argv: str, timed: bool = True, skip_plan: bool = False) -> int:
        """Run ``reconciler *argv`` in process, print its output, return its exit code.

        ``timed`` adds ``--now <virtual time>``; ``skip_plan`` leaves out the plan an ``apply``
        prints before executing (when the same plan was just shown).
        """
        shown = " ".join(a if a != str(self.fleet) else "$FLEET" for a in argv)
        print(f"$ reconciler {shown}")
        full = [*argv, "--now", repr(self.clock.now())] if timed else list(argv)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = cli_main(full)
        text = buffer.getvalue()
        if skip_plan:
            lines = text.splitlines(keepends=True)
            first = next((i for i, line in enumerate(lines) if line.startswith("[1/")), 0)
            if first:
                text = "  (the plan shown above)\n" + "".join(lines[first:])
        sys.stdout.write(text)
        print(f"(exit code {code})")
        sys.stdout.flush()
        return code

    def plan(self, *extra: str) -> int:
        """``reconciler plan`` of the working copy's HEAD."""
        return self.cli("plan", "--repo", str(self.fleet), "--ref", "HEAD", *extra)

    def apply(self, *, skip_plan: bool = False) -> int:
        """``reconciler apply --yes`` of the working copy's HEAD; exit 1 stops the story."""
        code = self.cli("apply", "--repo", str(self.fleet), "--ref", "HEAD", "--yes",
                        skip_plan=skip_plan)  # fmt: skip
        if code == 1:
            raise DemoError("apply failed (see its report above)")
        return code

    def expect(self, condition: bool, what: str) -> None:
        """Stop the story when the world does not look as told."""
        if not condition:
            raise DemoError(what)

    def expect_no_change(self, after: str) -> None:
        """Stop the story unless a fresh plan has nothing to do (``after`` says what came first)."""
        self.expect(self.plan() == 0, f"the plan after {after} should show no change")

    def advance(self, seconds: float, why: str) -> None:
        """Move the virtual clock for every simulator (the CLI gets it through ``--now``)."""
        self.clock.advance(seconds)
        print(f"\n... {why}: the virtual clock is now {_iso(self.clock.now())}\n")

    # ---- reading the world --------------------------------------------------------------------

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows from the sandbox's D1 (read directly, for the chapter endings)."""
        connection = sqlite3.connect(self.sandbox.cloudflare.d1_path)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def deployments(self) -> int:
        """How many Pages deployments exist, over every project."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            return sum(len(p.deployments) for p in sim.pages.projects.values())

    def canonical(self, project: str) -> tuple[str, int | None]:
        """The deployment production serves, and the version its tag names."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            now = self.clock.now()
            state = sim.pages.project_json(sim.pages.projects[project], now)
        deployment = state["canonical_deployment"] or {}
        message = (deployment.get("deployment_trigger") or {}).get("metadata", {})
        version = None
        for word in str(message.get("commit_message", "")).split():
            if word.startswith("version="):
                version = int(word.removeprefix("version="))
        return str(deployment.get("id", "")), version

    def hostname(self, name: str) -> dict[str, Any] | None:
        """The simulator's view of one custom hostname (None when absent)."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            found = sim.hostnames.by_name.get(name)
            if found is None:
                return None
            return sim.hostnames.to_json(sim.hostnames.by_id[found], self.clock.now())

    def hostnames_of(self, site: str) -> list[str]:
        """The canonical hostnames a site of the example fleet declares."""
        return [d.canonical for d in self.specs.sites[site].spec.domains]

    def access(self, tenant: str) -> str:
        """The tenant's access in D1 (``tenants.status``)."""
        rows = self.query("SELECT status FROM tenants WHERE id = ?", tenant)
        return str(rows[0][0]) if rows else "unknown"

    def new_messages(self) -> list[dict[str, Any]]:
        """WhatsApp messages the Evolution simulator accepted since the last call."""
        found: list[dict[str, Any]] = self.sandbox.evolution.messages_since(self.messages_seen)
        if found:
            self.messages_seen = max(int(m["seq"]) for m in found)
        return found

    def show_messages(self) -> list[dict[str, Any]]:
        """Print the messages sent since the last call (the gateway's log, not ours)."""
        found = self.new_messages()
        print()
        if not found:
            print("WhatsApp gateway (simulator): no new message")
        for message in found:
            print(f"WhatsApp gateway (simulator) sent to +{message['number']}:")
            print(f"    {message['text']}")
        return found

    def route(self, name: str) -> str:
        """The routing-table entry of ``name`` in words: ``serve <site>``, ``suspend``, ``none``."""
        sim = self.sandbox.cloudflare
        with sim.lock:
            for namespace in sim.kv.namespaces.values():
                stored = namespace.entries.get(name)
                if stored is not None:
                    entry = parse_route(stored.value.decode("utf-8", "replace"))
                    if entry is not None:
                        return "suspend" if entry.action == ROUTE_SUSPEND else f"serve {entry.site}"
        return "none"

    def visit(
        self, hostname: str, kind: str, *, site: str | None = None, version: int | None = None
    ) -> None:
        """Fetch the page a visitor gets through the Worker; stop unless it is the one told."""
        seen = visit(self.sandbox.edge, hostname)
        print(f"Visitor: {seen.line()}")
        wanted = (kind, site, version) if kind == "site" else (kind, None, None)
        self.expect(
            (seen.kind, seen.site, seen.version) == wanted,
            f"{hostname} answers {seen.line()}, not {kind} {site or ''} {version or ''}",
        )

    def show_hostnames(self, site: str) -> None:
        """Print each hostname of ``site`` with its status and its routing-table entry."""
        for name in self.hostnames_of(site):
            found = self.hostname(name) or {}
            print(f"    {name}: {found.get('status')}, routing table: {self.route(name)}")

    # ---- Git ----------------------------------------------------------------------------------

    def commit(self, message: str) -> str:
        """Commit every change of the working copy; return the sha."""
        self.repo.git.add("--all")
        self.repo.index.commit(message)
        sha = self.repo.head.commit.hexsha
        print(f"$ git commit -am {message!r}    # {sha[:7]}")
        return sha

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace ``old`` with ``new`` in a spec file of the working copy (exactly once)."""
        path = self.fleet / "specs" / relative
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise DemoError(f"{relative} does not contain {old!r} exactly once")
        path.write_text(text.replace(old, new), encoding="utf-8")

    # ---- the story ----------------------------------------------------------------------------

    def tell(self) -> bool:
        """Run every chapter; True when each ended as told."""
        base = Path(".demo").resolve()
        base.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        self.fleet = self.work / "fleet"
        try:
            with Sandbox(
                state_dir=self.work / "sandbox",
                clock=self.clock,
                cloudflare={"validation_window": VALIDATION_WINDOW},
                with_workers=True,
                with_r2=True,
            ) as sandbox:
                self.sandbox = sandbox
                env = {
                    **sandbox.settings_env(),
                    SANDBOX_CONTROL_ENV: sandbox.control_url,
                    # the dispatch Worker, its namespace, route and fallback origin are
                    # desired state (docs/routing.md): the first apply sets them up
                    "ROUTING_FALLBACK_ORIGIN": sandbox.cloudflare_config.fallback_origin,
                }
                with _environment(env):
                    self.world()
                    self.first_converge()
                    self.version_bump()
                    self.dunning()
                    self.stuck_domain()
                    self.media()
                    self.deletion()
                    api_worker_chapter(self, 10, chapter, converged)
                    restore_point_chapter(self, 11, chapter, converged)
        finally:
            if self.keep:
                print(f"\n(kept the working copy and the sandbox state in {self.work})")
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        return True

    def world(self) -> None:
        """Chapter 2: the sandbox, D1 migrated, seeded, the specs in Git."""
        chapter(2, "A world on one machine")
        sandbox = self.sandbox
        print("Started, on 127.0.0.1, all sharing one virtual clock:")
        print(f"  Cloudflare API simulator  {sandbox.cloudflare_url}")
        print(f"  Evolution API simulator   {sandbox.evolution_url}")
        print(f"  localstripe               {sandbox.stripe.base_url}")
        print(f"  R2 (moto, S3 API)         {sandbox.r2.endpoint}")
        print(f"  D1                        {sandbox.cloudflare.d1_path.name} (SQLite)")
        print(f"  virtual time              {_iso(self.clock.now())}")
        print()
        here = Path("migrations")
        migrations = str(here) if here.resolve() == MIGRATIONS else str(MIGRATIONS)
        code = self.cli("migrate", "--dir", migrations, timed=False)
        self.expect(code == 0, "reconciler migrate failed")
        self.seeded = seed_world(sandbox, self.specs)
        print()
        print("Seeded as the site editor and billing would have, before any reconciler ran:")
        total = sum(self.seeded.versions.values())
        print(f"  D1: {len(self.seeded.versions)} sites with {total} content snapshots")
        print(f"  Cloudflare: {len(self.seeded.projects)} Pages projects, no deployment yet")
        print(f"  DNS: {len(self.seeded.pointed)} customer hostnames pointed at the SaaS target")
        photos = self.seeded.media
        print(f"  R2: {len(photos)} photos ({sum(photos.values()) / 1e6:.1f} MB of JPEG, PNG and "
              "WebP originals) that the content snapshots show")  # fmt: skip
        for tenant, ids in sorted(self.seeded.stripe.items()):
            print(f"  Stripe: {tenant} is customer {ids.customer}, paying (active subscription)")
        shutil.copytree(self.root, self.fleet / "specs")
        write_stripe_ids(self.fleet / "specs", self.specs, self.seeded.stripe)
        self.repo = git.Repo.init(self.fleet)
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Demo Operator")
            config.set_value("user", "email", "operator@sitebuilder.example")
            config.set_value("commit", "gpgsign", "false")
        print()
        print("$FLEET is a Git working copy of specs/ (the tenants' Stripe ids set to the ones")
        print("localstripe chose):")
        self.commit("Fleet: 3 tenants, 5 sites")
        converged("an empty world: nothing published, no custom hostname, D1 migrated")

    def first_converge(self) -> None:
        """Chapter 3: plan, apply, plan again shows no change."""
        chapter(3, "Plan, apply, converged")
        self.expect(self.plan() == 2, "the first plan should have changes (exit 2)")
        print()
        self.apply(skip_plan=True)
        self.advance(60, "a minute later, the new hostnames' certificates are issued")
        print("D1 domains still records them as Cloudflare answered the creates; the next pass")
        print("copies their status, so runbook 2's domains query reads what Cloudflare shows:")
        print()
        self.apply()
        print()
        self.expect_no_change("apply")
        live = self.query("SELECT COUNT(*) FROM publish_versions WHERE status = 'live'")[0][0]
        names = [d.canonical for s in self.specs.sites.values() for d in s.spec.domains]
        active = sum(1 for n in names if (self.hostname(n) or {}).get("status") == "active")
        self.expect(active == len(names), f"only {active} of {len(names)} hostnames are active")
        print()
        home = self.specs.sites[BUMPED_SITE].spec
        self.visit(VISITED, "site", site=BUMPED_SITE, version=home.production.version)
        converged(
            f"{live} deployments live ({self.deployments()} in Pages), {active} custom "
            "hostnames active, billing mirrored; a second plan has nothing to do"
        )

    def version_bump(self) -> None:
        """Chapters 4 and 5: a version bump published, then reverted with git revert."""
        chapter(4, "A version bump, published from Git")
        site = self.specs.sites[BUMPED_SITE].spec
        old = site.production.version
        new = old + 1
        self.edit(f"sites/{BUMPED_SITE}.yaml", f"production: {{version: {old}}}",
                  f"production: {{version: {new}}}")  # fmt: skip
        bump = self.commit(f"Bump {BUMPED_SITE} to {new}")
        print()
        self.apply()
        deployment, version = self.canonical(site.pages_project)
        self.expect(version == new, f"production of {BUMPED_SITE} serves version {version}")
        print()
        self.visit(VISITED, "site", site=BUMPED_SITE, version=new)
        before = self.deployments()
        converged(
            f"{BUMPED_SITE} production serves version {new} (deployment {deployment[:8]}); "
            f"{before} deployments in Pages"
        )

        chapter(5, "git revert: a rollback, no rebuild")
        self.repo.git.revert("--no-edit", bump)
        revert = self.repo.head.commit
        subject = revert.summary if isinstance(revert.summary, str) else revert.summary.decode()
        print(f"$ git revert --no-edit {bump[:7]}    # {revert.hexsha[:7]} {subject}")
        print()
        self.cli("plan", "--repo", str(self.fleet), "--base", "HEAD~1", "--head", "HEAD")
        print()
        self.apply(skip_plan=True)
        deployment, version = self.canonical(site.pages_project)
        after = self.deployments()
        self.expect(version == old, f"production of {BUMPED_SITE} serves version {version}")
        self.expect(after == before, f"the rollback made new deployments ({before} -> {after})")
        print()
        self.visit(VISITED, "site", site=BUMPED_SITE, version=old)
        converged(
            f"{BUMPED_SITE} production is back on version {old}'s own deployment "
            f"{deployment[:8]}; still {after} deployments in Pages (no new build)"
        )

    def dunning(self) -> None:
        """Chapter 6: a payment fails; dunning, soft lock, hard lock, payment, unlock."""
        chapter(6, "A payment fails: dunning, locks, payment, unlock")
        tenant = self.specs.tenants[BILLING_TENANT].spec
        policy = self.specs.policies[tenant.policy].spec
        sites = sorted(n for n, s in self.specs.sites.items() if s.spec.tenant == BILLING_TENANT)
        with_domains = [n for n in sites if self.hostnames_of(n)]
        local = self.sandbox.stripe
        ids = self.seeded.stripe[BILLING_TENANT]
        failed = local.make_past_due(ids.subscription)
        invoice = failed.invoice
        self.expect(invoice is not None, "localstripe made no invoice")
        assert invoice is not None
        local.backdate_invoice(invoice, self.clock.now())
        print(f"Stripe: {tenant.display_name}'s renewal is declined: subscription "
              f"{failed.status}, invoice {invoice} open.")  # fmt: skip
        print(f"Policy {tenant.policy}: dunning "
              + ", ".join(f"{s.code} on day {s.day}" for s in policy.dunning)
              + f"; soft lock after {policy.grace_days} days, hard lock after "
              f"{policy.hard_lock_days}.")  # fmt: skip
        print()
        self.apply()
        sent = self.show_messages()
        self.expect(len(sent) == 1, f"day 0 should send one message, sent {len(sent)}")

        steps = [
            (3 * DAY, "3 days later", "active"),
            (4 * DAY, "day 7, the grace period is over", "soft_locked"),
            (14 * DAY, "day 21", "hard_locked"),
        ]
        for seconds, why, access in steps:
            self.advance(seconds, why)
            self.apply()
            self.show_messages()
            print(f"\nD1 tenants.status of {BILLING_TENANT}: {self.access(BILLING_TENANT)}")
            self.expect(self.access(BILLING_TENANT) == access, f"{why}: access is not {access}")
        for site in with_domains:
            print(f"  hostnames of {site}:")
            self.show_hostnames(site)
        for site in with_domains:
            for name in self.hostnames_of(site):
                routed = self.route(name)
                self.expect(routed == "suspend", f"{name} is not suspended ({routed})")
                self.visit(name, "suspended")

        self.advance(2 * HOUR, "the tenant pays")
        status = local.pay_invoice(invoice)
        print(f"Stripe: invoice {invoice} is {status}.")
        print()
        self.apply()
        print(f"\nD1 tenants.status of {BILLING_TENANT}: {self.access(BILLING_TENANT)}")
        for site in with_domains:
            print(f"  hostnames of {site}:")
            self.show_hostnames(site)
        self.expect(self.access(BILLING_TENANT) == "active", "the tenant was not unlocked")
        for site in with_domains:
            version = self.specs.sites[site].spec.production.version
            for name in self.hostnames_of(site):
                routed = self.route(name)
                self.expect(routed == f"serve {site}", f"{name} was not restored ({routed})")
                self.visit(name, "site", site=site, version=version)
        logged = self.query(
            "SELECT step_code FROM dunning_step_logs WHERE invoice_id = ? AND status = 'sent' "
            "ORDER BY id",
            invoice,
        )
        converged(
            f"{BILLING_TENANT} paid and is active again, its hostnames serve its sites; "
            f"dunning sent once each: {', '.join(r[0] for r in logged)}"
        )

    def stuck_domain(self) -> None:
        """Chapter 7: a domain whose DNS is not pointed, stuck, then recovered."""
        chapter(7, "A domain stuck pending, then recovered")
        site = self.specs.sites[STUCK_SITE].spec
        policy = self.specs.policies[self.specs.tenants[site.tenant].spec.policy].spec
        timeout = policy.domains.validation_timeout
        self.edit(
            f"sites/{STUCK_SITE}.yaml",
            "  domains:\n",
            f"  domains:\n    - hostname: {STUCK_HOSTNAME}\n      ssl: {{method: http}}\n",
        )
        self.commit(f"{STUCK_SITE}: add {STUCK_HOSTNAME}")
        print(f"(the customer has not pointed {STUCK_HOSTNAME} at the SaaS target yet)")
        print()
        self.apply()
        pending = (self.hostname(STUCK_HOSTNAME) or {}).get("status")
        print(f"\nCloudflare: {STUCK_HOSTNAME} is {pending}")
        self.advance(
            timeout.total_seconds() + HOUR,
            f"an hour past the validation timeout of {format_duration(timeout)}",
        )
        self.apply()
        rounds = 0
        while True:
            self.advance(VALIDATION_WINDOW + HOUR, "Cloudflare's validation window runs out")
            code = self.plan()
            if code == 3:
                break
            rounds += 1
            self.expect(rounds <= policy.domains.max_recreates, "the hostname never got stuck")
            print()
            self.apply(skip_plan=True)
        recreated = self.query(
            "SELECT recreate_count FROM domains WHERE domain = ?", STUCK_HOSTNAME
        )
        print()
        print(f"The customer points {STUCK_HOSTNAME} at the SaaS target (sandbox DNS).")
        self.sandbox.cloudflare.point_dns(STUCK_HOSTNAME)
        print()
        self.apply(skip_plan=True)
        self.advance(10 * 60, "ten minutes later")
        found = self.hostname(STUCK_HOSTNAME) or {}
        print(f"Cloudflare: {STUCK_HOSTNAME} is {found.get('status')}, certificate "
              f"{(found.get('ssl') or {}).get('status')}")  # fmt: skip
        print()
        self.apply()  # D1 domains catches up: the hostname is recorded active
        print()
        self.expect_no_change("recovery")
        self.expect(found.get("status") == "active", f"{STUCK_HOSTNAME} did not recover")
        converged(
            f"{STUCK_HOSTNAME} is active after {recreated[0][0] if recreated else 0} "
            "recreations and a Stuck condition, once its DNS was pointed"
        )

    def media(self) -> None:
        """Chapter 8: the photos as AVIF/WebP <picture>s, and a publish that follows a script."""
        chapter(8, "Photos from R2, served as AVIF and WebP; a publish that follows every input")
        site = self.specs.sites[MEDIA_SITE].spec
        self.cli("optimize-site", MEDIA_SITE, "--specs", str(self.fleet / "specs"), timed=False)
        html, files = self._served_pictures(site.pages_project)
        print()
        print(f"The page Pages serves for {MEDIA_SITE} (first <picture>, wrapped):")
        for line in html[:3]:
            print(f"  {line}")
        self.expect(bool(files), f"{MEDIA_SITE} serves no <picture>")
        print(f"Every one of its {len(files)} AVIF and WebP sources is a file of the deployment.")
        print()
        script = site.scripts[0]
        self.edit(f"sites/{MEDIA_SITE}.yaml", f"  scripts:\n    - {script}\n", "  scripts: []\n")
        self.commit(f"{MEDIA_SITE}: remove the Google tag")
        print()
        self.expect(self.plan() == 2, "removing a script should plan a publish (exit 2)")
        print()
        self.apply(skip_plan=True)
        page = self._page(site.pages_project)
        self.expect(script not in page, f"{MEDIA_SITE} still loads {script}")
        print()
        self.expect_no_change("the republish")
        converged(
            f"{MEDIA_SITE} serves <picture>s whose {len(files)} AVIF/WebP files are deployed; "
            f"removing {script.split('?')[0]} republished the same version without it"
        )

    def _file(self, project: str, path: str) -> bytes | None:
        """What Pages serves for ``project`` at ``path`` (None for a 404)."""
        pages = self.sandbox.cloudflare.pages
        status, body, _ = pages.serve(pages.projects[project], path, self.clock.now())
        return body if status == 200 else None

    def _page(self, project: str, path: str = "/index.html") -> str:
        found = self._file(project, path)
        return found.decode("utf-8") if found is not None else ""

    def _served_pictures(self, project: str) -> tuple[list[str], list[str]]:
        """The first <picture> of the served home page, and every source file it checks."""
        page = self._page(project)
        pictures = re.findall(r"<picture>.*?</picture>", page)
        sources = re.findall(r"(/assets/img/[0-9a-f]{16}/[0-9]+\.(?:avif|webp))", page)
        missing = [url for url in sources if self._file(project, url) is None]
        self.expect(not missing, f"the deployment lacks {', '.join(missing[:3])}")
        first = pictures[0] if pictures else ""
        return textwrap.wrap(first, 96), sorted(set(sources))

    def deletion(self) -> None:
        """Chapter 9: a hostname removed from a site whose deletion_policy is delete."""
        chapter(9, "A domain removed: deleted, and not found")
        self.visit(DELETED_HOSTNAME, "site", site=STUCK_SITE,
                   version=self.specs.sites[STUCK_SITE].spec.production.version)  # fmt: skip
        self.edit(
            f"sites/{STUCK_SITE}.yaml",
            f"    - hostname: {DELETED_HOSTNAME}\n      ssl: {{method: http}}\n",
            "",
        )
        self.commit(f"{STUCK_SITE}: remove {DELETED_HOSTNAME}")
        print()
        self.apply()
        self.expect(self.hostname(DELETED_HOSTNAME) is None, f"{DELETED_HOSTNAME} is still there")
        print()
        self.visit(DELETED_HOSTNAME, "gone")
        self.expect(self.route(DELETED_HOSTNAME) == "none", "its routing entry is still there")
        self.expect_no_change("the deletion")
        converged(
            f"{DELETED_HOSTNAME} is gone from the zone and from the routing table: visitors get "
            "not-found (on Cloudflare's edge within about a minute)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
