"""Per-document rules of the spec kinds: durations, hostnames, policies and overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.spec.models import (
    BillingPolicySpec,
    format_duration,
    normalize_hostname,
    parse_duration,
)

from support.spec import only_problem, problems


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations_are_written_like_24h_or_90m(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "-1h", "0m", "24 hours"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_print_in_their_shortest_exact_form() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert format_duration(timedelta(days=1)) == "1d"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("WWW.Example.COM.", "www.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("a--b.example", "a--b.example"),
    ],
)
def test_hostnames_normalise_to_lowercase_a_labels(name: str, canonical: str) -> None:
    assert normalize_hostname(name) == canonical


@pytest.mark.parametrize(
    "name",
    [
        "acme..com",
        "localhost",
        "-acme.com",
        "acme_shop.com",
        "ab--cd.com",
        "xn--zz.com",
        "10.0.0.1",
        "https://acme.com",
        "acme.com/shop",
        "a b.com",
        "a" * 64 + ".com",
    ],
)
def test_invalid_hostnames_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"hostname|IP address"):
        normalize_hostname(name)


def _policy(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "grace_days": 7,
        "hard_lock_days": 21,
        "dunning": [{"code": "D0", "day": 0, "template": "first"}],
        "templates": {"first": "Hi {tenant_name}, pay {amount_due} {currency}"},
        "performance_budget": {"max_js_kb": 1, "max_css_kb": 1, "max_third_party_scripts": 0},
        "suspension_origin": "suspended.example.com",
    }
    spec.update(changes)
    return spec


def test_a_valid_policy_constructs_directly() -> None:
    policy = BillingPolicySpec.model_validate(_policy())
    assert policy.domains.validation_timeout == timedelta(hours=24)


def test_constructing_a_model_directly_still_enforces_cross_field_rules() -> None:
    with pytest.raises(ValidationError, match="grace_days"):
        BillingPolicySpec.model_validate(_policy(grace_days=21))


def test_grace_days_must_be_less_than_hard_lock_days(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    path.write_text(path.read_text().replace("grace_days: 14", "grace_days: 45"), encoding="utf-8")
    assert only_problem(specs) == (
        "specs/policies/pro.yaml:10:3: BillingPolicy/pro: spec.grace_days: grace_days (45) must "
        "be less than hard_lock_days (45)"
    )


def test_dunning_steps_need_unique_codes_and_non_decreasing_days(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    text = path.read_text().replace("code: P10\n      day: 10", "code: P1\n      day: 0")
    path.write_text(text, encoding="utf-8")
    assert problems(specs) == [
        "specs/policies/pro.yaml:16:7: BillingPolicy/pro: spec.dunning[1].code: step code 'P1' "
        "is used twice",
        "specs/policies/pro.yaml:17:7: BillingPolicy/pro: spec.dunning[1].day: day 0 comes "
        "before the previous step's day 1; list steps in order",
    ]


def test_a_dunning_step_must_use_a_defined_template(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    path.write_text(
        path.read_text().replace("template: reminder", "template: reminde"), encoding="utf-8"
    )
    assert only_problem(specs) == (
        "specs/policies/pro.yaml:18:7: BillingPolicy/pro: spec.dunning[1].template: template "
        "'reminde' is not defined in templates (defined: payment-failed, reminder, soft-locked)"
    )


def test_templates_may_only_use_known_variables(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    path.write_text(
        path.read_text().replace("{invoice_id} (due {due_date})", "{invoice} (due {due})"),
        encoding="utf-8",
    )
    found = only_problem(specs)
    assert found.startswith(
        "specs/policies/pro.yaml:26:5: BillingPolicy/pro: spec.templates.reminder: unknown "
        "variables {due}, {invoice}; known: amount_due, currency"
    )


def test_a_malformed_template_is_rejected(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    path.write_text(
        path.read_text().replace("(due {due_date})", "(due {due_date:%Y})"), encoding="utf-8"
    )
    assert "spec.templates.reminder: malformed template" in only_problem(specs)


def test_a_manual_access_override_must_say_why(specs: Path) -> None:
    path = specs / "tenants" / "bistro.yaml"
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.startswith("  access_reason")
    )
    path.write_text(text + "\n", encoding="utf-8")
    assert only_problem(specs) == (
        "specs/tenants/bistro.yaml:16:3: Tenant/bistro: spec.access: access is overridden to "
        "'active': say why in access_reason"
    )


def test_durations_in_a_policy_are_located_when_malformed(specs: Path) -> None:
    path = specs / "policies" / "pro.yaml"
    path.write_text(
        path.read_text().replace("ssl_timeout: 24h", "ssl_timeout: 1 day"), encoding="utf-8"
    )
    assert only_problem(specs) == (
        "specs/policies/pro.yaml:38:5: BillingPolicy/pro: spec.domains.ssl_timeout: '1 day' is "
        "not a duration; write it like '24h', '90m' or '1h30m'"
    )
