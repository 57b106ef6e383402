"""``reconciler sandbox up``: run the local world and print the settings that point at it.

Registered by ``cli.py``; builds a :class:`reconciler.sandbox.world.Sandbox` (the Cloudflare and
Evolution API simulators on loopback, localstripe unless ``--no-stripe``, moto as R2 unless
``--no-r2``, the Worker host for visitors unless ``--no-workers`` or node is missing), prints one
``export VAR=value`` line per setting for a POSIX shell, then serves until SIGINT or SIGTERM and
stops everything.

Like every output, what it prints passes through ``reconciler/redact.py``, so the tokens show as
``***`` even though they are fakes only this sandbox accepts. The whole set, tokens included, is
written to an env file (``--env-file``, default ``<state-dir>/env``, mode 0600) that another
shell sources: ``. .sandbox/env``.
With ``--seed`` it also seeds the world for the specs (:func:`reconciler.sandbox.seed.seed_world`:
D1 sites and content snapshots, projects, DNS, localstripe customers) and prints, as comment
lines, the Stripe ids localstripe chose for each tenant.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler.commands.common import EXIT_ERROR, EXIT_OK, error
from reconciler.errors import LoadError, SpecError
from reconciler.sandbox.seed import seed_world
from reconciler.sandbox.workerd import unavailable_reason
from reconciler.sandbox.world import Sandbox, projects_from_specs
from reconciler.spec.load import Specs, load_directory


def register(subparsers: Any) -> None:
    """Add the ``sandbox`` subcommand (with its ``up`` action)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="run the local world: Cloudflare and Evolution API simulators, localstripe",
        description="Run simulated Cloudflare (Pages, custom hostnames, cache purge, D1) and "
        "Evolution APIs on loopback, plus localstripe, with one virtual clock.",
    )
    actions = parser.add_subparsers(dest="sandbox_action", metavar="ACTION")
    up = actions.add_parser(
        "up",
        help="start the sandbox, print its settings as export lines, serve until interrupted",
    )
    up.add_argument(
        "--state-dir",
        default=".sandbox",
        metavar="DIR",
        help="where the simulated D1 database files live (default: .sandbox)",
    )
    up.add_argument("--no-stripe", action="store_true", help="do not start localstripe")
    up.add_argument("--no-r2", action="store_true", help="do not start moto as the R2 media bucket")
    up.add_argument(
        "--no-evolution", action="store_true", help="do not start the Evolution API simulator"
    )
    up.add_argument(
        "--specs",
        default="specs",
        metavar="DIR",
        help="create the Pages projects named by the Site specs in DIR (default: specs)",
    )
    up.add_argument(
        "--d1",
        choices=("sqlite", "d1"),
        default="sqlite",
        help="D1_BACKEND to print: the SQLite file directly, or the simulated D1 REST API",
    )
    up.add_argument(
        "--no-workers",
        action="store_true",
        help="do not start the Worker host (the zone's Worker in workerd, for visitors)",
    )
    up.add_argument(
        "--env-file",
        metavar="PATH",
        help="where to write the export lines with their tokens (default: <state-dir>/env)",
    )
    up.add_argument(
        "--seed",
        action="store_true",
        help="seed the world for the specs as the site editor and billing would have: D1 sites "
        "and content snapshots, DNS pointed, localstripe customers (see docs/demo.md)",
    )
    up.add_argument(
        "--unpointed",
        action="append",
        default=[],
        metavar="HOST",
        help="with --seed: leave this hostname's DNS unpointed (repeatable)",
    )
    up.set_defaults(handler=run_up)
    parser.set_defaults(handler=_usage(parser))


def _usage(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_ERROR

    return show


def export_lines(env: dict[str, str], *, control_url: str) -> list[str]:
    """The lines ``sandbox up`` prints: comments, then one ``export`` per variable."""
    lines = [
        "# reconciler sandbox: settings for the local world.",
        "# The tokens and keys below are sandbox-local fakes; no real service accepts them.",
        f"# control endpoint: {control_url}/ (see docs/sandbox.md)",
    ]
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))
    return lines


def run_up(args: argparse.Namespace) -> int:
    """Start the sandbox, print its settings, and serve until SIGINT/SIGTERM."""
    specs = Path(args.specs)
    projects = projects_from_specs(specs) if specs.is_dir() else []
    fleet: Specs | None = None
    if args.seed:
        try:
            fleet = load_directory(specs)
        except SpecError as exc:
            for problem in exc.problems:
                print(problem.render(), file=sys.stderr)
            return EXIT_ERROR
        except LoadError as exc:
            return error(exc)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Sandbox(
            state_dir=Path(args.state_dir).resolve(),
            with_stripe=not args.no_stripe,
            with_evolution=not args.no_evolution,
            projects=projects,
            d1_backend=args.d1,
            with_r2=not args.no_r2,
            with_workers=not args.no_workers and unavailable_reason() is None,
        ) as world:
            # The dispatch Worker, its namespace, route and fallback origin are desired state
            # once a fallback origin is declared (docs/routing.md), as in the demo.
            env = {
                **world.settings_env(),
                "ROUTING_FALLBACK_ORIGIN": world.cloudflare_config.fallback_origin,
            }
            lines = export_lines(env, control_url=world.control_url)
            lines.extend(_edge_lines(world, args.no_workers))
            if fleet is not None:
                lines.extend(_seed_lines(world, fleet, args.unpointed))
            text = "\n".join(lines) + "\n"
            env_file = Path(args.env_file or Path(args.state_dir) / "env")
            _write_private(env_file, text)
            sys.stdout.write(
                f"# with their tokens (masked below): . {shlex.quote(str(env_file))}\n"
            )
            sys.stdout.write(text)
            sys.stdout.flush()
            print("# serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
        print("# sandbox stopped", file=sys.stderr, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (it holds the sandbox's tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _edge_lines(world: Sandbox, disabled: bool) -> list[str]:
    """Comment lines saying where visitors' requests go (the Worker in workerd), or why not."""
    if world.edge_url is not None:
        return [
            f"# visitors (the zone's Worker in workerd): {world.edge_url}/ with the customer's "
            f"Host, e.g. curl -H 'Host: www.acmebakery.com' {world.edge_url}/",
            f"# Pages sites: {world.pages_sites_url}",
        ]
    reason = "--no-workers" if disabled else str(unavailable_reason())
    return [f"# visitors: the Worker host is not running ({reason})"]


def _seed_lines(world: Sandbox, fleet: Specs, unpointed: list[str]) -> list[str]:
    """Seed ``world`` and describe it in comment lines (the Stripe ids to put in the specs)."""
    seeded = seed_world(world, fleet, unpointed=unpointed)
    lines = [
        f"# seeded: {len(seeded.versions)} sites with content snapshots, "
        f"{len(seeded.pointed)} hostnames pointed, {len(seeded.unpointed)} left unpointed"
    ]
    lines.extend(
        f"# stripe: tenant {name} is customer {ids.customer}, subscription {ids.subscription} "
        "(localstripe chose these ids; put them in the tenant's spec)"
        for name, ids in sorted(seeded.stripe.items())
    )
    return lines
