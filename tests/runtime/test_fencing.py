"""Fencing right before each request leaves (providers/http.py rule 6, runtime/lease.py 6-7).

The issue's defect: a leader paused for 20 s (SIGSTOP) sent a WhatsApp message after the
standby had taken the lease, because the lease was checked once per client call, before the
rate-limit wait and the retries. Here the pause is simulated deterministically: the send's
first attempt is answered 429 (Retry-After 20), and the retry's wait is where the process
"sleeps" 20 s of the shared clock while the standby takes the lease. The transport counts what
actually left the process.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.providers.d1 import SqliteDatabase
from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.runtime.lease import LeaderLease, LeaseLostError, fenced_client
from reconciler.runtime.loop import guarded_client
from reconciler.runtime.migrate import migrate
from reconciler.settings import EvolutionSettings, Secret

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PHONE = "+5511912345678"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dbs(tmp_path: Path) -> AsyncIterator[tuple[SqliteDatabase, SqliteDatabase]]:
    path = tmp_path / "d1.sqlite"
    async with SqliteDatabase(path) as db:
        await migrate(db, MIGRATIONS)
    async with SqliteDatabase(path) as leader, SqliteDatabase(path) as standby:
        yield leader, standby


def gateway(sent: list[dict[str, Any]]) -> httpx.MockTransport:
    """sendText: 429 the first time, then 201 (a message that would go out)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if "/message/sendText/" not in request.url.path:
            return httpx.Response(404)
        sent.append(json.loads(request.content))
        if len(sent) == 1:
            return httpx.Response(429, headers={"retry-after": "20"})
        return httpx.Response(
            201, json={"key": {"id": "MSG1", "remoteJid": "x"}, "status": "PENDING"}
        )

    return httpx.MockTransport(answer)


Wrap = Callable[[EvolutionClient, Callable[[], object]], EvolutionClient]


@pytest.mark.parametrize("where", ["retry-backoff", "rate-limit-wait"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda client, fence: guarded_client(client, provider="whatsapp", fence=fence),
        lambda client, fence: fenced_client(client, fence),
    ],
    ids=["daemon-writer", "apply-writer"],
)
async def test_a_leader_paused_in_a_wait_sends_nothing_after_losing_the_lease(
    dbs: tuple[SqliteDatabase, SqliteDatabase], wrap: Wrap, where: str
) -> None:
    clock = Clock()
    leader = LeaderLease(dbs[0], holder="leader", ttl=15.0, clock=clock)
    standby = LeaderLease(dbs[1], holder="standby", ttl=15.0, clock=clock)
    assert await leader.try_acquire()

    async def paused(seconds: float) -> None:
        clock.now += max(seconds, 20.0)  # the process stops here (SIGSTOP, a long GC, ...)
        assert await standby.try_acquire()  # meanwhile the standby takes over

    async def instant(seconds: float) -> None:
        clock.now += 0.0

    sent: list[dict[str, Any]] = []
    client = EvolutionClient(
        EvolutionSettings(base_url="http://gateway", api_key=Secret("k" * 12), instance="main"),
        bucket=TokenBucket(
            capacity=100,
            period=1.0,
            clock=clock,
            sleep=paused if where == "rate-limit-wait" else instant,
        ),
        retry=RetryPolicy(attempts=3),
        transport=gateway(sent),
        sleep=paused if where == "retry-backoff" else instant,
    )
    writer = wrap(client, leader.ensure)
    with pytest.raises(LeaseLostError):
        await writer.send_text(PHONE, "your invoice is overdue")
    await client.aclose()

    assert len(sent) == 1  # the 429'd attempt only: the retry was fenced before it left
    assert standby.is_leader


async def test_without_a_pause_the_retry_goes_out(
    dbs: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    """The control: the same send, the lease kept, is retried and delivered once."""
    clock = Clock()
    leader = LeaderLease(dbs[0], holder="leader", ttl=60.0, clock=clock)
    assert await leader.try_acquire()

    async def short(seconds: float) -> None:
        clock.now += seconds

    sent: list[dict[str, Any]] = []
    client = EvolutionClient(
        EvolutionSettings(base_url="http://gateway", api_key=Secret("k" * 12), instance="main"),
        bucket=TokenBucket(capacity=100, period=1.0, clock=clock, sleep=short),
        retry=RetryPolicy(attempts=3),
        transport=gateway(sent),
        sleep=short,
    )
    message = await fenced_client(client, leader.ensure).send_text(PHONE, "hello")
    await client.aclose()
    assert message.id == "MSG1"
    assert len(sent) == 2
