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

The story is told by :class:`Story`, whose machinery is ``demo_story.py`` and whose chapters
are ``demo_publish.py`` (2 to 5, 8), ``demo_lifecycle.py`` (6, 7, 9) and ``demo_platform.py``
(10, 11).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from reconciler.demo_lifecycle import LifecycleChapters
from reconciler.demo_platform import api_worker_chapter, restore_point_chapter
from reconciler.demo_publish import PublishChapters
from reconciler.demo_story import BILLING_TENANT as BILLING_TENANT
from reconciler.demo_story import BUMPED_SITE as BUMPED_SITE
from reconciler.demo_story import DAY as DAY
from reconciler.demo_story import DELETED_HOSTNAME as DELETED_HOSTNAME
from reconciler.demo_story import HOUR as HOUR
from reconciler.demo_story import MEDIA_SITE as MEDIA_SITE
from reconciler.demo_story import START as START
from reconciler.demo_story import STUCK_HOSTNAME as STUCK_HOSTNAME
from reconciler.demo_story import STUCK_SITE as STUCK_SITE
from reconciler.demo_story import VALIDATION_WINDOW as VALIDATION_WINDOW
from reconciler.demo_story import VISITED as VISITED
from reconciler.demo_story import DemoError as DemoError
from reconciler.demo_story import chapter as chapter
from reconciler.demo_story import converged as converged
from reconciler.errors import LoadError, SpecError
from reconciler.sandbox.world import Sandbox
from reconciler.spec.load import Specs, load_directory
from reconciler.spec.models import Access, format_duration
from reconciler.wiring import SANDBOX_CONTROL_ENV


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


class Story(PublishChapters, LifecycleChapters):
    """The sandbox, the Git working copy of the specs, and the chapters told against them."""

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


if __name__ == "__main__":
    raise SystemExit(main())
