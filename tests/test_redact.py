"""reconciler/redact.py: the one redaction path (rules 1-3)."""

from __future__ import annotations

import io

from reconciler.redact import MASK, RedactingStream, redact, register


def test_a_registered_secret_is_masked_whatever_surrounds_it() -> None:
    register(["opaque7c1f9e2d"])
    assert redact("apikey opaque7c1f9e2d was rejected") == f"apikey {MASK} was rejected"
    assert redact('{"k":"xopaque7c1f9e2dx"}') == '{"k":"x***x"}'


def test_short_values_are_not_registered() -> None:
    register(["abc"])
    assert redact("abcdef") == "abcdef"


def test_credential_shaped_values_are_masked_unregistered() -> None:
    assert redact("Authorization: Bearer abcdef123") == "Authorization: ***"
    assert redact("key sk_live_abcdef123456") == f"key {MASK}"
    assert redact("token=abc123 next") == f"token={MASK} next"
    assert redact("https://user:pw@git.example/x") == f"https://{MASK}@git.example/x"


def test_a_long_text_is_masked_line_by_line() -> None:
    plain = "publish site-0001 production v13 (sha256:abcdef)\n" * 5000
    assert redact(plain) is plain or redact(plain) == plain
    leaky = plain + "the gateway said: token=abcdef0123\n" + plain
    assert "abcdef0123" not in redact(leaky)
    assert redact(leaky).count("publish site-0001") == 10_000


def test_the_stream_writes_through_redact() -> None:
    register(["streamsecret42"])
    out = io.StringIO()
    stream = RedactingStream(out)
    assert stream.write("leak streamsecret42\n") == len("leak streamsecret42\n")
    assert out.getvalue() == f"leak {MASK}\n"
