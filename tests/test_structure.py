"""CONTRIBUTING.md's size rule, checked by machine: no function in ``reconciler/`` over 80 lines.

Functions that were already longer when the rule was set are listed in ``LONG_FUNCTIONS`` (a
ratchet): each may only leave the list. A new long function fails, and so does a listed one that
has been split (so the list cannot hide a regression behind a stale name).
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_FUNCTION_LINES = 80
PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"

# path under reconciler/ : function name, each over MAX_FUNCTION_LINES when the rule came in.
LONG_FUNCTIONS: frozenset[str] = frozenset()


def long_functions(root: Path) -> dict[str, int]:
    """Every function (nested ones included) over the limit under ``root``, with its length."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(root).as_posix()}:{node.name}"] = length
    return found


def test_no_new_function_over_the_limit() -> None:
    new = {name: n for name, n in long_functions(PACKAGE).items() if name not in LONG_FUNCTIONS}
    assert not new, f"over {MAX_FUNCTION_LINES} lines (split them into named steps): {new}"


def test_the_ratchet_lists_only_functions_still_too_long() -> None:
    stale = sorted(LONG_FUNCTIONS - set(long_functions(PACKAGE)))
    assert not stale, f"now short enough or gone, remove from LONG_FUNCTIONS: {stale}"


def test_the_measure_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == {"m.py:long": MAX_FUNCTION_LINES + 1}
