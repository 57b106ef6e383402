"""JSON log lines: shape, extra fields, and secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from reconciler.runtime.logging import redact, setup_logging


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    setup_logging("debug", stream)
    yield stream
    for handler in list(root.handlers):
        if getattr(handler, "_reconciler_json", False):
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_its_extra_fields(capture: io.StringIO) -> None:
    logging.getLogger("reconciler.runtime.loop").info(
        "pass %s finished", 7, extra={"actions": 3, "duration_s": 1.5, "keys": ["Site/a"]}
    )
    [line] = lines(capture)
    assert line["level"] == "info"
    assert line["logger"] == "reconciler.runtime.loop"
    assert line["msg"] == "pass 7 finished"
    assert (line["actions"], line["duration_s"], line["keys"]) == (3, 1.5, ["Site/a"])
    assert str(line["ts"]).endswith("Z")


def test_setting_up_twice_does_not_duplicate_lines(capture: io.StringIO) -> None:
    other = io.StringIO()
    handler = setup_logging("info", other)
    try:
        logging.getLogger("x").warning("once")
        assert capture.getvalue() == ""
        assert len(lines(other)) == 1
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_level_filters_records(capture: io.StringIO) -> None:
    setup_logging("warning", capture)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").error("shown")
    assert [line["msg"] for line in lines(capture)] == ["shown"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer cf-abcdef0123456789", "cf-abcdef0123456789"),
        ("calling with bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("stripe key sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("restricted rk_live_51Habcdefgh", "51Habcdefgh"),
        ("webhook secret whsec_abcDEF123+/=", "abcDEF123"),
        ('headers {"apikey": "evo-key-123456"}', "evo-key-123456"),
        ("GET /x?token=abc123def&page=2", "abc123def"),
        ("EVOLUTION_API_KEY=plain-value-99", "plain-value-99"),
        ("password: hunter22", "hunter22"),
        ("fetch https://x-access-token:ghp_abc123@github.com/o/r.git", "ghp_abc123"),
        ("clone https://ghp_onlytoken@github.com/o/r.git", "ghp_onlytoken"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked
    assert redact(masked) == masked


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "pass finished: 3 tokens left in the bucket, Site/acme-home at version 12"
    assert redact(text) == text


def test_secrets_in_messages_extras_and_tracebacks_never_reach_a_line(
    capture: io.StringIO,
) -> None:
    log = logging.getLogger("reconciler.providers.stripe")
    log.warning("using %s", "sk_live_abcdefghijklmnop", extra={"token": "raw-token-value"})
    log.info("call", extra={"request": {"headers": {"Authorization": "Bearer abcdef123456"}}})
    try:
        raise RuntimeError("upstream said apikey=leaked-key-42")
    except RuntimeError:
        log.exception("failed")
    output = capture.getvalue()
    for secret in ("abcdefghijklmnop", "raw-token-value", "abcdef123456", "leaked-key-42"):
        assert secret not in output
    parsed = lines(capture)
    assert parsed[0]["token"] == "***"
    assert parsed[1]["request"] == {"headers": {"Authorization": "***"}}
    assert "RuntimeError" in str(parsed[2]["exc"])


def test_third_party_request_logs_are_held_at_warning_unless_debugging() -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    try:
        setup_logging("info", stream)
        logging.getLogger("httpx").info('HTTP Request: GET http://x "HTTP/1.1 200 OK"')
        logging.getLogger("uvicorn.access").info("127.0.0.1 - GET /metrics 200")
        logging.getLogger("httpx").warning("a real problem")
        logging.getLogger("reconciler.runtime.loop").info("pass finished")
        assert [line["msg"] for line in lines(stream)] == ["a real problem", "pass finished"]
        setup_logging("debug", stream)
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_reconciler_json", False):
                root.removeHandler(handler)
        root.setLevel(level)
        for name in ("httpx", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_line_carries_no_ansi_codes_and_no_json_inside_the_message(
    capture: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").warning(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]", "note": "\x1b[1mx"},
    )
    raw = capture.getvalue()
    assert "\x1b" not in raw and "\\u001b" not in raw
    [line] = lines(capture)
    assert line["msg"] == "Started server process [42]"
    assert "color_message" not in line
    assert line["note"] == "x"
