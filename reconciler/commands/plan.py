"""``reconciler plan``: load the specs, observe the world read-only, plan, and print the plan.

Registered by ``cli.py``. It calls :func:`reconciler.spec.load.load_directory` /
:func:`~reconciler.spec.load.load_git` (or :func:`reconciler.runtime.prmode.load_pull_request`
in PR mode), :class:`reconciler.wiring.ReadOnlyWorld` (observers only: no writer exists in this
command), the pass pipeline :func:`reconciler.runtime.pipeline.plan_pass` (observe, derive,
plan: the daemon's too) and ``core/render.py``. It decides nothing itself.

Exit codes: 0 no changes, 1 error (bad specs, unreadable settings, an unmigrated database, a
provider that could not be read or refused the credentials: one line per provider naming its
endpoint, and no plan), 2 changes pending, 3 blocked by policy (wins over 2). Progress lines go
to stderr: ``… line`` on a terminal, plain ``plan: line`` otherwise (CI logs). Colour follows
``--color``; ``auto`` is off when ``NO_COLOR`` is set or stdout is not a terminal. Spec
problems are printed exactly as ``reconciler validate`` prints them, and nothing is observed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reconciler.commands.common import (
    EXIT_BLOCKED,
    EXIT_ERROR,
    EXIT_OK,
    add_plan_options,
    add_source_options,
    error,
    guarded,
    print_invalid,
)
from reconciler.core.desired import derive
from reconciler.core.levers import Selection
from reconciler.core.observed import Observed, Source
from reconciler.core.plan import Plan, build_plan
from reconciler.core.plan_json import signed_json
from reconciler.core.policy import APPROVAL_TRAILER
from reconciler.core.provider import SOURCE_PROVIDERS
from reconciler.core.render import Rate, plan_to_json, render_json, render_markdown, render_text
from reconciler.errors import LoadError, SpecError, UnreadableError
from reconciler.redact import redact
from reconciler.runtime import prmode
from reconciler.runtime.approvals import CommitApprovals, read_approvals
from reconciler.runtime.pipeline import Pass, plan_pass
from reconciler.settings import Secret, Settings
from reconciler.spec.load import Specs, load_directory, load_git
from reconciler.wiring import ReadOnlyWorld, load_settings, wall_clock

EXIT_CHANGES = 2


def register(subparsers: Any) -> None:
    """Add the ``plan`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="show what would change, why, and at what API cost (read-only)",
        description="Compare the specs with the world (read-only) and print the actions that "
        "would converge it. Exit 0 no changes, 1 error, 2 changes, 3 blocked by policy.",
    )
    add_source_options(
        parser,
        specs_help="specs directory; with --repo or --base/--head, the directory inside the "
        "repository (default: specs)",
        ref_help="commit, branch or tag to read with --repo (default: HEAD)",
    )
    parser.add_argument("--base", metavar="REF", help="PR mode: the commit the change is against")
    parser.add_argument("--head", metavar="REF", help="PR mode: the commit to plan")
    parser.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text", dest="output"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the plan to FILE")
    add_plan_options(parser)
    parser.set_defaults(handler=run)


def selection_of(args: argparse.Namespace) -> Selection:
    """The ``--target`` addresses and the levers a verb put on ``args`` (``commands/levers``)."""
    return Selection(
        targets=tuple(getattr(args, "target", None) or ()),
        levers=tuple(getattr(args, "levers", None) or ()),
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    """The specs to plan, the pull request they come from in PR mode (else None), and the
    deletions their commits approve (``Approve-Deletion`` trailers; none for a directory)."""

    specs: Specs
    pull: prmode.PullRequest | None
    approvals: CommitApprovals = field(default_factory=lambda: CommitApprovals({}, ()))


def run(args: argparse.Namespace) -> int:
    """Plan and print; return the exit code."""
    if (args.base is None) != (args.head is None):
        return error("--base and --head go together")
    if args.ref is not None and args.repo is None:
        return error("--ref needs --repo")
    progress = progress_printer(sys.stderr)
    try:
        loaded = load_specs(args)
    except SpecError as exc:
        print_invalid(f"{args.specs.rstrip('/')}/", exc.problems)
        return EXIT_ERROR
    except LoadError as exc:
        return error(exc)
    settings = guarded(load_settings)
    if settings is None:
        return EXIT_ERROR
    # The specs (and soon the observation) live until exit: keep the collector off them, which
    # makes planning a 10,000-site fleet steady instead of paying for full collections.
    gc.collect()
    gc.freeze()
    now = args.now if args.now is not None else wall_clock()
    world = guarded(functools.partial(ReadOnlyWorld, settings))
    if world is None:
        return EXIT_ERROR
    made = asyncio.run(
        make_pass(
            world,
            loaded,
            now=now,
            allow=args.allow_mass_deletion,
            progress=progress,
            selection=selection_of(args),
        )
    )
    plan = made.plan
    rates = world.rates()
    if args.output == "json":
        signed = _signed(plan, rates, settings.plan_key, saving=args.out is not None)
        if signed is None:
            return EXIT_ERROR
        text = signed
    elif args.output == "markdown":
        text = render_markdown(plan, rates=rates)
    else:
        text = render_text(plan, rates=rates, color=_color(args))
    if args.out is not None:
        args.out.write_text(redact(text), encoding="utf-8")  # stdout is redacted by cli.py
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return exit_code(plan)


def _signed(plan: Plan, rates: Mapping[str, Rate], key: Secret, *, saving: bool) -> str | None:
    """The JSON plan, signed with ``RECONCILER_PLAN_KEY`` (core/plan_json.py rule 5).

    Without a key a plan is not saved (``--out``: None, after an error on stderr); on stdout it
    is printed unsigned, with a warning that ``apply --plan`` will refuse it.
    """
    if key:
        clean = json.loads(redact(json.dumps(plan_to_json(plan, rates=rates))))
        return signed_json(clean, key.reveal())  # signed as saved: redacted first
    if saving:
        print(
            "error: refusing to save an unsigned plan: set RECONCILER_PLAN_KEY (a secret only "
            "the operators hold); `apply --plan` applies signed plans only",
            file=sys.stderr,
        )
        return None
    print(
        "warning: RECONCILER_PLAN_KEY is not set: this plan is unsigned and `apply --plan` "
        "will refuse it",
        file=sys.stderr,
    )
    return render_json(plan, rates=rates)


def exit_code(plan: Plan) -> int:
    """3 when anything is blocked by policy, else 2 when anything would change, else 0."""
    if plan.blocked:
        return EXIT_BLOCKED
    if plan.actions:
        return EXIT_CHANGES
    return EXIT_OK


def load_specs(args: argparse.Namespace) -> Loaded:
    """The specs ``args`` name: PR mode (``base``/``head``), a Git commit, or a directory.

    ``args`` needs ``specs``, ``repo``, ``ref``, ``base`` and ``head`` (``apply`` sets the last
    two to None).

    Raises:
        SpecError: the specs are invalid (every problem, located).
        LoadError: the repository, commit or directory cannot be read.
    """
    if args.base is not None:
        repo = args.repo if args.repo is not None else Path()
        pull = prmode.load_pull_request(repo, args.base, args.head, args.specs)
        approvals = read_approvals(repo, f"{args.base}..{args.head}")
        return Loaded(specs=pull.head, pull=pull, approvals=approvals)
    if args.repo is not None:
        ref = args.ref or "HEAD"
        specs = load_git(args.repo, ref, args.specs)
        return Loaded(specs=specs, pull=None, approvals=read_approvals(args.repo, f"-1 {ref}"))
    return Loaded(specs=load_directory(Path(args.specs)), pull=None)


async def make_pass(
    world: ReadOnlyWorld,
    loaded: Loaded,
    *,
    now: float,
    allow: bool,
    progress: Callable[[str], None],
    selection: Selection | None = None,
    unreadable: Callable[[UnreadableError], None] | None = None,
) -> Pass:
    """Observe the world read-only through ``world`` (closed after), derive and plan.

    Args:
        world: the observers; closed when the observation is done.
        loaded: the specs (and the pull request in PR mode, which scopes the observation and
            annotates the plan).
        now: the clock for derive and the plan, epoch seconds.
        allow: lift the blast-radius cap on hostname deletions.
        progress: where progress lines go.
        selection: ``--target`` addresses and levers (``core.levers``); the whole plan when
            None.
        unreadable: called with the error instead of raising it, by ``apply``, which goes on
            with what the healthy providers allow (runbook 6) and exits 1 afterwards.

    Returns:
        The desired facts, the observation and the plan (pure: same specs, observation and
        ``now``, same plan); ``apply`` computes the resources' conditions from all three.

    Raises:
        UnreadableError: a provider's reading failed (network, 5xx, refused credentials)
            and no ``unreadable`` callback was given.
    """
    settings = dataclasses.replace(
        world.plan_settings(
            allow_mass_deletion=allow, approved_deletions=loaded.approvals.approved
        ),
        selection=selection or Selection(),  # --target, or a verb's levers
    )
    for value in loaded.approvals.ignored:
        progress(f"ignored {APPROVAL_TRAILER}: {value}: name Site/<name> or Hostname/<name>")
    pull = loaded.pull

    def check(observed: Observed) -> None:
        try:
            check_readable(observed, world.settings)
        except UnreadableError as exc:
            if unreadable is None:
                raise
            unreadable(exc)

    async with world:
        if pull is not None:
            progress(f"{len(pull.scope)} site(s) touched by the change; observing them")
        made = await plan_pass(
            loaded.specs,
            clients=world.clients,
            now=now,
            settings=lambda: settings,
            scope=pull.scope if pull is not None else None,
            hostnames=pull.removed_hostnames if pull is not None else (),
            workers=pull.workers if pull is not None else (),
            progress=progress,
            check=check,
        )
    if pull is None:
        return made
    observed = made.observed
    base = prmode.base_desired(derive(pull.base, observed.billing, now=now), made.desired.revision)
    annotated = prmode.annotate(
        made.plan, build_plan(base, observed, settings), pull.reverts, pull.worker_reverts
    )
    return dataclasses.replace(made, plan=annotated)


def endpoint(source: Source, settings: Settings) -> str:
    """Where ``source`` is read from: the API base URL, or the D1 file or database."""
    if source is Source.D1:
        if settings.d1.backend == "sqlite":
            return settings.d1.sqlite_path
        return f"{settings.cloudflare.base_url} (D1 database {settings.d1.database_id})"
    if source is Source.STRIPE:
        return settings.stripe.base_url
    if source is Source.WHATSAPP:
        return settings.evolution.base_url
    return settings.cloudflare.base_url


def unreadable_lines(observed: Observed, settings: Settings) -> list[str]:
    """One line per provider whose reading failed: the provider, its endpoint, the error."""
    lines: dict[str, str] = {}
    for source in sorted(observed.unreadable):
        provider = SOURCE_PROVIDERS[source]
        if provider in lines:
            continue
        reason = observed.incomplete[source].detail.removeprefix(f"{provider}: ")
        where = endpoint(source, settings)
        lines[provider] = f"{provider} could not be read at {where}: {reason}"
    return list(lines.values())


def check_readable(observed: Observed, settings: Settings) -> None:
    """Refuse to plan on a failed reading (exit 1, never "No changes" or a wall of blocks).

    A provider that is not configured is not a failure: the plan names it as incomplete.

    Raises:
        UnreadableError: one line per provider that could not be read.
    """
    lines = unreadable_lines(observed, settings)
    if lines:
        raise UnreadableError(lines)


def progress_printer(stream: TextIO, command: str = "plan") -> Callable[[str], None]:
    """Progress lines: ``… line`` on a terminal, plain ``plan: line`` elsewhere (CI logs)."""
    tty = stream.isatty()

    def say(line: str) -> None:
        print(f"… {line}" if tty else f"{command}: {line}", file=stream, flush=True)

    return say


def no_color() -> bool:
    """Whether ``NO_COLOR`` (https://no-color.org) is set to a non-empty value."""
    return bool(os.environ.get("NO_COLOR"))


def _color(args: argparse.Namespace) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or args.out is not None or no_color():
        return False
    return sys.stdout.isatty()
