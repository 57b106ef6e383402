"""The Evolution API simulator answers like the real server: guard order, exact bodies, states.

Every expectation here is a body or rule from ``contracts/evolution/CONTRACT.md`` (section in
each test's docstring); requests go over real HTTP to the ``evo`` fixture.
"""

from __future__ import annotations

import json

import pytest

from reconciler.sandbox.evolution_state import create_jid

from support.evolution import API_KEY, INSTANCE, EvolutionSandbox

SEND = f"/message/sendText/{INSTANCE}"
STATE = f"/instance/connectionState/{INSTANCE}"
NUMBERS = f"/chat/whatsappNumbers/{INSTANCE}"
CONNECT = f"/instance/connect/{INSTANCE}"


def test_unknown_instance_answers_404_before_the_apikey_is_checked(evo: EvolutionSandbox) -> None:
    """§1 guard order and §5.4 body: 404 even with a wrong or missing key."""
    expected = {
        "status": 404,
        "error": "Not Found",
        "response": {"message": ['The "acme-billing" instance does not exist']},
    }
    for key in ("wrong", None):
        with evo.http(api_key=key) as http:
            response = http.post("/message/sendText/acme-billing", json={})
        assert response.status_code == 404
        assert response.json() == expected


def test_wrong_or_missing_apikey_on_an_existing_instance_is_401_with_a_string_message(
    evo: EvolutionSandbox,
) -> None:
    """§5.5: ``message`` is the plain string ``Unauthorized``."""
    for key in ("wrong", None, ""):
        with evo.http(api_key=key) as http:
            response = http.get(STATE)
        assert response.status_code == 401
        assert response.json() == {
            "status": 401,
            "error": "Unauthorized",
            "response": {"message": "Unauthorized"},
        }


def test_the_instance_token_is_accepted_like_the_global_key(evo: EvolutionSandbox) -> None:
    """§1: the global key or the instance's own token."""
    with evo.http(api_key=evo.state.instance_token(INSTANCE)) as http:
        assert http.get(STATE).status_code == 200


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({}, ['instance requires property "number"', 'instance requires property "text"']),
        (
            {"number": "5511999999999", "textMessage": {"text": "hi"}, "options": {}},
            ['instance requires property "text"'],
        ),
        ({"number": 5511999999999, "text": "hi"}, ["Invalid format"]),
        (
            {"number": "5511999999999", "text": "hi", "delay": "1s"},
            ["Enter a value in milliseconds"],
        ),
        (
            {"number": "5511999999999", "text": "hi", "linkPreview": "no"},
            ["linkPreview is not of a type(s) boolean"],
        ),
    ],
)
def test_send_text_validation_errors_are_one_nested_array(
    evo: EvolutionSandbox, body: dict[str, object], messages: list[str]
) -> None:
    """§5.1 and §5.2: the message list wrapped in one more array."""
    with evo.http() as http:
        response = http.post(SEND, json=body)
    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "Bad Request",
        "response": {"message": [messages]},
    }


def test_blank_text_is_refused_after_schema_validation(evo: EvolutionSandbox) -> None:
    """§2: the schema allows "", the controller does not."""
    with evo.http() as http:
        response = http.post(SEND, json={"number": "5511999999999", "text": "   "})
    assert response.status_code == 400
    assert response.json()["response"] == {"message": ["Text is required"]}


def test_a_number_not_on_whatsapp_gets_the_onwhatsapp_object_in_the_exact_key_order(
    evo: EvolutionSandbox,
) -> None:
    """§5.3: ``jid, exists, number`` inside a one-element array; nothing is sent."""
    evo.state.set_on_whatsapp(["+274860794187802"], exists=False)
    with evo.http() as http:
        response = http.post(SEND, json={"number": "274860794187802", "text": "hi"})
    assert response.status_code == 400
    assert response.text == (
        '{"status":400,"error":"Bad Request","response":{"message":[{"jid":'
        '"274860794187802@s.whatsapp.net","exists":false,"number":"274860794187802"}]}}'
    )
    assert evo.state.messages_since() == []


def test_a_closed_instance_answers_500_connection_closed_in_either_variant(
    evo: EvolutionSandbox,
) -> None:
    """§5.6: the string message, and the ``["Error: Connection Closed"]`` variant of 2.3.0."""
    evo.state.disconnect(INSTANCE)
    body = {"number": "5511999999999", "text": "hi"}
    with evo.http() as http:
        first = http.post(SEND, json=body)
        assert evo.control("PUT", "/config", json={"connection_closed_body": "array"}).is_success
        second = http.post(SEND, json=body)
    assert first.status_code == second.status_code == 500
    assert first.json() == {
        "status": 500,
        "error": "Internal Server Error",
        "response": {"message": "Connection Closed"},
    }
    assert second.json()["response"] == {"message": ["Error: Connection Closed"]}
    assert evo.state.messages_since() == []


def test_a_stale_open_instance_reports_open_but_cannot_send(evo: EvolutionSandbox) -> None:
    """§3 caveat: ``open`` can be stale; the send then fails with Connection Closed."""
    assert evo.control(
        "PUT", f"/instances/{INSTANCE}", json={"state": "open", "stale": True}
    ).is_success
    with evo.http() as http:
        state = http.get(STATE).json()
        send = http.post(SEND, json={"number": "5511999999999", "text": "hi"})
    assert state == {"instance": {"instanceName": INSTANCE, "state": "open"}}
    assert send.status_code == 500


def test_send_text_answers_201_with_the_v2_message_object_at_virtual_time(
    evo: EvolutionSandbox,
) -> None:
    """§2.1: key.{remoteJid,fromMe,id}, PENDING, numeric messageTimestamp, conversation."""
    evo.clock.freeze()
    evo.clock.advance(86_400)
    now = int(evo.clock.now())
    with evo.http() as http:
        first = http.post(SEND, json={"number": "+55 (11) 99999-9999", "text": "Invoice due"})
        second = http.post(SEND, json={"number": "5511999999999", "text": "Again"})
    assert first.status_code == 201
    body = first.json()
    assert body["key"]["remoteJid"] == "5511999999999@s.whatsapp.net"
    assert body["key"]["fromMe"] is True
    assert len(body["key"]["id"]) == 22 and body["key"]["id"].startswith("3EB0")
    assert body["key"]["id"] != second.json()["key"]["id"]
    assert body["status"] == "PENDING"
    assert body["message"] == {"conversation": "Invoice due"}
    assert body["messageType"] == "conversation"
    assert body["messageTimestamp"] == now
    assert body["pushName"] == "Você"
    logged = evo.state.messages_since()
    assert [m["text"] for m in logged] == ["Invoice due", "Again"]
    assert logged[0]["timestamp"] == now and logged[0]["id"] == body["key"]["id"]


@pytest.mark.parametrize(
    ("number", "jid"),
    [
        ("5511999999999", "5511999999999@s.whatsapp.net"),  # DDD 11 < 31: ninth digit kept
        ("5531987654321", "553187654321@s.whatsapp.net"),  # DDD 31, line 8: ninth digit dropped
        ("5531912345678", "5531912345678@s.whatsapp.net"),  # line starts with 1 (< 7): kept
        ("5215512345678", "525512345678@s.whatsapp.net"),  # Mexico: mobile 1 dropped
        ("+44 7700 900123", "447700900123@s.whatsapp.net"),
        ("447700900123@s.whatsapp.net", "447700900123@s.whatsapp.net"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("1203630252461254861", "1203630252461254861@g.us"),  # 18+ digits: a group
    ],
)
def test_numbers_become_jids_by_the_servers_rules(number: str, jid: str) -> None:
    """§2 (createJid): stripping, group ids, MX/AR and Brazilian ninth-digit rules."""
    assert create_jid(number) == jid


def test_whatsapp_numbers_keeps_input_order_and_echoes_each_number(evo: EvolutionSandbox) -> None:
    """§6: one entry per input, ``number`` echoed as sent."""
    evo.state.set_on_whatsapp(["447700900123"], exists=False)
    with evo.http() as http:
        response = http.post(NUMBERS, json={"numbers": ["5511999999999", "+44 7700 900123"]})
    assert response.status_code == 200
    assert response.json() == [
        {"jid": "5511999999999@s.whatsapp.net", "exists": True, "number": "5511999999999"},
        {"jid": "447700900123@s.whatsapp.net", "exists": False, "number": "+44 7700 900123"},
    ]


def test_whatsapp_numbers_errors_are_the_raw_object_without_an_envelope(
    evo: EvolutionSandbox,
) -> None:
    """§6: ``{"status":400,"error":"Bad Request","message":[[...]]}``, no ``response`` key."""
    with evo.http() as http:
        empty = http.post(NUMBERS, json={"numbers": []})
        guarded = http.post("/chat/whatsappNumbers/nope", json={"numbers": []})
    assert empty.status_code == 400
    assert empty.json() == {
        "status": 400,
        "error": "Bad Request",
        "message": [["numbers does not meet minimum length of 1"]],
    }
    assert guarded.status_code == 404 and "response" in guarded.json()


def test_an_unmatched_route_answers_cannot_method_path(evo: EvolutionSandbox) -> None:
    """§1.1: the Express fallback."""
    with evo.http() as http:
        response = http.post("/message/sendText", json={})
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "error": "Not Found",
        "response": {"message": ["Cannot POST /message/sendText"]},
    }


def test_malformed_json_is_refused_by_the_body_parser_before_any_guard(
    evo: EvolutionSandbox,
) -> None:
    """§5.6 (derived): status 400, the default ``error``, a string message."""
    with evo.http(api_key=None) as http:
        response = http.post(
            "/message/sendText/nope",
            content=b'{"number": ',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Internal Server Error"
    assert isinstance(body["response"]["message"], str)


def test_connect_returns_the_state_when_open_and_a_qr_code_when_closed(
    evo: EvolutionSandbox,
) -> None:
    """§4: open → the connectionState body; close → QR object and ``connecting``."""
    with evo.http() as http:
        opened = http.get(CONNECT).json()
        evo.state.disconnect(INSTANCE)
        qr = http.get(CONNECT).json()
        again = http.get(CONNECT, params={"number": "5511999999999"}).json()
        state = http.get(STATE).json()
    assert opened == {"instance": {"instanceName": INSTANCE, "state": "open"}}
    assert qr["pairingCode"] is None and qr["code"].startswith("2@") and qr["count"] == 1
    assert qr["base64"].startswith("data:image/png;base64,")
    assert isinstance(again["pairingCode"], str) and len(again["pairingCode"]) == 8
    assert again["count"] == 2
    assert state["instance"]["state"] == "connecting"


def test_an_unloaded_instance_has_no_state_and_cannot_send(evo: EvolutionSandbox) -> None:
    """§3 and §5.6: ``state`` absent; sendText 500 with the TypeError text."""
    evo.state.set_state(INSTANCE, "unloaded")
    with evo.http() as http:
        state = http.get(STATE).json()
        send = http.post(SEND, json={"number": "5511999999999", "text": "hi"})
    assert state == {"instance": {"instanceName": INSTANCE}}
    assert send.status_code == 500
    assert "reading 'textMessage'" in send.json()["response"]["message"]


def test_the_call_log_has_the_cloudflare_record_format_and_never_the_apikey(
    evo: EvolutionSandbox,
) -> None:
    """Same keys as the Cloudflare simulator's log, so the contract tests read both."""
    with evo.http() as http:
        http.post(SEND, json={"number": "5511999999999", "text": "hi"})
    calls = evo.control("GET", "/calls").json()["calls"]
    assert len(calls) == 1
    record = calls[0]
    assert set(record) == {
        "seq",
        "at",
        "method",
        "path",
        "route",
        "query",
        "request_content_type",
        "request_json",
        "request_form",
        "request_files",
        "status",
        "response_json",
        "response_headers",
        "fault",
    }
    assert record["route"] == "/message/sendText/{instance}"
    assert record["path"] == SEND and record["status"] == 201
    assert API_KEY not in json.dumps(calls)


def test_injected_5xx_faults_use_the_error_envelope_and_are_marked_in_the_log(
    evo: EvolutionSandbox,
) -> None:
    """A fault answers after the guards, with the §1.1 envelope."""
    rule = {"path_prefix": "/instance/connectionState", "error_rate": 1.0, "error_status": 503}
    assert evo.control("POST", "/faults", json=rule).is_success
    with evo.http() as http:
        response = http.get(STATE)
        unknown = http.get("/instance/connectionState/nope")
    assert response.status_code == 503
    assert response.json()["status"] == 503 and "response" in response.json()
    assert unknown.status_code == 404
    assert [c["fault"] for c in evo.calls()] == ["error", None]


def test_a_queued_library_failure_can_still_deliver_the_message(evo: EvolutionSandbox) -> None:
    """§5.3: a 400 after the message actually went out (the Prisma case)."""
    failure = {"message": "PrismaClientKnownRequestError", "applied": True}
    assert evo.control("POST", "/send-failures", json=failure).is_success
    with evo.http() as http:
        failed = http.post(SEND, json={"number": "5511999999999", "text": "hi"})
        ok = http.post(SEND, json={"number": "5511999999999", "text": "hi"})
    assert failed.status_code == 400
    assert failed.json()["response"] == {"message": ["PrismaClientKnownRequestError"]}
    assert ok.status_code == 201
    assert len(evo.state.messages_since()) == 2


def test_control_endpoints_drive_instances_and_numbers(evo: EvolutionSandbox) -> None:
    """Disconnect, reconnect and mark numbers over HTTP."""
    assert evo.control("PUT", f"/instances/{INSTANCE}", json={"state": "close"}).is_success
    with evo.http() as http:
        assert http.get(STATE).json()["instance"]["state"] == "close"
        evo.control("PUT", f"/instances/{INSTANCE}", json={"state": "open"})
        assert http.get(STATE).json()["instance"]["state"] == "open"
    marked = evo.control("POST", "/numbers", json={"numbers": ["+15550001111"]}).json()
    assert marked == {"not_on_whatsapp": ["15550001111"]}
    assert evo.control("PUT", f"/instances/{INSTANCE}", json={"state": "asleep"}).status_code == 400
    assert evo.control("PUT", "/instances/nope", json={"state": "open"}).status_code == 404


def test_message_ids_never_repeat_even_across_resets(evo: EvolutionSandbox) -> None:
    """``key.id`` is unique per call (§8.5); a reset must not replay earlier ids."""
    body = {"number": "5511999999999", "text": "hi"}
    with evo.http() as http:
        before = http.post(SEND, json=body).json()["key"]["id"]
        evo.state.reset()
        after = http.post(SEND, json=body).json()["key"]["id"]
    assert before != after
