"""The demo's lifecycle chapters (6, 7, 9): a payment fails and is paid, a domain stuck, removed.

Chapter 6 runs dunning, the soft and hard locks, the payment and the unlock as days pass; 7
retries and recreates a hostname whose DNS is not pointed until it is Stuck, then recovers it;
9 removes a hostname from a Site whose deletion policy is delete. Mixed into
:class:`reconciler.demo.Story`.
"""

from __future__ import annotations

from reconciler.demo_story import (
    BILLING_TENANT,
    DAY,
    DELETED_HOSTNAME,
    HOUR,
    STUCK_HOSTNAME,
    STUCK_SITE,
    VALIDATION_WINDOW,
    StoryBase,
    chapter,
    converged,
)
from reconciler.spec.models import format_duration

__all__ = ["LifecycleChapters"]


class LifecycleChapters(StoryBase):
    """Chapters 6, 7 and 9 of the story."""

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
