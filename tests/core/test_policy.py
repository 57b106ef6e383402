"""Pure billing policies: access levels, dunning due, message text, blast radius."""

import dataclasses

from reconciler.core.policy import (
    UNSETTLED_STATUSES,
    BlastRadius,
    Deletion,
    TenantSize,
    days_past_due,
    deletion_blocked,
    desired_access,
    dunning_due,
    format_amount,
    invoice_owed,
)
from reconciler.spec.models import Access, Uncollectible

from support.core import DAY, NOW, invoice, specs


def standard_policy():
    return specs().policies["standard"].spec


def test_no_open_invoice_means_active() -> None:
    decision = desired_access(
        override=Access.AUTO,
        override_reason=None,
        policy=standard_policy(),
        open_invoices=(),
        now=NOW,
    )
    assert decision.level is Access.ACTIVE
    assert decision.reason == "no open invoice"


def test_access_follows_days_past_due_of_the_oldest_invoice() -> None:
    policy = standard_policy()
    levels = {}
    for days in (0, 2, 3, 13, 14, 40):
        decision = desired_access(
            override=Access.AUTO,
            override_reason=None,
            policy=policy,
            open_invoices=(invoice("cus_acme", days=days),),
            now=NOW,
        )
        levels[days] = decision.level
    assert levels == {
        0: Access.ACTIVE,
        2: Access.ACTIVE,
        3: Access.SOFT_LOCKED,
        13: Access.SOFT_LOCKED,
        14: Access.HARD_LOCKED,
        40: Access.HARD_LOCKED,
    }


def test_the_oldest_of_several_open_invoices_decides() -> None:
    decision = desired_access(
        override=Access.AUTO,
        override_reason=None,
        policy=standard_policy(),
        open_invoices=(invoice("c", days=1, ident="in_new"), invoice("c", days=20, ident="in_old")),
        now=NOW,
    )
    assert decision.level is Access.HARD_LOCKED
    assert decision.invoice is not None and decision.invoice.id == "in_old"


def test_an_invoice_with_nothing_left_to_pay_does_not_lock() -> None:
    decision = desired_access(
        override=Access.AUTO,
        override_reason=None,
        policy=standard_policy(),
        open_invoices=(invoice("c", days=30, amount=0),),
        now=NOW,
    )
    assert decision.level is Access.ACTIVE


def test_a_manual_override_wins_and_says_so() -> None:
    decision = desired_access(
        override=Access.ACTIVE,
        override_reason="paid by bank transfer",
        policy=standard_policy(),
        open_invoices=(invoice("c", days=30),),
        now=NOW,
    )
    assert decision.level is Access.ACTIVE
    assert decision.source == "override"
    assert "paid by bank transfer" in decision.reason


def test_days_past_due_are_whole_days_and_never_negative() -> None:
    assert days_past_due(invoice("c", days=2.9), NOW) == 2
    assert days_past_due(invoice("c", days=-1), NOW) == 0


def test_only_the_latest_due_step_is_sent_and_earlier_ones_are_superseded() -> None:
    due = dunning_due(
        policy=standard_policy(),
        open_invoices=(invoice("cus_acme", days=8),),
        tenant_name="Acme",
        phone="+5511912345678",
        now=NOW,
    )
    assert len(due) == 1
    assert due[0].step_code == "D7"
    assert due[0].superseded == ("FAIL_IMMEDIATE", "D3")
    assert "invoice in_cus_acme is 8 days late" in due[0].message
    assert due[0].due_at == NOW - 8 * DAY + 7 * DAY


def test_first_step_on_the_day_of_the_failure_with_amount_and_link() -> None:
    due = dunning_due(
        policy=standard_policy(),
        open_invoices=(invoice("cus_acme", days=0.1, amount=1999),),
        tenant_name="Acme",
        phone="+5511912345678",
        now=NOW,
    )
    assert [d.step_code for d in due] == ["FAIL_IMMEDIATE"]
    assert due[0].message == (
        "Hi Acme, your payment of 19.99 USD failed. Pay: https://pay.example/cus_acme"
    )


def test_amounts_respect_zero_decimal_currencies() -> None:
    assert format_amount(1999, "usd") == "19.99 USD"
    assert format_amount(1999, "jpy") == "1999 JPY"


def _gone(count: int, *, site: str | None = "shop", removed: bool = False) -> list[Deletion]:
    return [Deletion(f"h{i}.example", "a", site, removed) for i in range(count)]


def test_blast_radius_caps_total_and_per_tenant_deletions() -> None:
    limits = BlastRadius(max_deletions=10, max_fraction=0.10)
    sizes = {"a": TenantSize(sites=2, hostnames=20)}
    assert deletion_blocked(_gone(11), sizes, limits) is not None
    assert deletion_blocked(_gone(1), {"a": TenantSize(1, 1)}, limits) is None
    reason = deletion_blocked(_gone(3), sizes, limits)
    assert reason is not None and "tenant a: 3 of its 20 hostnames" in reason


def test_a_removed_site_with_few_hostnames_counts_as_one_site_removal() -> None:
    limits = BlastRadius(max_deletions=10, max_fraction=0.10, max_site_hostnames=5)
    small = {"a": TenantSize(sites=2, hostnames=3)}
    assert deletion_blocked(_gone(2, removed=True), small, limits) is None
    assert deletion_blocked(_gone(2, removed=False), small, limits) is not None  # site kept
    large = deletion_blocked(_gone(6, removed=True), {"a": TenantSize(2, 8)}, limits)
    assert large is not None and "6 of its 8 hostnames" in large
    two = _gone(1, site="shop", removed=True) + _gone(1, site="blog", removed=True)
    reason = deletion_blocked(two, {"a": TenantSize(sites=3, hostnames=3)}, limits)
    assert reason is not None and "2 of its 3 sites would be removed" in reason
    assert deletion_blocked(two, {"a": TenantSize(sites=20, hostnames=20)}, limits) is None


def _with_status(status: str, *, days: float = 20):
    return dataclasses.replace(invoice("cus_acme", days=days), status=status)


def test_an_uncollectible_invoice_stays_owed_by_default_locked_and_dunned() -> None:
    policy = standard_policy()
    assert policy.uncollectible is Uncollectible.OWED
    owed = _with_status("uncollectible")
    decision = desired_access(
        override=Access.AUTO, override_reason=None, policy=policy, open_invoices=(owed,), now=NOW
    )
    assert decision.level is Access.HARD_LOCKED
    due = dunning_due(policy=policy, open_invoices=(owed,), tenant_name="Acme", phone="+1", now=NOW)
    assert [d.invoice_id for d in due] == [owed.id]


def test_a_policy_that_writes_off_uncollectible_invoices_unlocks_and_stops_dunning() -> None:
    policy = standard_policy().model_copy(update={"uncollectible": Uncollectible.WRITTEN_OFF})
    gone = _with_status("uncollectible")
    decision = desired_access(
        override=Access.AUTO, override_reason=None, policy=policy, open_invoices=(gone,), now=NOW
    )
    assert decision.level is Access.ACTIVE
    assert (
        dunning_due(policy=policy, open_invoices=(gone,), tenant_name="A", phone="+1", now=NOW)
        == ()
    )


def test_invoice_owed_is_the_one_rule_for_every_status() -> None:
    owed = standard_policy()
    off = owed.model_copy(update={"uncollectible": Uncollectible.WRITTEN_OFF})
    table = {
        status: (invoice_owed(_with_status(status), owed), invoice_owed(_with_status(status), off))
        for status in ("draft", "open", "paid", "void", "uncollectible")
    }
    assert table == {
        "draft": (False, False),
        "open": (True, True),
        "paid": (False, False),
        "void": (False, False),
        "uncollectible": (True, False),
    }
    nothing_left = dataclasses.replace(_with_status("uncollectible"), amount_due=0)
    assert not invoice_owed(nothing_left, owed)
    assert {"open", "uncollectible"} == UNSETTLED_STATUSES
