"""Benchmark: D1 on the local SQLite backend: migrate, bulk insert within D1's limits, lookups.

Run with ``make bench`` (all benchmarks) or ``python -m bench.bench_d1 [--rows N]``. Prints:

- wall time of ``migrate`` on an empty file (both migrations), and of a second, no-op run;
- a bulk insert of N ``domains`` rows through ``chunked_insert`` in one atomic batch: the number
  of statements (each within 100 bound parameters and 100,000 bytes) and rows per second;
- the same rows as a REST batch would send them (values inlined): request bytes per statement;
- the runbook lookup ``SELECT * FROM domains WHERE domain = ?`` repeated: microseconds per query
  (includes the hop to the backend's worker thread).

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from reconciler.providers.d1 import (
    MAX_BOUND_PARAMETERS,
    SqliteDatabase,
    Statement,
    chunked_insert,
    inline_params,
)
from reconciler.runtime.migrate import migrate

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
COLUMNS = ("id", "site_id", "tenant_id", "domain", "status", "ssl_status", "custom_hostname_id")


async def run(rows: int, lookups: int) -> None:
    """Run every measurement in a temporary directory and print the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-d1-") as tmp:
        db = SqliteDatabase(Path(tmp) / "bench.sqlite")
        try:
            start = time.perf_counter()
            report = await migrate(db, MIGRATIONS)
            first = time.perf_counter() - start
            start = time.perf_counter()
            await migrate(db, MIGRATIONS)
            second = time.perf_counter() - start
            print(
                f"migrate empty file: {len(report.applied)} migrations, "
                f"{report.statements} statements in {first * 1000:.1f} ms; "
                f"no-op run {second * 1000:.1f} ms"
            )

            await db.batch(
                [
                    Statement("INSERT INTO tenants (id, name) VALUES ('t', 'T')"),
                    Statement(
                        "INSERT INTO sites (id, tenant_id, name, pages_project) "
                        "VALUES ('s', 't', 'S', 's')"
                    ),
                ]
            )
            values = [
                (
                    f"dom-{n}",
                    "s",
                    "t",
                    f"www.site-{n}.example.com",
                    "active" if n % 10 else "pending_validation",
                    "active",
                    f"{n:08x}-0000-4000-8000-000000000000",
                )
                for n in range(rows)
            ]
            statements = chunked_insert("domains", COLUMNS, values)
            widest = max(len(statement.params) for statement in statements)
            inlined = max(len(inline_params(s.sql, s.params).encode()) for s in statements)
            start = time.perf_counter()
            await db.batch(statements)
            elapsed = time.perf_counter() - start
            print(
                f"bulk insert {rows} domains: {len(statements)} statements "
                f"(max {widest}/{MAX_BOUND_PARAMETERS} parameters, max {inlined} bytes inlined) "
                f"in {elapsed * 1000:.1f} ms = {rows / elapsed:,.0f} rows/s"
            )

            start = time.perf_counter()
            for n in range(lookups):
                await db.query(
                    "SELECT * FROM domains WHERE domain = ?", (f"www.site-{n % rows}.example.com",)
                )
            elapsed = time.perf_counter() - start
            print(
                f"runbook lookup by domain: {lookups} queries, "
                f"{elapsed / lookups * 1e6:.0f} µs per query"
            )
        finally:
            await db.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    args = parser.parse_args(argv if argv is not None else [])
    asyncio.run(run(args.rows, args.lookups))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
