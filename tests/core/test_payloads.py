"""core/payloads.py: one typed payload per action kind, parsed once; bad fields are named."""

from __future__ import annotations

import pytest

from reconciler.core.budget import UNLIMITED
from reconciler.core.payloads import (
    PAYLOADS,
    AccessBefore,
    AccessPayload,
    PayloadError,
    PublishPayload,
    RecordHostnameBefore,
    parse_payload,
    payload_as,
    read_before,
)
from reconciler.core.plan import ActionKind, JsonValue

PUBLISH: dict[str, JsonValue] = {
    "site": "acme-home",
    "environment": "production",
    "version": 3,
    "hosts": ["www.acme.test"],
    "budget": {"max_js_kb": 250, "max_css_kb": 100, "max_third_party_scripts": 2},
}


def test_every_kind_has_exactly_one_payload_reader() -> None:
    assert set(PAYLOADS) == set(ActionKind)


def test_a_publish_reads_typed_fields_with_the_handlers_defaults() -> None:
    payload = payload_as(parse_payload(ActionKind.PUBLISH, PUBLISH), PublishPayload)
    assert (payload.site, payload.tenant, payload.project) == ("acme-home",) * 3
    assert (payload.version, payload.attempt, payload.commit) == (3, 1, None)
    assert payload.hosts == ("www.acme.test",)
    assert payload.budget is not None and payload.budget.max_js_kb == 250


def test_a_budget_from_before_image_limits_checks_none_and_records_none() -> None:
    payload = payload_as(parse_payload(ActionKind.PUBLISH, PUBLISH), PublishPayload)
    assert payload.budget is not None
    assert payload.budget.max_image_kb == UNLIMITED
    assert "max_image_kb" not in payload.budget.limits()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "3"}, "after.version: expected an integer"),
        ({"version": 0}, "after.version: expected a version number of at least 1"),
        ({"environment": "staging"}, "after.environment: 'staging' is not one of"),
        ({"hosts": "www.acme.test"}, "after.hosts: expected a list"),
        ({"site": ""}, "after.site: expected a non-empty string"),
    ],
)
def test_a_bad_publish_field_is_named(change: dict[str, JsonValue], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(ActionKind.PUBLISH, {**PUBLISH, **change})


def test_a_lock_must_set_the_access_of_its_kind() -> None:
    after: dict[str, JsonValue] = {"tenant": "acme", "access": "active"}
    assert isinstance(parse_payload(ActionKind.UNLOCK, after), AccessPayload)
    with pytest.raises(PayloadError, match=r"after\.access: a hard_lock sets 'hard_locked'"):
        parse_payload(ActionKind.HARD_LOCK, after)


def test_a_payload_of_another_kind_is_a_type_error() -> None:
    payload = parse_payload(ActionKind.UNLOCK, {"tenant": "acme", "access": "active"})
    with pytest.raises(TypeError, match=r"expected a PublishPayload, got a AccessPayload"):
        payload_as(payload, PublishPayload)


def test_a_before_reads_the_value_its_action_replaces() -> None:
    assert read_before(AccessBefore, {"access": "soft_locked"}) == AccessBefore("soft_locked")
    row = {"status": None, "id": "ch-1", "origin": None}
    assert read_before(RecordHostnameBefore, row) == RecordHostnameBefore(None)


def test_a_mistyped_before_field_is_named() -> None:
    with pytest.raises(PayloadError, match=r"before\.status: expected a string"):
        read_before(RecordHostnameBefore, {"status": 3})
