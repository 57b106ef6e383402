"""No secret in any output (reconciler/redact.py): providers that echo their credential.

A loopback "hostile provider" answers every request with an error whose body echoes the
credential it received: Cloudflare (403 envelope), D1 over REST (400 envelope), Stripe (401
error object) and the Evolution gateway (500 with the ``apikey`` in its message). The
credentials are random and shaped like nothing a pattern knows, so only the registered-secret
rule can mask them. Every output format is then grepped: plan text, JSON, Markdown (stdout and
``--out``), apply text and JSON, the error lines, a daemon log line, the status and metrics
answers of the HTTP server.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main
from reconciler.errors import TransientError
from reconciler.runtime.logging import JsonFormatter, RedactingFilter
from reconciler.runtime.metrics import Metrics
from reconciler.runtime.server import HealthReport, create_app
from reconciler.settings import Secret

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECS = REPO_ROOT / "specs"

CF_TOKEN = "cftok" + secrets.token_hex(16)
EVO_KEY = "evokey" + secrets.token_hex(16)
STRIPE_KEY = "stripekey" + secrets.token_hex(16)
PLAN_KEY = "plankey" + secrets.token_hex(16)
ALL = (CF_TOKEN, EVO_KEY, STRIPE_KEY, PLAN_KEY)
ECHOES = (
    "credential *** has no access",  # Cloudflare
    "D1 refused *** for this database",  # D1 over REST
    "key *** is not valid",  # Stripe
    "apikey *** was rejected",  # Evolution
)


class _Echo(BaseHTTPRequestHandler):
    """Every request fails, echoing the credential it carried."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        if self.path.startswith("/evo/"):
            status, body = (
                500,
                {
                    "status": 500,
                    "error": "Internal Server Error",
                    "response": {"message": [f"apikey {self.headers.get('apikey')} was rejected"]},
                },
            )
        elif self.path.startswith("/stripe/"):
            status, body = (
                401,
                {
                    "error": {
                        "message": f"key {bearer} is not valid",
                        "type": "invalid_request_error",
                    }
                },
            )
        elif "/d1/database/" in self.path:
            status, body = (
                400,
                {
                    "success": False,
                    "errors": [{"code": 7500, "message": f"D1 refused {bearer} for this database"}],
                    "messages": [],
                    "result": None,
                },
            )
        else:
            status, body = (
                403,
                {
                    "success": False,
                    "errors": [{"code": 10000, "message": f"credential {bearer} has no access"}],
                    "messages": [],
                    "result": None,
                },
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(hostile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    values = {
        "CLOUDFLARE_API_BASE": f"{hostile}/cf",
        "CLOUDFLARE_API_TOKEN": CF_TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": "acc",
        "CLOUDFLARE_ZONE_ID": "zone",
        "D1_BACKEND": "d1",
        "D1_DATABASE_ID": "db",
        "STRIPE_API_BASE": f"{hostile}/stripe",
        "STRIPE_API_KEY": STRIPE_KEY,
        "EVOLUTION_API_BASE": f"{hostile}/evo",
        "EVOLUTION_API_KEY": EVO_KEY,
        "EVOLUTION_INSTANCE": "main",
        "RECONCILER_PLAN_KEY": PLAN_KEY,
        "DNS_RESOLVER": "off",
    }
    for name in ("RECONCILER_SANDBOX_CONTROL", "RECONCILER_CRASH_AT", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def clean(text: str) -> None:
    for secret in ALL:
        assert secret not in text
    assert "***" in text  # the echo reached this output, masked


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--format", "text"],
        ["plan", "--format", "json"],
        ["plan", "--format", "markdown"],
        ["plan", "--format", "markdown", "--out", "{out}"],
        ["plan", "--format", "json", "--out", "{out}"],
        ["apply", "--yes", "--format", "text"],
        ["apply", "--yes", "--format", "json"],
    ],
    ids=["plan-text", "plan-json", "plan-markdown", "pr-comment-file", "saved-plan-file",
         "apply-text", "apply-json"],
)  # fmt: skip
def test_every_output_masks_each_providers_echoed_credential(
    env: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every provider hostile: the command stops with one error line per unreadable provider,
    each quoting the body that echoed its credential, masked; nothing else shows it."""
    out = env / "written"
    argv = [arg.replace("{out}", str(out)) for arg in args]
    assert main([*argv, "--specs", str(SPECS)]) == 1
    captured = capsys.readouterr()
    clean(captured.out + captured.err)
    for echo in ECHOES:  # each provider's error path was taken, and masked
        assert echo in captured.err
    if out.exists():
        for secret in ALL:
            assert secret not in out.read_text()


def test_an_evolution_error_in_a_log_line_is_masked(env: Path) -> None:
    from reconciler.providers.evolution import EvolutionClient
    from reconciler.providers.ratelimit import TokenBucket
    from reconciler.providers.retry import NO_RETRY
    from reconciler.wiring import load_settings

    settings = load_settings()
    client = EvolutionClient(
        settings.evolution, bucket=TokenBucket(capacity=10, period=1.0), retry=NO_RETRY
    )
    stream = io.StringIO()
    # The daemon's handler (setup_logging's filter and format), on a logger of its own so the
    # process's logging configuration is left as it was.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("reconciler.test.redaction")
    logger.addHandler(handler)

    async def fail() -> None:
        try:
            await client.send_text("+5511999990000", "hello")
        except TransientError as exc:
            logger.error("send failed: %s", exc)
        finally:
            await client.aclose()

    try:
        asyncio.run(fail())
    finally:
        logger.removeHandler(handler)
    clean(stream.getvalue())


def test_status_and_metrics_answers_are_masked(env: Path) -> None:
    from reconciler.wiring import load_settings

    load_settings()  # registers the configured secrets, as every command does
    metrics = Metrics()
    error = TransientError("whatsapp", f"server error (500: apikey {EVO_KEY} was rejected)")
    app = create_app(
        metrics=metrics,
        health=lambda: HealthReport(ok=False, details={"last_error": str(error), "raw": EVO_KEY}),
        ready=lambda: True,
        on_git_push=_never,
        on_stripe_event=_never,
        git_secret=Secret(""),
        stripe_verifier=_refuse,
    )

    async def ask() -> tuple[str, str, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
            health = (await http.get("/healthz")).text
            metrics_text = (await http.get("/metrics")).text
            stripe = await http.post(
                "/webhooks/billing/stripe", content=b"{}", headers={"stripe-signature": "t=1"}
            )
            return health, metrics_text, stripe.text

    health, metrics_text, stripe = asyncio.run(ask())
    clean(health)
    assert EVO_KEY not in metrics_text
    clean(stripe)


async def _never(_: object) -> None:
    raise AssertionError("no webhook is accepted here")


def _refuse(payload: bytes, signature: str) -> object:
    from reconciler.errors import PermanentError

    raise PermanentError("stripe", f"webhook rejected: signed with {STRIPE_KEY}")


def test_the_status_command_masks_them(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["status"])
    captured = capsys.readouterr()
    assert CF_TOKEN not in captured.out + captured.err
