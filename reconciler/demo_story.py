"""The demo's story machinery: the in-process CLI, what it reads from the world, its Git copy.

:class:`StoryBase` holds the sandbox, the Git working copy of the specs and the virtual clock,
and gives the chapters (``demo_publish.py``, ``demo_lifecycle.py``, ``demo_platform.py``) their
verbs: run the CLI, read D1, Pages, the hostnames, the routing table and the WhatsApp gateway,
commit and edit specs, and stop the story (:class:`DemoError`) when the world is not as told.
:class:`reconciler.demo.Story` puts the chapters together.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from reconciler.cli import main as cli_main
from reconciler.core.routing import ROUTE_SUSPEND, parse_route
from reconciler.demo_visit import visit
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.seed import Seeded
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs

__all__ = [
    "BILLING_TENANT",
    "BUMPED_SITE",
    "DAY",
    "DELETED_HOSTNAME",
    "HOUR",
    "MEDIA_SITE",
    "START",
    "STUCK_HOSTNAME",
    "STUCK_SITE",
    "VALIDATION_WINDOW",
    "VISITED",
    "DemoError",
    "StoryBase",
    "chapter",
    "converged",
    "iso",
]

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


def iso(when: float) -> str:
    """``when`` (epoch seconds) as ``2026-03-02 09:00 UTC``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


class StoryBase:
    """The sandbox, the Git working copy of the specs, and what the chapters do with them."""

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
        print(f"\n... {why}: the virtual clock is now {iso(self.clock.now())}\n")

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
            return sim.hostnames.shown(name, self.clock.now())

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
