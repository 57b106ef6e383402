"""EvolutionClient against the simulator over real HTTP: results, error types, retries, pacing.

Uses the ``evo`` simulator fixture and ``make_client`` (a client with a roomy token bucket and
instant retries on fake time) from ``conftest.py``.
"""

from __future__ import annotations

import httpx
import pytest

from reconciler.errors import PermanentError, TransientError
from reconciler.providers.evolution import (
    ConnectionState,
    EvolutionAuthError,
    EvolutionClient,
    GatewayDisconnectedError,
    InvalidNumberError,
    RequestRejectedError,
    SendFailedError,
    UnknownInstanceError,
)
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.clock import VirtualClock
from reconciler.sandbox.evolution import create_app
from reconciler.settings import EvolutionSettings, Secret

from support.evolution import API_KEY, INSTANCE, EvolutionSandbox, FakeTime

SEND_LABEL = "POST /message/sendText/{instance}"
STATE_LABEL = "GET /instance/connectionState/{instance}"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("open", ConnectionState.OPEN),
        ("close", ConnectionState.CLOSE),
        ("connecting", ConnectionState.CONNECTING),
        ("unloaded", ConnectionState.CLOSE),
    ],
)
async def test_connection_state_reads_the_instance_state(
    evo: EvolutionSandbox, make_client, mode: str, expected: ConnectionState
) -> None:
    evo.state.set_state(INSTANCE, mode)  # type: ignore[arg-type]
    client = make_client()
    assert await client.connection_state() is expected
    assert client.calls[STATE_LABEL] == 1


async def test_check_numbers_keys_results_by_the_numbers_as_given(
    evo: EvolutionSandbox, make_client
) -> None:
    evo.state.set_on_whatsapp(["+447700900123"], exists=False)
    client = make_client()
    result = await client.check_numbers(
        ["+55 11 99999-9999", "+44 7700 900123", "+5531987654321", "+1234567890123456789"]
    )
    assert result["+55 11 99999-9999"].exists is True
    assert result["+55 11 99999-9999"].jid == "5511999999999@s.whatsapp.net"
    assert result["+44 7700 900123"].exists is False
    assert result["+5531987654321"].jid == "553187654321@s.whatsapp.net"  # resolved JID
    assert result["+1234567890123456789"].exists is False  # refused locally, never a group
    sent = [c["request_json"] for c in evo.calls()]
    assert sent == [{"numbers": ["5511999999999", "447700900123", "5531987654321"]}]


async def test_send_text_sends_the_v2_body_and_returns_the_message_id(
    evo: EvolutionSandbox, make_client
) -> None:
    evo.clock.freeze()
    client = make_client()
    sent = await client.send_text("+55 11 99999-9999", "Your invoice is overdue.")
    assert evo.calls()[0]["request_json"] == {
        "number": "5511999999999",
        "text": "Your invoice is overdue.",
    }
    logged = evo.state.messages_since()
    assert len(logged) == 1 and logged[0]["id"] == sent.id
    assert sent.remote_jid == "5511999999999@s.whatsapp.net"
    assert sent.status == "PENDING"
    assert sent.timestamp == int(evo.clock.now())
    assert sent.raw["key"]["fromMe"] is True
    assert client.calls[SEND_LABEL] == 1


async def test_a_number_not_on_whatsapp_is_an_invalid_number_error_and_is_not_retried(
    evo: EvolutionSandbox, make_client
) -> None:
    evo.state.set_on_whatsapp(["+15550001111"], exists=False)
    client = make_client()
    with pytest.raises(InvalidNumberError) as caught:
        await client.send_text("+1 555 000 1111", "hi")
    assert isinstance(caught.value, PermanentError)
    assert caught.value.jid == "15550001111@s.whatsapp.net"
    assert caught.value.number == "15550001111"
    assert len(evo.calls()) == 1
    assert evo.state.messages_since() == []


async def test_a_number_that_cannot_be_a_phone_number_is_refused_without_a_request(
    evo: EvolutionSandbox, make_client
) -> None:
    client = make_client()
    with pytest.raises(InvalidNumberError):
        await client.send_text("call me maybe", "hi")
    with pytest.raises(RequestRejectedError):
        await client.send_text("+5511999999999", "  ")
    assert evo.calls() == []


async def test_an_unknown_instance_is_a_permanent_unknown_instance_error(
    evo: EvolutionSandbox, make_client
) -> None:
    client = make_client(instance="acme-billing")
    with pytest.raises(UnknownInstanceError) as caught:
        await client.connection_state()
    assert isinstance(caught.value, PermanentError) and caught.value.status == 404
    assert "acme-billing" in str(caught.value)
    assert len(evo.calls()) == 1


async def test_a_wrong_apikey_is_permanent_and_never_shown(
    evo: EvolutionSandbox, make_client
) -> None:
    secret = "wrong-key-3b9f0d77"
    client = make_client(api_key=secret)
    with pytest.raises(EvolutionAuthError) as caught:
        await client.send_text("+5511999999999", "hi")
    assert isinstance(caught.value, PermanentError) and caught.value.status == 401
    assert len(evo.calls()) == 1
    assert secret not in str(caught.value) and secret not in repr(client)
    assert API_KEY not in repr(make_client())


async def test_a_disconnected_instance_is_transient_and_not_retried_then_sends_after_reconnect(
    evo: EvolutionSandbox, make_client
) -> None:
    evo.state.disconnect(INSTANCE)
    client = make_client()
    with pytest.raises(GatewayDisconnectedError) as caught:
        await client.send_text("+5511999999999", "hi")
    assert isinstance(caught.value, TransientError)
    assert caught.value.not_applied is True and caught.value.retry_after
    assert len(evo.calls()) == 1
    assert await client.connection_state() is ConnectionState.CLOSE
    evo.state.connect(INSTANCE)
    sent = await client.send_text("+5511999999999", "hi")
    assert sent.id and len(evo.state.messages_since()) == 1


async def test_both_connection_closed_variants_and_a_stale_open_state_are_disconnections(
    evo: EvolutionSandbox, make_client
) -> None:
    client = make_client()
    evo.state.disconnect(INSTANCE)
    evo.state.connection_closed_body = "array"
    with pytest.raises(GatewayDisconnectedError):
        await client.send_text("+5511999999999", "hi")
    evo.state.set_state(INSTANCE, "open", stale=True)
    assert await client.connection_state() is ConnectionState.OPEN
    with pytest.raises(GatewayDisconnectedError):
        await client.check_numbers(["+5511999999999"])
    assert len(evo.calls()) == 3


async def test_server_errors_are_retried_on_reads_but_never_on_sends(
    evo: EvolutionSandbox, make_client, fake_time: FakeTime
) -> None:
    evo.control("POST", "/faults", json={"error_rate": 1.0, "error_status": 500})
    client = make_client(retry=RetryPolicy(attempts=3))
    with pytest.raises(TransientError):
        await client.connection_state()
    assert client.calls[STATE_LABEL] == 3
    assert len(fake_time.sleeps) == 2
    with pytest.raises(TransientError) as caught:
        await client.send_text("+5511999999999", "hi")
    assert not isinstance(caught.value, GatewayDisconnectedError)
    assert client.calls[SEND_LABEL] == 1


async def test_a_library_failure_on_send_is_transient_and_not_resent(
    evo: EvolutionSandbox, make_client
) -> None:
    evo.control("POST", "/send-failures", json={"message": "SessionError: No sessions"})
    client = make_client()
    with pytest.raises(SendFailedError) as caught:
        await client.send_text("+5511999999999", "hi")
    assert isinstance(caught.value, TransientError) and not caught.value.not_applied
    assert "No sessions" in str(caught.value)
    assert client.calls[SEND_LABEL] == 1


async def test_a_proxy_429_on_send_is_waited_out_and_the_send_happens_once(
    evo: EvolutionSandbox, make_client, fake_time: FakeTime
) -> None:
    evo.control(
        "POST", "/faults", json={"path_prefix": "/message", "burst_429": 1, "retry_after": 7}
    )
    client = make_client()
    sent = await client.send_text("+5511999999999", "hi")
    assert sent.id
    assert client.calls[SEND_LABEL] == 2
    assert sum(fake_time.sleeps) >= 7
    assert len(evo.state.messages_since()) == 1


async def test_sends_are_paced_by_the_shared_token_bucket(
    evo: EvolutionSandbox, make_client, fake_time: FakeTime
) -> None:
    bucket = TokenBucket(
        capacity=3, period=60, burst=1, clock=fake_time.clock, sleep=fake_time.sleep
    )
    client = make_client(bucket=bucket)
    start = fake_time.now
    for n in range(4):
        await client.send_text("+5511999999999", f"message {n}")
    # One token at once, then one every 30 s (2 refills per 60 s).
    assert fake_time.now - start >= 89.9
    assert bucket.acquired == 4
    assert client.calls[SEND_LABEL] == 4
    assert len(evo.state.messages_since()) == 4


async def test_the_client_works_in_process_through_an_asgi_transport(fake_time: FakeTime) -> None:
    app, state = create_app(clock=VirtualClock(), api_key="k", instance="unit")
    state.set_on_whatsapp(["+15550002222"], exists=False)
    settings = EvolutionSettings(
        base_url="http://evolution.test", api_key=Secret("k"), instance="unit"
    )
    bucket = TokenBucket(capacity=100, period=60, clock=fake_time.clock, sleep=fake_time.sleep)
    async with EvolutionClient(
        settings, bucket=bucket, transport=httpx.ASGITransport(app=app), sleep=fake_time.sleep
    ) as client:
        checks = await client.check_numbers(["+15550002222", "+15550003333"])
        assert [c.exists for c in checks.values()] == [False, True]
        assert (await client.send_text("+15550003333", "hi")).remote_jid.startswith("15550003333")
    assert len(state.messages_since()) == 1


async def test_a_send_that_times_out_is_not_resent_even_when_it_went_out(
    evo: EvolutionSandbox, make_client, fake_time: FakeTime
) -> None:
    rule = {"path_prefix": "/message", "timeout_rate": 1.0, "hold_seconds": 1.0}
    evo.control("POST", "/faults", json=rule)
    client = make_client(timeout=0.3)
    with pytest.raises(TransientError) as caught:
        await client.send_text("+5511999999999", "hi")
    assert caught.value.not_applied is False
    assert client.calls[SEND_LABEL] == 1
    assert len(evo.state.messages_since()) == 1  # it did go out: looking first is the caller's job
