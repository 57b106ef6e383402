"""The localstripe launcher: starts, flushes, fails clearly, and always reaps its process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sandbox.localstripe import LocalStripe, LocalStripeError


def test_flush_empties_the_store(local: LocalStripe) -> None:
    local.create_customer(email="a@example.com")
    assert len(local.client().v1.customers.list().data) == 1

    local.flush()

    assert local.client().v1.customers.list().data == []


def test_seeded_failing_subscription_is_incomplete_with_an_open_invoice(
    local: LocalStripe,
) -> None:
    customer = local.create_customer(metadata={"tenant": "acme"})

    seeded = local.subscribe_failing(customer, metadata={"site": "acme-home"})

    assert (seeded.customer, seeded.status, seeded.invoice_status) == (
        customer,
        "incomplete",
        "open",
    )
    assert local.client().v1.customers.retrieve(customer).metadata["tenant"] == "acme"


def test_settings_point_at_the_instance_with_its_key(local: LocalStripe, api_key: str) -> None:
    settings = local.settings(webhook_secret="whsec_abc")

    assert settings.base_url == local.base_url
    assert settings.base_url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    assert settings.api_key.reveal() == api_key
    assert settings.webhook_secret.reveal() == "whsec_abc"


async def test_async_context_manager_starts_and_reaps_the_process() -> None:
    async with LocalStripe() as server:
        assert server.running
        process = server._process
        assert process is not None
        pid = process.pid
        assert server.client().v1.customers.list().data == []

    assert not server.running
    assert process.returncode is not None  # reaped: no zombie left behind
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # stopping twice is harmless


@pytest.mark.skipif(
    Path("/proc/sys/net/ipv6/bindv6only").exists()
    and Path("/proc/sys/net/ipv6/bindv6only").read_text().strip() == "1",
    reason="with bindv6only=1 an IPv4 listener does not collide with localstripe's [::] bind",
)
def test_port_already_taken_fails_fast_with_localstripes_own_output() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))  # localstripe binds [::] dual-stack, so this collides
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalStripe(port=port, startup_timeout=60)

        with pytest.raises(LocalStripeError, match="exited") as caught:
            server.start()

    assert not server.running
    assert "address" in str(caught.value).lower()


def test_secret_keys_only() -> None:
    with pytest.raises(ValueError, match="sk_"):
        LocalStripe(api_key="pk_test_x")


HANG = "import sys, time; print('hung', file=sys.stderr, flush=True); time.sleep(600)"


class SilentLocalStripe(LocalStripe):
    """A launcher whose process runs but never answers HTTP."""

    def _spawn(self, port: int) -> None:
        super()._spawn(port)
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; print('hung', file=sys.stderr); time.sleep(600)",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


def test_a_process_that_never_answers_fails_after_the_startup_timeout_and_is_reaped() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SilentLocalStripe(port=port, startup_timeout=1)

    with pytest.raises(LocalStripeError, match="did not answer") as caught:
        server.start()

    assert "hung" in str(caught.value)
    assert not server.running
    assert server._process is None
