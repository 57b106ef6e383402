"""``reconciler schemas --out schemas/``: regenerate the committed JSON Schemas.

Registered by ``cli.py``; calls :func:`reconciler.spec.schema.write_schemas`. ``make schemas``
runs it; ``tests/test_schemas_current.py`` fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reconciler.spec.schema import write_schemas


def register(subparsers: Any) -> None:
    """Add the ``schemas`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schemas",
        help="write the JSON Schemas of the spec kinds and content snapshots",
        description="Write one JSON Schema per spec kind, plus content.schema.json, into a "
        "directory (deterministic output, meant to be committed).",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("schemas"), help="directory to write (default: schemas)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the schemas and list what changed."""
    written = write_schemas(args.out)
    for path, changed in written:
        print(f"{'wrote    ' if changed else 'unchanged'} {path}")
    return 0
