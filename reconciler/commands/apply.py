"""``reconciler apply``: plan exactly like ``reconciler plan``, confirm, execute, report.

Registered by ``cli.py``. Planning goes through ``commands/plan.py``'s own functions
(:func:`~reconciler.commands.plan.load_specs`, :func:`~reconciler.commands.plan.make_pass`:
the same loading, read-only wiring, observation and planning: one code path); a saved plan is
verified (:func:`~reconciler.core.plan_json.verify_signature`: signed with
``RECONCILER_PLAN_KEY``), read by :func:`reconciler.core.plan_json.plan_from_json`, checked
against a fresh observation, and replaced by the fresh plan's own actions
(:func:`~reconciler.core.plan_json.approved_plan`). Execution takes the writers, handlers and
checkpoints from :class:`reconciler.wiring.WriterWorld` (sharing the observers' token
buckets), writes the intent journal and calls :func:`reconciler.runtime.execute.execute`;
the report is rendered by ``core/report_render.py``. docs/apply.md is the operator's guide.

Rules:

1. Never half-apply on bad input: invalid specs, unreadable settings, a stale, edited or
   malformed saved plan, or a refused confirmation all stop before the first action.
2. Confirmation is asked on a terminal unless ``--yes``; without a terminal and without
   ``--yes`` the command refuses (exit 1), so no script applies by accident.
3. Exit codes: 0 every action applied or unchanged (or nothing to do); 1 an error, a declined
   confirmation, any action that failed or was blocked by a failed dependency, or a provider
   that could not be read (what the healthy providers allow is still applied, runbook 6, and
   stderr names each unreadable provider and its endpoint on one line); 3 actions blocked by
   policy and nothing else failing.
4. A saved plan runs only when signed with the operator's key, and only as the actions a fresh
   plan (every policy gate and the ownership rule evaluated now) contains: a forged, stale or
   no longer allowed action refuses the whole plan with the reason.
5. One writer per world: execution holds the daemon's leader lease
   (:func:`reconciler.runtime.lease.exclusive`), or refuses naming its holder; every write is
   fenced by it, right before each request leaves.
6. Conditions are recorded after every apply, from the same core as the daemon's
   (:func:`reconciler.runtime.status.record_pass`), so ``reconciler status`` is right whichever
   path acted; a status that cannot be written is a warning, never a failed apply.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from reconciler.commands import common
from reconciler.commands import plan as plan_command
from reconciler.commands.common import EXIT_BLOCKED, EXIT_ERROR, EXIT_OK
from reconciler.core.outcome import Report, Status
from reconciler.core.plan import Action, Plan
from reconciler.core.plan_json import approved_plan, plan_from_json, verify_signature
from reconciler.core.render import Rate, plan_to_json, render_text
from reconciler.core.report_render import (
    action_label,
    progress_line,
    render_report_text,
    report_to_json,
)
from reconciler.errors import (
    LoadError,
    MigrationError,
    PlanError,
    ProviderError,
    SpecError,
    StalePlanError,
    UnreadableError,
)
from reconciler.runtime.execute import DEFAULT_LIMITS, Progress, execute
from reconciler.runtime.journal import Journal
from reconciler.runtime.lease import LeaderLease, default_holder, exclusive
from reconciler.runtime.pipeline import Pass
from reconciler.runtime.status import StatusStore, record_pass
from reconciler.settings import Settings
from reconciler.wiring import Buckets, ReadOnlyWorld, WriterWorld, load_settings, wall_clock

APPLY_LEASE_TTL = 30.0
"""Seconds apply's lease lasts per renewal (renewed every ttl/3 while it executes)."""


_FAILED = (Status.FAILED_TRANSIENT, Status.FAILED_PERMANENT, Status.STUCK, Status.BLOCKED)


def register(subparsers: Any) -> None:
    """Add the ``apply`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apply",
        help="plan, confirm, and change the world to match the specs",
        description="Plan exactly like `reconciler plan`, ask for confirmation (unless --yes), "
        "then execute the actions with an intent journal in D1. Exit 0 all applied, 1 error "
        "or a failed action, 3 blocked by policy.",
    )
    common.add_source_options(
        parser,
        specs_help="specs directory; with --repo, the directory inside the repository "
        "(default: specs)",
        ref_help="commit, branch or tag to read with --repo (default: HEAD, or the saved plan's "
        "commit with --plan)",
    )
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        dest="saved_plan",
        help="apply a plan saved by `reconciler plan --format json`; refused when the world "
        "changed since",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--format", choices=("text", "json"), default="text", dest="output")
    common.add_plan_options(parser)
    # commands/plan.py's loader reads these; apply has no PR mode.
    parser.set_defaults(handler=run, base=None, head=None, out=None)


def run(args: argparse.Namespace) -> int:
    """Plan, confirm, execute and report; return the exit code.

    Raises:
        StalePlanError: the saved plan no longer matches the observed world.
        PlanError: the saved plan is unsigned, forged, malformed or edited, a saved action is
            one a fresh plan refuses, or an action kind has no handler.
        LeaseHeldError: a daemon (or another apply) holds the leader lease.
    """
    if args.ref is not None and args.repo is None:
        return common.error("--ref needs --repo")
    settings = common.guarded(load_settings)
    if settings is None:
        return EXIT_ERROR
    saved = _read_saved(args.saved_plan, settings) if args.saved_plan is not None else None
    if saved is not None and args.repo is not None and args.ref is None and saved.revision:
        args.ref = saved.revision  # observe what the plan was made from
    loaded = _load(args)
    if loaded is None:
        return EXIT_ERROR
    buckets = Buckets()  # observers and writers share one budget per credential
    reader = common.guarded(functools.partial(ReadOnlyWorld, settings, buckets=buckets))
    if reader is None:
        return EXIT_ERROR
    start = wall_clock()
    base = args.now if args.now is not None else start

    def now() -> float:
        return base + (wall_clock() - start)  # flows from --now, so timeouts still expire

    say = plan_command.progress_printer(sys.stderr, "apply")
    unread: list[UnreadableError] = []
    made = asyncio.run(
        plan_command.make_pass(
            reader,
            loaded,
            now=base,
            allow=args.allow_mass_deletion,
            progress=say,
            selection=plan_command.selection_of(args),  # --target, or a verb's levers
            unreadable=unread.append,
        )
    )
    fresh = made.plan
    rates = reader.rates()
    plan = fresh if saved is None else approved_plan(saved, _check_fresh(saved, fresh))

    if args.output == "text":
        sys.stdout.write(render_text(plan, rates=rates, color=_color(args)))
        sys.stdout.flush()
    if not plan.actions:
        report = Report(plan=plan, outcomes=())
        _record_quietly(made, report, settings, buckets, now)
        return _unread_exit(unread, _finish(args, report, rates))
    writers = common.guarded(functools.partial(WriterWorld, settings, buckets=buckets))
    if writers is None:
        return EXIT_ERROR
    if not args.yes and not _confirm(len(plan.actions)):
        return EXIT_ERROR
    report = asyncio.run(_execute(plan, writers, now=now, made=made))
    return _unread_exit(unread, _finish(args, report, rates))


def _record_quietly(
    made: Pass,
    report: Report,
    settings: Settings,
    buckets: Buckets,
    now: Callable[[], float],
) -> None:
    """Record the conditions of a pass with nothing to do (rule 4); a writer that cannot be
    built only costs the status, with a warning."""
    try:
        writers = WriterWorld(settings, buckets=buckets)
    except ValueError as exc:
        print(f"warning: conditions not recorded: {exc}", file=sys.stderr)
        return

    async def record() -> None:
        async with writers:
            await _record(made, report, writers, now)

    asyncio.run(record())


async def _record(
    made: Pass, report: Report, writers: WriterWorld, now: Callable[[], float]
) -> None:
    """Write every covered resource's conditions, so ``status`` is right after an apply.

    A plan narrowed by ``--target`` or a verb's lever records none: it leaves other work out,
    so it cannot tell which resources converged (the next whole pass records them).
    """
    if made.narrowed:
        return
    store = StatusStore(writers.database, now)
    try:
        await record_pass(
            store, desired=made.desired, observed=made.observed, report=report, now=now()
        )
    except (ProviderError, MigrationError) as exc:
        print(f"warning: conditions not recorded: {exc}", file=sys.stderr)


def _unread_exit(unread: list[UnreadableError], code: int) -> int:
    """Exit 1 after a pass that could not read a provider, naming it (rule 3)."""
    for failure in unread:
        for line in failure.lines:
            common.error(line)
    return EXIT_ERROR if unread else code


def _load(args: argparse.Namespace) -> plan_command.Loaded | None:
    """The specs, or None after printing why they cannot be applied."""
    try:
        return plan_command.load_specs(args)
    except SpecError as exc:
        common.print_invalid(
            f"{args.specs.rstrip('/')}/", exc.problems, suffix="; nothing was applied"
        )
    except LoadError as exc:
        common.error(exc)
    return None


def _read_saved(path: Path, settings: Settings) -> Plan:
    """The saved plan at ``path``, once its signature is verified (core/plan_json.py rule 5)."""
    if not settings.plan_key:
        raise PlanError(
            "apply --plan needs RECONCILER_PLAN_KEY, the key the plan was signed with; "
            "nothing was applied"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"cannot read the saved plan {path}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    try:
        verify_signature(document, settings.plan_key.reveal())
        return plan_from_json(document)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from exc


def _check_fresh(saved: Plan, fresh: Plan) -> Plan:
    """The fresh plan when the world still looks as it did; StalePlanError otherwise."""
    if saved.revision and fresh.revision and saved.revision != fresh.revision:
        raise StalePlanError(
            f"the saved plan was made from specs at {saved.revision[:12]}, but the specs "
            f"are now at {fresh.revision[:12]}; run `reconciler plan` again"
        )
    if saved.observed_digest != fresh.observed_digest:
        raise StalePlanError(
            "the saved plan is stale: the world changed since it was made (planned against "
            f"{saved.observed_digest[:19]}…, observed now {fresh.observed_digest[:19]}…); "
            "run `reconciler plan` again"
        )
    return fresh


def _confirm(count: int) -> bool:
    """Ask on a terminal; refuse without one (rule 2)."""
    if not sys.stdin.isatty():
        print(
            "error: refusing to apply without confirmation: stdin is not a terminal; "
            "pass --yes to apply non-interactively",
            file=sys.stderr,
        )
        return False
    print(f"Apply these {count} actions? [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline().strip().lower()
    except (OSError, UnicodeDecodeError):
        answer = ""
    if answer in ("y", "yes"):
        return True
    print("Apply cancelled: nothing was changed.", file=sys.stderr)
    return False


async def _execute(
    plan: Plan, writers: WriterWorld, *, now: Callable[[], float], made: Pass
) -> Report:
    """Execute under the leader lease (refused while a daemon leads), every write fenced;
    then record the conditions (rule 6)."""
    async with writers:
        lease = LeaderLease(writers.database, holder=default_holder("apply"), ttl=APPLY_LEASE_TTL)
        async with exclusive(lease, verb="apply"):
            journal_db = writers.fence(lease.ensure)
            report = await execute(
                plan,
                handlers=writers.handlers(),
                journal=Journal(journal_db, now=now),
                limits=DEFAULT_LIMITS,
                now=now,
                checkpoint=writers.checkpoints,
                progress=_progress(sys.stderr),
                handler_progress=_notes(sys.stderr),
            )
            await _record(made, report, writers, now)
            return report


def _progress(stream: TextIO) -> Callable[[Progress], None]:
    def show(step: Progress) -> None:
        if step.outcome is None:
            return
        line = progress_line(
            index=step.index,
            total=step.total,
            action=step.action,
            outcome=step.outcome,
            seconds=step.seconds,
        )
        print(line, file=stream, flush=True)

    return show


def _notes(stream: TextIO) -> Callable[[Action, str], None]:
    """Handlers' own progress (``uploading 12 files``): indented on a terminal, plain elsewhere."""
    indent = "      " if stream.isatty() else "apply: "

    def note(action: Action, message: str) -> None:
        print(f"{indent}{action_label(action)}: {message}", file=stream, flush=True)

    return note


def _finish(args: argparse.Namespace, report: Report, rates: Mapping[str, Rate]) -> int:
    if args.output == "json":
        document = report_to_json(report)
        document["plan"] = plan_to_json(report.plan, rates=rates)
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        if report.outcomes:
            sys.stdout.write("\n")
        sys.stdout.write(render_report_text(report, color=_color(args)))
    sys.stdout.flush()
    return exit_code(report)


def exit_code(report: Report) -> int:
    """1 when any action failed or was blocked by a failure, else 3 when policy blocked some,
    else 0."""
    if any(outcome.status in _FAILED for outcome in report.outcomes):
        return EXIT_ERROR
    if report.plan.blocked:
        return EXIT_BLOCKED
    return EXIT_OK


def _color(args: argparse.Namespace) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or plan_command.no_color():
        return False
    return sys.stdout.isatty()
