"""The executor with fake handlers and a migrated SQLite D1 (rules in runtime/execute.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.core.outcome import Outcome, Status
from reconciler.core.plan import Action, ActionKind, Lane
from reconciler.core.report_render import progress_line, render_report_json, render_report_text
from reconciler.errors import NotFoundError, PlanError, TransientError
from reconciler.providers.d1 import SqliteDatabase, Statement, StatementResult
from reconciler.runtime.checkpoints import CRASH_EXIT_CODE, CrashingCheckpoints
from reconciler.runtime.execute import Progress, execute
from reconciler.runtime.handler import ActionContext
from reconciler.runtime.journal import Journal

from support.execute import (
    NOW,
    REPO,
    Clock,
    FakeHandler,
    action,
    events,
    handlers_for,
    intent,
    migrated_db,
    plan_of,
    rows,
)


@pytest.fixture
async def ledger(tmp_path: Path) -> tuple[Path, SqliteDatabase]:
    path = tmp_path / "d1.sqlite"
    db = await migrated_db(path)
    yield path, db
    await db.close()


def journal_on(db: SqliteDatabase, clock: Clock | None = None) -> Journal:
    return Journal(db, now=clock or Clock())


# --- rule 1: dependency order --------------------------------------------------------------


async def test_an_action_starts_only_after_its_dependencies_finished(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    sync = action(ActionKind.SYNC_BILLING, "acme")
    lock = action(ActionKind.HARD_LOCK, "acme", depends_on=[sync])
    publish = action(ActionKind.PUBLISH, "acme-home", depends_on=[lock])
    other = action(ActionKind.CREATE_HOSTNAME, "www.bistro.com")
    finished: list[str] = []

    async def record(a: Action, ctx: ActionContext) -> Outcome:
        for dep in a.depends_on:
            assert dep in finished, f"{a.target} started before its dependency {dep}"
        await asyncio.sleep(0)
        finished.append(a.id)
        return Outcome(a.id, Status.APPLIED)

    handler = FakeHandler("d1", record)
    # Plan order deliberately puts dependents first: the executor must not trust it.
    report = await execute(
        plan_of(publish, lock, other, sync),
        handlers=handlers_for(handler),
        journal=journal_on(db),
        limits={"d1": 4},
        now=Clock(),
    )
    assert finished.index(sync.id) < finished.index(lock.id) < finished.index(publish.id)
    assert [o.action_id for o in report.outcomes] == [publish.id, lock.id, other.id, sync.id]
    assert report.ok


# --- rule 2: bounded concurrency and lanes --------------------------------------------------


async def test_concurrency_is_bounded_per_provider(ledger: tuple[Path, SqliteDatabase]) -> None:
    _, db = ledger
    full = asyncio.Event()

    def holding(limit: int) -> FakeHandler:
        handler = FakeHandler()

        async def hold(a: Action, ctx: ActionContext) -> Outcome:
            if handler.in_flight == limit:
                full.set()
            await asyncio.wait_for(full.wait(), timeout=60)
            for _ in range(5):
                await asyncio.sleep(0)
            return Outcome(a.id, Status.APPLIED)

        handler.behaviour = hold
        return handler

    cloudflare = holding(3)
    cloudflare.provider = "cloudflare"
    whatsapp = FakeHandler("whatsapp")

    async def slow_send(a: Action, ctx: ActionContext) -> Outcome:
        for _ in range(5):
            await asyncio.sleep(0)
        return Outcome(a.id, Status.APPLIED)

    whatsapp.behaviour = slow_send
    hostnames = [action(ActionKind.CREATE_HOSTNAME, f"h{i}.example.com") for i in range(10)]
    messages = [action(ActionKind.SEND_DUNNING, f"in_{i}") for i in range(4)]
    handlers = {ActionKind.CREATE_HOSTNAME: cloudflare, ActionKind.SEND_DUNNING: whatsapp}

    report = await execute(
        plan_of(*hostnames, *messages),
        handlers=handlers,
        journal=journal_on(db),
        limits={"cloudflare": 3, "whatsapp": 1},
        now=Clock(),
    )
    assert report.ok
    assert cloudflare.max_in_flight == 3  # reached, never exceeded
    assert whatsapp.max_in_flight == 1
    assert len(cloudflare.calls) == 10
    assert len(whatsapp.calls) == 4


async def test_the_urgent_lane_starts_first_among_ready_actions(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    handler = FakeHandler("cloudflare")
    publish = action(ActionKind.PUBLISH, "acme-home")
    create = action(ActionKind.CREATE_HOSTNAME, "www.acme.com")
    rollback = action(ActionKind.ROLLBACK, "bistro-menu")
    assert rollback.lane is Lane.URGENT

    await execute(
        plan_of(publish, create, rollback),
        handlers=handlers_for(handler),
        journal=journal_on(db),
        limits={"cloudflare": 1},
        now=Clock(),
    )
    assert handler.called_ids == [rollback.id, publish.id, create.id]


# --- rule 3: blocked dependents --------------------------------------------------------------


async def test_a_failed_dependency_blocks_its_dependents_and_independent_actions_still_run(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    sync = action(ActionKind.SYNC_BILLING, "acme")
    lock = action(ActionKind.SOFT_LOCK, "acme", depends_on=[sync])
    dunning = action(ActionKind.SEND_DUNNING, "in_1", depends_on=[lock])
    other = action(ActionKind.PUBLISH, "bistro-menu")

    async def fail_sync(a: Action, ctx: ActionContext) -> Outcome:
        if a.kind is ActionKind.SYNC_BILLING:
            raise NotFoundError("stripe", "no such customer: cus_acme", status=404)
        return Outcome(a.id, Status.APPLIED)

    handler = FakeHandler("d1", fail_sync)
    report = await execute(
        plan_of(sync, lock, dunning, other),
        handlers=handlers_for(handler),
        journal=journal_on(db),
        limits={"d1": 2},
        now=Clock(),
    )
    statuses = [o.status for o in report.outcomes]
    assert statuses == [
        Status.FAILED_PERMANENT,
        Status.BLOCKED,
        Status.BLOCKED,
        Status.APPLIED,
    ]
    assert report.outcomes[1].message == (
        "blocked: sync_billing Tenant/acme failed: stripe: no such customer: cus_acme"
    )
    assert report.outcomes[2].message == report.outcomes[1].message  # names the root failure
    assert set(handler.called_ids) == {sync.id, other.id}
    assert intent(path, lock.id) is None  # never attempted, never journalled


# --- rules 4 and 5: the intent journal -------------------------------------------------------


async def test_the_intent_is_written_and_pending_before_the_handler_runs(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    publish = action(ActionKind.PUBLISH, "acme-home")
    seen: list[str] = []

    async def look(a: Action, ctx: ActionContext) -> Outcome:
        row = intent(path, a.id)
        assert row is not None, "the handler ran before its intent was written"
        seen.append(row["state"])
        assert not ctx.resumed
        return Outcome(a.id, Status.APPLIED, data={"deployment_id": "d-9"})

    report = await execute(
        plan_of(publish),
        handlers=handlers_for(FakeHandler("cloudflare", look)),
        journal=journal_on(db),
        now=Clock(),
    )
    assert seen == ["pending"]
    assert report.ok
    row = intent(path, publish.id)
    assert row is not None
    assert row["state"] == "done"
    assert row["outcome"]["data"] == {"deployment_id": "d-9"}
    assert events(path, publish.id) == ["action.started", "action.applied"]


async def test_a_pending_intent_left_by_a_crash_resumes_with_the_resumed_flag(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    journal = journal_on(db)
    create = action(ActionKind.CREATE_HOSTNAME, "www.acme.com")
    await journal.begin(create, revision=None, planned_at=NOW)  # an earlier run died here
    handler = FakeHandler("cloudflare")

    report = await execute(
        plan_of(create), handlers=handlers_for(handler), journal=journal, now=Clock()
    )
    assert handler.calls == [(create.id, True)]
    assert report.outcomes[0].status is Status.APPLIED
    assert events(path, create.id) == ["action.started", "action.resumed", "action.applied"]


async def test_a_done_intent_finished_after_the_observation_is_unchanged_without_a_call(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock(NOW + 10)
    journal = journal_on(db, clock)
    send = action(ActionKind.SEND_DUNNING, "in_1")
    await journal.begin(send, revision=None, planned_at=NOW)
    await journal.finish(send, Outcome(send.id, Status.APPLIED, data={"message_id": "m-1"}))
    handler = FakeHandler("whatsapp")

    report = await execute(
        plan_of(send, planned_at=NOW), handlers=handlers_for(handler), journal=journal, now=clock
    )
    assert handler.calls == []
    assert report.outcomes[0].status is Status.UNCHANGED
    assert report.outcomes[0].data == {"message_id": "m-1"}
    assert events(path, send.id) == ["action.started", "action.applied"]  # nothing written


async def test_a_done_intent_older_than_the_observation_runs_again_looking_first(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    clock = Clock(NOW - 3600)
    journal = journal_on(db, clock)
    lock = action(ActionKind.HARD_LOCK, "acme")
    await journal.begin(lock, revision=None, planned_at=NOW)
    await journal.finish(lock, Outcome(lock.id, Status.APPLIED))
    clock.value = NOW + 1
    handler = FakeHandler("d1")

    report = await execute(
        plan_of(lock, planned_at=NOW), handlers=handlers_for(handler), journal=journal, now=clock
    )
    assert handler.calls == [(lock.id, True)]
    assert report.outcomes[0].status is Status.APPLIED
    assert events(path, lock.id)[-2:] == ["action.redone", "action.applied"]


async def test_a_failed_intent_is_attempted_again(ledger: tuple[Path, SqliteDatabase]) -> None:
    path, db = ledger
    journal = journal_on(db)
    publish = action(ActionKind.PUBLISH, "acme-home")
    await journal.begin(publish, revision=None, planned_at=NOW)
    await journal.finish(publish, Outcome(publish.id, Status.FAILED_TRANSIENT, "timeout"))
    handler = FakeHandler("cloudflare")

    report = await execute(
        plan_of(publish), handlers=handlers_for(handler), journal=journal, now=Clock()
    )
    assert handler.calls == [(publish.id, True)]
    assert report.ok
    row = intent(path, publish.id)
    assert row is not None
    assert row["state"] == "done"


# --- rule 6: errors ---------------------------------------------------------------------------


async def test_provider_errors_become_transient_or_permanent_outcomes(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    busy = action(ActionKind.CREATE_HOSTNAME, "busy.example.com")
    bad = action(ActionKind.CREATE_HOSTNAME, "bad.example.com")

    async def fail(a: Action, ctx: ActionContext) -> Outcome:
        if a.id == busy.id:
            raise TransientError("cloudflare", "429 Too Many Requests", retry_after=30.0)
        raise NotFoundError("cloudflare", "zone not found", status=404)

    report = await execute(
        plan_of(busy, bad),
        handlers=handlers_for(FakeHandler("cloudflare", fail)),
        journal=journal_on(db),
        now=Clock(),
    )
    transient, permanent = report.outcomes
    assert transient.status is Status.FAILED_TRANSIENT
    assert transient.retry_after == 30.0
    assert permanent.status is Status.FAILED_PERMANENT
    assert "zone not found" in permanent.message
    for a in (busy, bad):
        row = intent(path, a.id)
        assert row is not None
        assert row["state"] == "failed"


async def test_an_unexpected_exception_fails_the_intent_and_propagates(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    buggy = action(ActionKind.SYNC_BILLING, "acme")
    dependent = action(ActionKind.SOFT_LOCK, "acme", depends_on=[buggy])

    async def crash(a: Action, ctx: ActionContext) -> Outcome:
        raise KeyError("amount_due")

    handler = FakeHandler("d1", crash)
    with pytest.raises(KeyError, match="amount_due"):
        await execute(
            plan_of(buggy, dependent),
            handlers=handlers_for(handler),
            journal=journal_on(db),
            now=Clock(),
        )
    row = intent(path, buggy.id)
    assert row is not None
    assert row["state"] == "failed"
    assert row["outcome"]["error"] == "KeyError"
    assert events(path, buggy.id) == ["action.started", "action.crashed"]
    assert handler.called_ids == [buggy.id]  # nothing new starts after a bug


async def test_a_plan_with_a_kind_nobody_handles_is_refused_before_anything_runs(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    handler = FakeHandler("cloudflare")
    publish = action(ActionKind.PUBLISH, "acme-home")
    unlock = action(ActionKind.UNLOCK, "acme")
    with pytest.raises(PlanError, match="no handler for unlock"):
        await execute(
            plan_of(publish, unlock),
            handlers={ActionKind.PUBLISH: handler},
            journal=journal_on(db),
            now=Clock(),
        )
    assert handler.calls == []
    assert intent(path, publish.id) is None


# --- rule 7 and progress ----------------------------------------------------------------------


async def test_checkpoints_surround_the_handler_and_reach_it(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    reached: list[str] = []

    async def upload(a: Action, ctx: ActionContext) -> Outcome:
        ctx.checkpoint("publish.after-upload")
        return Outcome(a.id, Status.APPLIED)

    await execute(
        plan_of(action(ActionKind.PUBLISH, "acme-home")),
        handlers=handlers_for(FakeHandler("cloudflare", upload)),
        journal=journal_on(db),
        now=Clock(),
        checkpoint=reached.append,
    )
    assert reached == ["execute.after-intent", "publish.after-upload", "execute.before-finish"]


async def test_progress_reports_each_action_starting_and_finishing(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    seen: list[Progress] = []
    actions = [action(ActionKind.CREATE_HOSTNAME, f"h{i}.example.com") for i in range(3)]
    await execute(
        plan_of(*actions),
        handlers=handlers_for(FakeHandler("cloudflare")),
        journal=journal_on(db),
        now=Clock(),
        progress=seen.append,
    )
    finished = [p for p in seen if p.outcome is not None]
    assert [p.index for p in finished] == [1, 2, 3]
    assert all(p.total == 3 for p in seen)
    assert len(seen) == 6


async def test_the_report_renders_as_parseable_json_and_text(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    _, db = ledger
    ok = action(ActionKind.PUBLISH, "acme-home")
    bad = action(ActionKind.SEND_DUNNING, "in_1")

    async def mixed(a: Action, ctx: ActionContext) -> Outcome:
        if a.id == bad.id:
            raise TransientError("whatsapp", "instance disconnected", retry_after=60.0)
        return Outcome(a.id, Status.APPLIED)

    report = await execute(
        plan_of(ok, bad),
        handlers=handlers_for(FakeHandler("whatsapp", mixed)),
        journal=journal_on(db),
        now=Clock(),
    )
    document = json.loads(render_report_json(report))
    assert document["format_version"] == "1"
    assert document["ok"] is False
    assert [o["status"] for o in document["outcomes"]] == ["applied", "failed_transient"]
    assert document["outcomes"][1]["retry_after"] == 60.0
    text = render_report_text(report)
    assert text.startswith("Apply: 1 applied, 1 failed_transient.")
    assert "instance disconnected" in text


# --- the crash hook ---------------------------------------------------------------------------


def test_crashing_checkpoints_kill_a_process_with_137_at_the_named_hit() -> None:
    script = (
        "from reconciler.runtime.checkpoints import CrashingCheckpoints\n"
        "c = CrashingCheckpoints('publish.after-upload:2')\n"
        "c('publish.after-upload'); print('first hit survived', flush=True)\n"
        "c('execute.after-intent'); c('publish.after-upload')\n"
        "print('second hit survived', flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == CRASH_EXIT_CODE
    assert "first hit survived" in result.stdout
    assert "second hit survived" not in result.stdout
    assert "killed at checkpoint publish.after-upload" in result.stderr


def test_a_wildcard_counts_every_checkpoint() -> None:
    kills: list[int] = []
    checkpoints = CrashingCheckpoints("*:3", kill=kills.append)
    checkpoints("a")
    checkpoints("b")
    assert kills == []
    checkpoints("a")
    assert kills == [CRASH_EXIT_CODE]


@pytest.mark.parametrize("spec", ["publish", "publish:0", ":1", "a:1,b", "a:x"])
def test_a_malformed_crash_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="name:N"):
        CrashingCheckpoints(spec)


CRASHING_APPLY = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from support.execute import FakeHandler, action, handlers_for, plan_of, Clock
from reconciler.core.plan import ActionKind
from reconciler.providers.d1 import SqliteDatabase, Statement, StatementResult
from reconciler.runtime.checkpoints import CrashingCheckpoints
from reconciler.runtime.execute import execute
from reconciler.runtime.journal import Journal

async def main():
    db = SqliteDatabase({db!r})
    plan = plan_of(action(ActionKind.SEND_DUNNING, "in_1"))
    await execute(plan, handlers=handlers_for(FakeHandler("whatsapp")),
                  journal=Journal(db, now=Clock()), now=Clock(),
                  checkpoint=CrashingCheckpoints("execute.before-finish:1"))
    print("finished")

asyncio.run(main())
"""


async def test_a_run_killed_after_the_side_effect_resumes_with_the_intent_pending(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    script = CRASHING_APPLY.format(tests=str(Path(__file__).parents[1]), db=str(path))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == CRASH_EXIT_CODE, stderr.decode()
    assert b"finished" not in stdout
    send = action(ActionKind.SEND_DUNNING, "in_1")
    row = intent(path, send.id)
    assert row is not None
    assert row["state"] == "pending"

    handler = FakeHandler("whatsapp")
    report = await execute(
        plan_of(send), handlers=handlers_for(handler), journal=journal_on(db), now=Clock()
    )
    assert handler.calls == [(send.id, True)]  # the handler is told to look before sending
    assert report.ok
    assert events(path, send.id) == ["action.started", "action.resumed", "action.applied"]


def test_a_progress_line_names_the_action_its_outcome_and_its_time() -> None:
    publish = action(ActionKind.PUBLISH, "acme-home", after={"version": 13})
    done = Outcome(publish.id, Status.APPLIED)
    line = progress_line(index=3, total=12, action=publish, outcome=done, seconds=4.21)
    assert line == "[3/12] publish acme-home production v13 ... applied (4.2s)"
    failed = Outcome(publish.id, Status.FAILED_PERMANENT, "send to +5511912345678 refused")
    line = progress_line(index=4, total=12, action=publish, outcome=failed, seconds=1.0)
    assert line.endswith("failed_permanent: send to +55119••••5678 refused")


# --- a cancelled pass takes its actions with it --------------------------------------------


async def test_cancelling_a_pass_cancels_its_running_actions_and_leaves_intents_pending(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    started: list[str] = []
    both_started = asyncio.Event()
    cancelled: list[str] = []

    async def hang(action: Action, ctx: ActionContext) -> Outcome:
        started.append(action.id)
        if len(started) == 2:
            both_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(action.id)
            raise
        return Outcome(action_id=action.id, status=Status.APPLIED)

    handler = FakeHandler(behaviour=hang)
    first = action(ActionKind.CREATE_HOSTNAME, "www.acme.com")
    second = action(ActionKind.CREATE_HOSTNAME, "shop.acme.com")
    task = asyncio.create_task(
        execute(
            plan_of(first, second),
            handlers=handlers_for(handler),
            journal=journal_on(db),
            now=Clock(),
        )
    )
    await asyncio.wait_for(both_started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == sorted([first.id, second.id])
    assert handler.in_flight == 0
    assert intent(path, first.id)["state"] == "pending"


class OpeningHandler(FakeHandler):
    """A fake whose opening reads ride in the intent's batch and whose record rides after."""

    def __init__(self) -> None:
        super().__init__("cloudflare")
        self.opened: list[tuple[StatementResult, ...] | None] = []

    def opening(self, action: Action, now: float, unless: Statement) -> list[Statement]:
        return [Statement("SELECT COUNT(*) AS n FROM intents WHERE action_id = ?", (action.id,))]

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        self.opened.append(ctx.opened)
        assert ctx.record is not None
        ctx.record(
            [Statement("INSERT INTO tenants (id, name) VALUES (?, ?)", (action.target, "x"))]
        )
        return await super().__call__(action, ctx)


async def test_a_handlers_opening_rides_with_its_intent_and_its_record_with_the_outcome(
    ledger: tuple[Path, SqliteDatabase],
) -> None:
    path, db = ledger
    batches: list[int] = []
    sent = db.batch

    async def counted(statements: list[Statement]) -> list[StatementResult]:
        batches.append(len(statements))
        return await sent(statements)

    db.batch = counted  # type: ignore[method-assign]
    handler = OpeningHandler()
    actions = [action(ActionKind.UNLOCK, f"t{i}") for i in range(3)]
    report = await execute(
        plan_of(*actions),
        handlers={ActionKind.UNLOCK: handler},
        journal=journal_on(db),
        limits={"cloudflare": 1},
        now=Clock(),
    )
    assert report.ok
    # the intent's read, event and upsert, then the opening: it sees the intent it rode with
    assert [[dict(r) for r in opened[0].rows] for opened in handler.opened if opened] == [
        [{"n": 1}]
    ] * 3
    assert len(batches) == 4  # three intents (each after the previous outcome) and one flush
    assert [intent(path, a.id)["state"] for a in actions] == ["done"] * 3  # type: ignore[index]
    assert len(rows(path, "SELECT id FROM tenants WHERE name = 'x'")) == 3
