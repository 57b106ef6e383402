"""The migrated schema serves the runbooks' SQL and enforces the invariants the reconciler needs.

The runbook queries below were copied by hand from ``../shared/RUNBOOKS.md`` (with its
placeholder values, which the seed data uses as ids); one test re-reads that file, when present,
to notice a runbook query that was added or changed without this list following.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.providers.d1 import ConstraintError, SqlError, SqliteDatabase, Statement
from reconciler.runtime.migrate import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO_ROOT.parent / "shared" / "RUNBOOKS.md"

RUNBOOK_QUERIES: list[tuple[str, str]] = [
    (
        "1-publish-versions-of-a-site",
        "SELECT * FROM publish_versions WHERE site_id = 'SITE_ID' "
        "ORDER BY created_at DESC LIMIT 5;",
    ),
    ("2-domain-status", "SELECT * FROM domains WHERE domain = 'example.com';"),
    (
        "3-subscription-with-billing-status",
        "SELECT s.*, ba.status as billing_status FROM subscriptions s "
        "JOIN billing_accounts ba ON s.billing_account_id = ba.id "
        "WHERE s.id = 'SUBSCRIPTION_ID';",
    ),
    (
        "3-invoices-of-a-subscription",
        "SELECT * FROM invoices WHERE subscription_id = 'SUBSCRIPTION_ID' "
        "ORDER BY due_at DESC LIMIT 5;",
    ),
    (
        "3-dunning-logs-of-a-subscription",
        "SELECT * FROM dunning_step_logs WHERE subscription_id = 'SUBSCRIPTION_ID' "
        "ORDER BY sent_at DESC LIMIT 10;",
    ),
    ("4-performance-budget", "SELECT * FROM performance_budgets WHERE site_id = 'SITE_ID';"),
    ("5-tables", "SELECT name FROM sqlite_master WHERE type='table';"),
    (
        "7-invoice-by-provider-id",
        "SELECT * FROM invoices WHERE provider_invoice_id = 'INVOICE_ID';",
    ),
    (
        "8-failed-dunning-logs",
        "SELECT * FROM dunning_step_logs WHERE status = 'failed' ORDER BY sent_at DESC LIMIT 20;",
    ),
]

# Columns the runbooks tell operators to look at, beyond those in the queries above.
RUNBOOK_COLUMNS: list[tuple[str, str]] = [
    ("publish_versions", "status"),
    ("publish_versions", "error_message"),
    ("publish_versions", "created_at"),
    ("publish_versions", "completed_at"),
    ("publish_versions", "version_number"),
    ("publish_versions", "environment"),
    ("site_versions", "content_json"),
    ("domains", "status"),
    ("domains", "hostname"),
    ("domains", "ssl_status"),
    ("domains", "verification_token"),
    ("invoices", "status"),
    ("subscriptions", "status"),
    ("tenants", "status"),
    ("dunning_step_logs", "status"),
    ("dunning_step_logs", "step_code"),
    ("dunning_step_logs", "provider_response"),
    ("performance_budgets", "current_js_kb"),
]

SEED = [
    "INSERT INTO tenants (id, name, whatsapp_phone) "
    "VALUES ('acme', 'Acme Bakery', '+5511912345678')",
    "INSERT INTO billing_accounts (id, tenant_id, provider_customer_id, status) "
    "VALUES ('ba_1', 'acme', 'cus_1', 'past_due')",
    "INSERT INTO subscriptions (id, billing_account_id, tenant_id, provider_subscription_id, "
    "status) VALUES ('SUBSCRIPTION_ID', 'ba_1', 'acme', 'sub_1', 'past_due')",
    "INSERT INTO invoices (id, provider_invoice_id, subscription_id, billing_account_id, "
    "tenant_id, status, amount_due, due_at) VALUES ('inv_1', 'INVOICE_ID', 'SUBSCRIPTION_ID', "
    "'ba_1', 'acme', 'open', 4900, '2026-01-02T00:00:00Z')",
    "INSERT INTO dunning_step_logs (invoice_id, subscription_id, tenant_id, step_code, status, "
    "provider_response, error_message, sent_at) VALUES ('inv_1', 'SUBSCRIPTION_ID', 'acme', "
    "'FAIL_IMMEDIATE', 'failed', '{\"status\": 400}', 'instance disconnected', "
    "'2026-01-02T00:01:00Z')",
    "INSERT INTO sites (id, tenant_id, name, pages_project) "
    "VALUES ('SITE_ID', 'acme', 'Acme home', 'acme-home')",
    "INSERT INTO site_versions (site_id, version_number, content_json) "
    "VALUES ('SITE_ID', 12, '[{\"type\": \"hero\"}]')",
    "INSERT INTO publish_versions (site_id, version_number, status, deployment_id, commit_sha, "
    "created_at, completed_at) VALUES ('SITE_ID', 12, 'live', 'dep-1', 'abc123', "
    "'2026-01-01T00:00:00Z', '2026-01-01T00:02:00Z')",
    "INSERT INTO publish_versions (site_id, version_number, status, error_message, created_at) "
    "VALUES ('SITE_ID', 13, 'failed', 'invalid content_json', '2026-01-03T00:00:00Z')",
    "INSERT INTO domains (id, site_id, tenant_id, domain, status, ssl_status, custom_hostname_id) "
    "VALUES ('dom_1', 'SITE_ID', 'acme', 'example.com', 'pending_validation', "
    "'pending_validation', 'ch-1')",
    "INSERT INTO performance_budgets (site_id, max_js_kb, max_css_kb, max_third_party_scripts, "
    "current_js_kb, status) VALUES ('SITE_ID', 150, 50, 3, 180.5, 'exceeded')",
]


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    """A migrated database holding one tenant with a site, a domain and an unpaid invoice."""
    db = SqliteDatabase(tmp_path / "runbooks.sqlite")
    await migrate(db, REPO_ROOT / "migrations")
    await db.batch([Statement(sql) for sql in SEED])
    yield db
    await db.close()


@pytest.mark.parametrize(("label", "sql"), RUNBOOK_QUERIES, ids=[q[0] for q in RUNBOOK_QUERIES])
async def test_runbook_query_runs_and_finds_the_seeded_rows(
    seeded: SqliteDatabase, label: str, sql: str
) -> None:
    rows = await seeded.query(sql)
    assert rows, f"{label} returned nothing"


# The schema table itself has no user indexes; every app-table query must use one.
INDEXED_QUERIES = [query for query in RUNBOOK_QUERIES if "sqlite_master" not in query[1]]


@pytest.mark.parametrize(("label", "sql"), INDEXED_QUERIES, ids=[q[0] for q in INDEXED_QUERIES])
async def test_runbook_query_uses_an_index_not_a_table_scan(
    seeded: SqliteDatabase, label: str, sql: str
) -> None:
    plan = await seeded.query("EXPLAIN QUERY PLAN " + sql)
    scans = [row["detail"] for row in plan if str(row["detail"]).startswith("SCAN ")]
    assert scans == [], f"{label}: {scans}"


@pytest.mark.parametrize(("table", "column"), RUNBOOK_COLUMNS)
async def test_column_the_runbooks_mention_exists(
    seeded: SqliteDatabase, table: str, column: str
) -> None:
    rows = await seeded.query(f"SELECT name FROM pragma_table_xinfo('{table}')")
    assert column in {row["name"] for row in rows}


def test_hand_list_covers_every_select_in_the_runbooks() -> None:
    if not RUNBOOKS.is_file():
        pytest.skip(f"{RUNBOOKS} is absent: cannot compare with the runbooks")
    blocks = re.findall(r"```sql\n(.*?)```", RUNBOOKS.read_text(), re.DOTALL)
    selects: set[str] = set()
    for block in blocks:
        text = re.sub(r"--[^\n]*", "", block)
        for statement in text.split(";"):
            flat = " ".join(statement.split())
            if flat.upper().startswith("SELECT"):
                selects.add(flat)
    listed = {" ".join(sql.rstrip(";").split()) for _, sql in RUNBOOK_QUERIES}
    assert selects - listed == set()
    assert len(selects) >= 8


async def test_a_dunning_step_is_logged_at_most_once_per_invoice(seeded: SqliteDatabase) -> None:
    with pytest.raises(ConstraintError, match="UNIQUE"):
        await seeded.execute(
            "INSERT INTO dunning_step_logs (invoice_id, step_code, status) "
            "VALUES ('inv_1', 'FAIL_IMMEDIATE', 'pending')"
        )
    await seeded.execute(
        "INSERT INTO dunning_step_logs (invoice_id, step_code, status) "
        "VALUES ('inv_1', 'SOFT_D+3', 'pending')"
    )


async def test_only_one_publish_is_live_per_site_and_environment(seeded: SqliteDatabase) -> None:
    with pytest.raises(ConstraintError):
        await seeded.execute(
            "INSERT INTO publish_versions (site_id, version_number, status) "
            "VALUES ('SITE_ID', 14, 'live')"
        )
    await seeded.batch(
        [
            Statement(
                "UPDATE publish_versions SET status = 'superseded' "
                "WHERE site_id = 'SITE_ID' AND status = 'live'"
            ),
            Statement(
                "INSERT INTO publish_versions (site_id, version_number, status) "
                "VALUES ('SITE_ID', 14, 'live')"
            ),
        ]
    )
    live = await seeded.query("SELECT version_number FROM publish_versions WHERE status = 'live'")
    assert live == [{"version_number": 14}]


async def test_publish_status_outside_the_lifecycle_is_rejected(seeded: SqliteDatabase) -> None:
    with pytest.raises(ConstraintError, match="CHECK"):
        await seeded.execute(
            "INSERT INTO publish_versions (site_id, version_number, status) "
            "VALUES ('SITE_ID', 15, 'done')"
        )


async def test_events_are_append_only_but_can_be_pruned(seeded: SqliteDatabase) -> None:
    await seeded.execute(
        "INSERT INTO events (at, kind, resource, message) VALUES (1.0, 'drift', 'Site/a', 'm')"
    )
    with pytest.raises(SqlError, match="append-only"):
        await seeded.execute("UPDATE events SET message = 'rewritten'")
    result = await seeded.execute("DELETE FROM events WHERE at < 2.0")
    assert result.changes == 1


async def test_domain_hostname_is_a_read_only_alias_of_domain(seeded: SqliteDatabase) -> None:
    rows = await seeded.query("SELECT hostname FROM domains WHERE domain = 'example.com'")
    assert rows == [{"hostname": "example.com"}]
    with pytest.raises(SqlError):
        await seeded.execute(
            "INSERT INTO domains (id, site_id, domain, hostname) "
            "VALUES ('d2', 'SITE_ID', 'b.example', 'b.example')"
        )


async def test_site_version_content_must_be_json(seeded: SqliteDatabase) -> None:
    with pytest.raises(ConstraintError):
        await seeded.execute(
            "INSERT INTO site_versions (site_id, version_number, content_json) "
            "VALUES ('SITE_ID', 13, 'not json')"
        )


async def test_intent_finishes_only_with_a_finish_time(seeded: SqliteDatabase) -> None:
    await seeded.execute(
        "INSERT INTO intents (action_id, kind, target, payload, created_at) "
        "VALUES ('a1', 'publish', 'Site/SITE_ID', '{}', 10.0)"
    )
    with pytest.raises(ConstraintError):
        await seeded.execute("UPDATE intents SET state = 'done' WHERE action_id = 'a1'")
    await seeded.execute(
        "UPDATE intents SET state = 'done', finished_at = 11.0, outcome = '{\"ok\": true}' "
        "WHERE action_id = 'a1'"
    )
    with pytest.raises(ConstraintError, match="UNIQUE"):
        await seeded.execute(
            "INSERT INTO intents (action_id, kind, target, created_at) "
            "VALUES ('a1', 'publish', 'Site/SITE_ID', 12.0)"
        )


async def test_foreign_keys_are_enforced(seeded: SqliteDatabase) -> None:
    with pytest.raises(ConstraintError, match="FOREIGN KEY"):
        await seeded.execute(
            "INSERT INTO sites (id, tenant_id, name, pages_project) "
            "VALUES ('orphan', 'nobody', 'x', 'orphan')"
        )
