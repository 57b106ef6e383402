"""``reconciler validate``: load the specs, run every check, report every problem at once.

Registered by ``cli.py``; calls :func:`reconciler.spec.load.load_directory` or
:func:`reconciler.spec.load.load_git`. Exit 0 when the specs are valid (with a one-line
summary), 1 otherwise. Bad input never produces a traceback: problems are printed one per line
as ``file:line:col: Kind/name: field: message`` (text) or as a stable JSON object (json).

JSON output::

    {"valid": false, "source": {"path": "specs", "repo": null, "ref": null, "revision": null},
     "summary": null, "error": null,
     "problems": [{"path": ..., "line": ..., "column": ..., "subject": ..., "field": ...,
                   "message": ...}, ...]}
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reconciler.errors import LoadError, Problem, SpecError
from reconciler.spec.load import DEFAULT_LIMITS, Limits, Specs, load_directory, load_git


def register(subparsers: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check the specs: syntax, kinds, fields, references, hostname ownership",
        description="Validate every spec document under PATH (a directory, or with --repo a "
        "directory inside a Git commit). Exit 0 when valid, 1 otherwise.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        default="specs",
        metavar="PATH",
        help="specs directory; with --repo, the directory inside the repository (default: specs)",
    )
    parser.add_argument("--repo", type=Path, help="read the specs from this Git repository")
    parser.add_argument(
        "--ref", default=None, help="commit, branch or tag to read with --repo (default: HEAD)"
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=DEFAULT_LIMITS.max_file_bytes,
        metavar="N",
        help=f"largest spec file accepted (default: {DEFAULT_LIMITS.max_file_bytes:,})",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", dest="output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate and print; return 0 when valid, 1 otherwise."""
    if args.ref is not None and args.repo is None:
        return _report(args, problems=[], error="--ref needs --repo", specs=None)
    try:
        limits = Limits(max_file_bytes=args.max_file_bytes)
    except ValueError as exc:
        return _report(args, problems=[], error=str(exc), specs=None)
    try:
        if args.repo is not None:
            specs = load_git(args.repo, args.ref or "HEAD", args.path, limits=limits)
        else:
            specs = load_directory(Path(args.path), limits=limits)
    except SpecError as exc:
        return _report(args, problems=exc.problems, error=None, specs=None)
    except LoadError as exc:
        return _report(args, problems=[], error=str(exc), specs=None)
    return _report(args, problems=[], error=None, specs=specs)


def _label(args: argparse.Namespace, specs: Specs | None) -> str:
    label: str = args.path.rstrip("/") + "/"
    if args.repo is not None:
        ref = args.ref or "HEAD"
        label += f" at {ref}"
        if specs is not None and specs.revision and not specs.revision.startswith(ref):
            label += f" ({specs.revision[:12]})"
    return label


def _report(
    args: argparse.Namespace, *, problems: list[Problem], error: str | None, specs: Specs | None
) -> int:
    valid = specs is not None
    if args.output == "json":
        document = {
            "valid": valid,
            "source": {
                "path": args.path,
                "repo": str(args.repo) if args.repo is not None else None,
                "ref": args.ref,
                "revision": specs.revision if specs is not None else None,
            },
            "summary": _counts(specs) if specs is not None else None,
            "error": error,
            "problems": [asdict(problem) for problem in problems],
        }
        print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
        return 0 if valid else 1
    label = _label(args, specs)
    if specs is not None:
        print(f"{label} is valid: {specs.summary()}")
        return 0
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem.render())
    count = len(problems)
    print(f"{label} is invalid: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return 1


def _counts(specs: Specs) -> dict[str, int]:
    return {
        "tenants": len(specs.tenants),
        "policies": len(specs.policies),
        "sites": len(specs.sites),
        "domains": specs.domain_count,
    }
