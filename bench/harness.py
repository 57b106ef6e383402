"""Helpers the benchmarks share: settings in the environment for a block, the CLI in process."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator

from reconciler.cli import main as cli_main


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block; restore what was there after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``reconciler *argv`` in process: its exit code and its stdout and stderr together."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli_main(argv)
    return code, buffer.getvalue()
