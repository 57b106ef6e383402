"""Run every benchmark: each ``bench/bench_*.py`` module's ``main()``, in name order.

``make bench`` calls this. Benchmarks print their own figures; a failing one is reported and
the others still run; the exit code is 1 when any failed.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path


def main() -> int:
    """Import and run each benchmark module; return 1 if any raised or returned non-zero."""
    failed: list[str] = []
    for path in sorted(Path(__file__).resolve().parent.glob("bench_*.py")):
        name = f"bench.{path.stem}"
        print(f"== {name}", flush=True)
        try:
            code = importlib.import_module(name).main()
        except Exception:
            traceback.print_exc()
            code = 1
        if code:
            failed.append(name)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
