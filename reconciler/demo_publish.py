"""The demo's publishing chapters (2 to 5, 8): a world set up, converged, bumped, reverted, media.

Chapter 2 starts from an empty world (D1 migrated, seeded, the specs in Git); 3 converges it;
4 publishes a version bump and 5 reverts it with ``git revert`` (a rollback, no rebuild); 8
shows the photos served as AVIF and WebP ``<picture>``s and a republish that follows a script
removed from a Site. Mixed into :class:`reconciler.demo.Story`.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import git

from reconciler.demo_story import (
    BUMPED_SITE,
    MEDIA_SITE,
    VISITED,
    StoryBase,
    chapter,
    converged,
    iso,
)
from reconciler.sandbox.seed import MIGRATIONS, seed_world, write_stripe_ids

__all__ = ["PublishChapters"]


class PublishChapters(StoryBase):
    """Chapters 2 to 5 and 8 of the story."""

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
        print(f"  virtual time              {iso(self.clock.now())}")
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
