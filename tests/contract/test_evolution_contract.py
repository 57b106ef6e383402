"""Contract tests: the Evolution API simulator and ``EvolutionClient`` against the official v2 docs.

Every exchange the simulator records is validated with the corrected
``evolution/openapi-v2.json`` (the docs are stale for sendText and list almost no errors;
``corrections.py`` applies what evolution/CONTRACT.md documents). The tests assert zero
violations and that every (operation, status) the reconciler relies on was exercised:
connectionState, whatsappNumbers, sendText 201, and the documented failures: invalid number
(400), unknown instance (404), closed connection (500), wrong key (401).

Two drivers: the real adapter (``reconciler.providers.evolution.EvolutionClient``), and plain
httpx for the malformed requests the adapter never sends (to see the validation bodies of
§5.1 and §6; only their responses are checked).

Uses ``evo_contract`` and ``instant_time`` from ``tests/contract/conftest.py``. Skips when
``../shared`` is absent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import pytest

from reconciler.providers.evolution import (
    ConnectionState,
    EvolutionAuthError,
    EvolutionClient,
    GatewayDisconnectedError,
    InvalidNumberError,
    SendFailedError,
    UnknownInstanceError,
)
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.sandbox.evolution_state import SendFailure
from reconciler.settings import EvolutionSettings, Secret

from support.contract.corrections import EVOLUTION_DOCUMENT
from support.contract.openapi_checker import OpenAPIChecker

if not EVOLUTION_DOCUMENT.is_file():
    pytest.skip(
        f"shared contract not found at {EVOLUTION_DOCUMENT} (../shared is absent beside the repo)",
        allow_module_level=True,
    )

_SEND = "POST /message/sendText/{instance}"
_STATE = "GET /instance/connectionState/{instance}"
_NUMBERS = "POST /chat/whatsappNumbers/{instance}"

REQUIRED_EXCHANGES: frozenset[tuple[str, int]] = frozenset(
    {
        (_STATE, 200),
        (_STATE, 404),
        (_NUMBERS, 200),
        (_SEND, 201),
        (_SEND, 400),  # number not on WhatsApp (§5.3)
        (_SEND, 404),  # unknown instance (§5.4)
        (_SEND, 500),  # closed connection (§5.6)
        (_SEND, 401),  # wrong apikey (§5.5)
    }
)
"""(operation, status) pairs the reconciler's dunning path depends on."""

ON_WHATSAPP = "+55 11 99999-0001"
NOT_ON_WHATSAPP = "+55 11 98888-0002"


def exchanges(checker: OpenAPIChecker, calls: Iterable[Mapping[str, Any]]) -> set[tuple[str, int]]:
    """(``METHOD template``, status) of every recorded call that maps to a contract operation."""
    seen = set()
    for call in calls:
        operation = checker.find_operation(str(call["method"]), str(call["path"]))
        if operation is not None:
            seen.add((operation.label, int(call["status"])))
    return seen


def make_client(evo: Any, instant_time: Any, **overrides: str) -> EvolutionClient:
    """A client for the simulator whose waits cost no real time."""
    settings = EvolutionSettings(
        base_url=evo.base_url,
        api_key=Secret(overrides.get("api_key", evo.api_key)),
        instance=overrides.get("instance", evo.instance),
    )
    bucket = TokenBucket(
        capacity=10_000, period=60, clock=instant_time.clock, sleep=instant_time.sleep
    )
    return EvolutionClient(
        settings,
        bucket=bucket,
        retry=RetryPolicy(attempts=3, base=0.01, cap=0.05),
        rng=random.Random(5),
        sleep=instant_time.sleep,
    )


async def drive_adapter(evo: Any, instant_time: Any) -> None:
    """Every EvolutionClient method, and each documented failure it must map."""
    evo.state.set_on_whatsapp([NOT_ON_WHATSAPP], exists=False)
    async with make_client(evo, instant_time) as client:
        assert await client.connection_state() is ConnectionState.OPEN
        checks = await client.check_numbers([ON_WHATSAPP, NOT_ON_WHATSAPP])
        assert checks[ON_WHATSAPP].exists and not checks[NOT_ON_WHATSAPP].exists
        sent = await client.send_text(ON_WHATSAPP, "Your invoice #123 is 3 days overdue.")
        assert sent.id
        with pytest.raises(InvalidNumberError):
            await client.send_text(NOT_ON_WHATSAPP, "Your invoice #123 is 3 days overdue.")
        evo.state.queue_send_failure(SendFailure("SessionError: No sessions"))
        with pytest.raises(SendFailedError):
            await client.send_text(ON_WHATSAPP, "Your invoice #124 is 3 days overdue.")

        evo.state.disconnect(evo.instance)
        assert await client.connection_state() is ConnectionState.CLOSE
        with pytest.raises(GatewayDisconnectedError):
            await client.send_text(ON_WHATSAPP, "Your invoice #125 is 3 days overdue.")
        with pytest.raises(GatewayDisconnectedError):
            await client.check_numbers([ON_WHATSAPP])
        evo.state.connect(evo.instance)

    async with make_client(evo, instant_time, instance="no-such-instance") as ghost:
        with pytest.raises(UnknownInstanceError):
            await ghost.connection_state()
        with pytest.raises(UnknownInstanceError):
            await ghost.send_text(ON_WHATSAPP, "hello")
        with pytest.raises(UnknownInstanceError):
            await ghost.check_numbers([ON_WHATSAPP])

    async with make_client(evo, instant_time, api_key="not-the-key") as stranger:
        with pytest.raises(EvolutionAuthError):
            await stranger.send_text(ON_WHATSAPP, "hello")
        with pytest.raises(EvolutionAuthError):
            await stranger.connection_state()


async def test_every_adapter_exchange_conforms_to_the_contract(
    evo_contract: Any, evolution_checker: OpenAPIChecker, instant_time: Any
) -> None:
    await drive_adapter(evo_contract, instant_time)
    calls = evo_contract.calls()
    assert calls, "the simulator recorded no calls"
    problems = evolution_checker.check_records(calls)
    assert problems == [], "contract violations:\n" + "\n".join(problems)
    missing = REQUIRED_EXCHANGES - exchanges(evolution_checker, calls)
    assert not missing, f"never exercised: {sorted(missing)}"


def test_malformed_requests_get_the_documented_validation_bodies(
    evo_contract: Any, evolution_checker: OpenAPIChecker
) -> None:
    base = evo_contract.base_url
    headers = {"apikey": evo_contract.api_key}
    instance = evo_contract.instance
    with httpx.Client(base_url=base, headers=headers, timeout=30.0) as http:
        v1_body = {"number": "5511999990001", "textMessage": {"text": "hi"}}
        v1 = http.post(f"/message/sendText/{instance}", json=v1_body)
        empty = http.post(f"/chat/whatsappNumbers/{instance}", json={"numbers": []})
    assert v1.status_code == 400
    assert v1.json()["response"]["message"] == [['instance requires property "text"']]
    assert empty.status_code == 400
    assert "response" not in empty.json()
    calls = evo_contract.calls()
    assert {(c["path"].split("/")[1], c["status"]) for c in calls} == {
        ("message", 400),
        ("chat", 400),
    }
    assert evolution_checker.check_records(calls, check_request=False) == []
    requests = evolution_checker.check_records(calls)
    assert any("'text' is a required property" in problem for problem in requests)
    assert any("numbers" in problem for problem in requests)


def test_a_send_text_answer_in_the_stale_v1_docs_shape_would_be_caught(
    evo_contract: Any, evolution_checker: OpenAPIChecker
) -> None:
    with httpx.Client(
        base_url=evo_contract.base_url, headers={"apikey": evo_contract.api_key}, timeout=30.0
    ) as http:
        http.post(
            f"/message/sendText/{evo_contract.instance}",
            json={"number": "5511999990001", "text": "hi"},
        )
    (call,) = evo_contract.calls()
    assert evolution_checker.check_record(call) == []
    tampered = dict(call)
    tampered["response_json"] = {
        "key": {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": True},
        "message": {"extendedTextMessage": {"text": "hi"}},
        "messageTimestamp": "1717689097",
        "status": "PENDING",
    }
    problems = evolution_checker.check_record(tampered)
    assert problems == [
        "POST /message/sendText/{instance} -> 201: response.key: 'id' is a required property",
    ]
