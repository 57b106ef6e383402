"""Fixtures for the action handler tests: the simulators, a migrated D1 and action builders.

Called by: pytest, for ``tests/runtime/actions/``. Uses the session Cloudflare simulator of
``tests/conftest.py`` (``cf``: reset, here frozen so only the handlers' sleeps move time),
the session Evolution API simulator (``evo`` of :mod:`support.evolution`), and migrates a
fresh SQLite D1 per test with the repository's migrations. ``FakeStripe`` plays
``BillingSource`` with literal facts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.facts import CustomerBilling, Invoice
from reconciler.core.plan import Action, ActionKind, Cause, JsonValue, Lane, action_identity
from reconciler.errors import NotFoundError
from reconciler.providers.cloudflare import CloudflareClient
from reconciler.providers.d1 import SqliteDatabase
from reconciler.providers.evolution import EvolutionClient
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.retry import RetryPolicy
from reconciler.runtime.actions import ActionSettings, RoutingConfig, World, handlers_for
from reconciler.runtime.handler import ActionContext, Handler
from reconciler.runtime.migrate import migrate
from reconciler.settings import CloudflareSettings, Secret

from support.evolution import EvolutionSandbox

REPO = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05)
PROJECT = "acme-home"

CONTENT: dict[str, Any] = {
    "format": 1,
    "lang": "en",
    "pages": [
        {
            "path": "/",
            "title": "Acme Bakery",
            "blocks": [
                {"type": "hero", "heading": "Bread, baked at dawn"},
                {"type": "text", "text": "Open every day."},
            ],
        },
        {
            "path": "/contact",
            "title": "Contact",
            "blocks": [
                {
                    "type": "contact_form",
                    "fields": [{"name": "name", "label": "Your name", "required": True}],
                    "submit_label": "Send",
                    "target": "whatsapp",
                    "recipient": "+15551234567",
                }
            ],
        },
    ],
    "assets": [],
}


class Crash(Exception):
    """Raised at a checkpoint to play a killed process."""


@dataclass
class Checkpoints:
    """Records every checkpoint passed; raises :class:`Crash` at ``crash_at``."""

    crash_at: str | None = None
    passed: list[str] = field(default_factory=list)

    def __call__(self, name: str) -> None:
        self.passed.append(name)
        if name == self.crash_at:
            self.crash_at = None
            raise Crash(name)


class FakeStripe:
    """``BillingSource`` over literal facts; ``invoices`` answers ``invoice(id)``."""

    def __init__(self) -> None:
        self.billing: dict[str, CustomerBilling] = {}
        self.invoices: dict[str, Invoice] = {}
        self.reads: list[str] = []

    async def customer_billing(self, customer_ids: Sequence[str]) -> dict[str, CustomerBilling]:
        self.reads.extend(customer_ids)
        return {c: self.billing[c] for c in customer_ids if c in self.billing}

    async def invoice(self, invoice_id: str) -> Invoice:
        if invoice_id not in self.invoices:
            raise NotFoundError("stripe", f"no such invoice {invoice_id}")
        return self.invoices[invoice_id]


def make_action(
    kind: ActionKind,
    target: str,
    after: Mapping[str, JsonValue],
    *,
    before: Mapping[str, JsonValue] | None = None,
    tenant: str | None = "acme",
    site: str | None = PROJECT,
) -> Action:
    """An action as the planner would make it."""
    return Action(
        id=action_identity(kind, target, after),
        kind=kind,
        target=target,
        tenant=tenant,
        site=site,
        before=dict(before or {}),
        after=dict(after),
        reason="test",
        source=None,
        cause=Cause.CHANGE,
        lane=Lane.URGENT if kind in (ActionKind.ROLLBACK, ActionKind.UNLOCK) else Lane.CHANGE,
    )


@dataclass
class Rig:
    """Everything a handler test needs: the world, its handlers, the simulators, the database."""

    world: World
    handlers: Mapping[ActionKind, Handler]
    cf: Any
    evo: EvolutionSandbox
    stripe: FakeStripe
    db: SqliteDatabase

    def ctx(
        self, *, resumed: bool = False, checkpoints: Checkpoints | None = None
    ) -> ActionContext:
        return ActionContext(
            now=self.cf.clock.now,
            revision="c0ffee",
            resumed=resumed,
            checkpoint=checkpoints if checkpoints is not None else Checkpoints(),
        )

    async def run(
        self, action: Action, *, resumed: bool = False, checkpoints: Checkpoints | None = None
    ) -> Any:
        return await self.handlers[action.kind](
            action, self.ctx(resumed=resumed, checkpoints=checkpoints)
        )

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self.db.query(sql, params)

    def with_routing(self, routing: RoutingConfig) -> Rig:
        """The same rig acting with other routing settings (entitlements, Worker source)."""
        world = replace(self.world, routing=routing)
        return Rig(world, handlers_for(world), self.cf, self.evo, self.stripe, self.db)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    """A fresh SQLite D1 with every migration of the repository applied."""
    database = SqliteDatabase(tmp_path / "d1.sqlite")
    await migrate(database, REPO / "migrations")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def rig(cf: Any, evo: EvolutionSandbox, db: SqliteDatabase) -> AsyncIterator[Rig]:
    """Handlers wired to the simulators and the database; the Cloudflare clock frozen."""
    cf.clock.freeze()

    async def advance(seconds: float) -> None:
        cf.clock.advance(seconds)
        await asyncio.sleep(0)

    settings = CloudflareSettings(
        base_url=cf.base_url, token=Secret(cf.token), account_id=cf.account_id, zone_id=cf.zone_id
    )
    cloudflare = CloudflareClient(
        settings,
        bucket=TokenBucket(capacity=100_000, period=300),
        retry=FAST,
        rng=random.Random(7),
    )
    evolution = EvolutionClient(
        evo.settings(), bucket=TokenBucket(capacity=1000, period=60), retry=FAST
    )
    stripe = FakeStripe()
    world = World(
        cloudflare=cloudflare,
        db=db,
        stripe=stripe,
        evolution=evolution,
        settings=ActionSettings(deploy_timeout=120.0, deploy_poll_interval=3.0),
        sleep=advance,
    )
    try:
        yield Rig(world, handlers_for(world), cf, evo, stripe, db)
    finally:
        await cloudflare.aclose()
        await evolution.aclose()
        cf.clock.thaw()
