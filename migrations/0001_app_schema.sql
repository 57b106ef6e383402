-- Migration number: 0001
-- The site-builder app tables, named as the operation runbooks query them (RUNBOOKS.md).
-- Timestamps are ISO-8601 UTC text (2026-01-09T10:00:00Z); money is in minor units.
-- Applied by `wrangler d1 migrations apply` or `reconciler migrate`; see docs/d1.md.
-- No explicit transaction statements here: D1 runs each migration file as one atomic batch.

CREATE TABLE tenants (
    id                TEXT PRIMARY KEY,            -- the Tenant spec name
    name              TEXT NOT NULL,               -- display name
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'soft_locked', 'hard_locked')),
    status_reason     TEXT,
    status_changed_at TEXT,
    billing_policy    TEXT,                        -- BillingPolicy spec name
    whatsapp_phone    TEXT,                        -- E.164, e.g. +5511912345678
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE billing_accounts (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider             TEXT NOT NULL DEFAULT 'stripe',
    provider_customer_id TEXT,                     -- cus_...
    status               TEXT NOT NULL DEFAULT 'active',  -- active | past_due | soft_locked | hard_locked | canceled
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (provider, provider_customer_id)
);
CREATE INDEX billing_accounts_tenant ON billing_accounts (tenant_id);

CREATE TABLE subscriptions (
    id                       TEXT PRIMARY KEY,
    billing_account_id       TEXT NOT NULL REFERENCES billing_accounts (id) ON DELETE CASCADE,
    tenant_id                TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    provider_subscription_id TEXT UNIQUE,          -- sub_...
    status                   TEXT NOT NULL,        -- Stripe status: active | past_due | unpaid | canceled | ...
    latest_invoice_id        TEXT,                 -- provider invoice id (in_...)
    current_period_end       TEXT,
    synced_at                TEXT,                 -- last copy from the provider
    created_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX subscriptions_billing_account ON subscriptions (billing_account_id);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id);
CREATE INDEX subscriptions_status ON subscriptions (status);

CREATE TABLE invoices (
    id                  TEXT PRIMARY KEY,
    provider_invoice_id TEXT UNIQUE,               -- in_...
    subscription_id     TEXT REFERENCES subscriptions (id) ON DELETE SET NULL,
    billing_account_id  TEXT REFERENCES billing_accounts (id) ON DELETE CASCADE,
    tenant_id           TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    status              TEXT NOT NULL,             -- draft | open | paid | void | uncollectible
    amount_due          INTEGER NOT NULL DEFAULT 0,
    amount_paid         INTEGER NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL DEFAULT 'usd',
    attempt_count       INTEGER NOT NULL DEFAULT 0,
    hosted_invoice_url  TEXT,
    finalized_at        TEXT,
    due_at              TEXT,
    first_failed_at     TEXT,                      -- day 0 of the dunning schedule
    paid_at             TEXT,
    synced_at           TEXT,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX invoices_subscription_due ON invoices (subscription_id, due_at);
CREATE INDEX invoices_billing_account_status ON invoices (billing_account_id, status);
CREATE INDEX invoices_tenant_status ON invoices (tenant_id, status);
CREATE INDEX invoices_status ON invoices (status);

-- One row per (invoice, dunning step): the UNIQUE key makes "at most once" enforceable.
-- A send writes the row as pending first, then sent or failed; a retry updates the same row.
CREATE TABLE dunning_step_logs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id          TEXT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    subscription_id     TEXT REFERENCES subscriptions (id) ON DELETE SET NULL,
    tenant_id           TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    step_code           TEXT NOT NULL,             -- FAIL_IMMEDIATE, SOFT_D+3, ...
    channel             TEXT NOT NULL DEFAULT 'whatsapp',
    phone               TEXT,                      -- E.164 the message went to
    message             TEXT,                      -- rendered text
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    provider_response   TEXT,                      -- JSON body returned by the gateway
    error_message       TEXT,
    sent_at             TEXT,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (invoice_id, step_code)
);
CREATE INDEX dunning_step_logs_subscription_sent ON dunning_step_logs (subscription_id, sent_at);
CREATE INDEX dunning_step_logs_status_sent ON dunning_step_logs (status, sent_at);
CREATE INDEX dunning_step_logs_tenant ON dunning_step_logs (tenant_id);

CREATE TABLE sites (
    id                 TEXT PRIMARY KEY,           -- the Site spec name
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    pages_project      TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL DEFAULT 'active',
    production_version INTEGER,                    -- content version live in production
    preview_version    INTEGER,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX sites_tenant ON sites (tenant_id);

-- Content snapshots written by the site editor; content_json is a list of typed blocks
-- (schemas/content.schema.json).
CREATE TABLE site_versions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    version_number INTEGER NOT NULL CHECK (version_number >= 1),
    content_json   TEXT NOT NULL CHECK (json_valid(content_json)),
    content_hash   TEXT,                           -- sha256 of content_json
    created_by     TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (site_id, version_number)
);

-- One row per publish attempt of a site version to an environment.
CREATE TABLE publish_versions (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id                 TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    version_number          INTEGER NOT NULL,
    environment             TEXT NOT NULL DEFAULT 'production'
                            CHECK (environment IN ('production', 'preview')),
    status                  TEXT NOT NULL DEFAULT 'building'
                            CHECK (status IN ('building', 'deploying', 'live', 'failed', 'superseded')),
    deployment_id           TEXT,                  -- Cloudflare Pages deployment id
    deployment_url          TEXT,
    content_hash            TEXT,
    commit_sha              TEXT,                  -- specs commit that asked for this publish
    attempts                INTEGER NOT NULL DEFAULT 1,
    js_kb                   REAL,                  -- built sizes, checked against the budget
    css_kb                  REAL,
    third_party_scripts     INTEGER,
    error_message           TEXT,
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    completed_at            TEXT
);
CREATE INDEX publish_versions_site_created ON publish_versions (site_id, created_at);
CREATE INDEX publish_versions_deployment ON publish_versions (deployment_id);
CREATE INDEX publish_versions_status ON publish_versions (status);
-- At most one live publish per site and environment: supersede the old row in the same batch.
CREATE UNIQUE INDEX publish_versions_one_live
    ON publish_versions (site_id, environment) WHERE status = 'live';

-- Custom hostnames. `domain` is the column the runbooks query; `hostname` is a read-only
-- alias of it (a generated column: write `domain`, never `hostname`).
CREATE TABLE domains (
    id                   TEXT PRIMARY KEY,
    site_id              TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    tenant_id            TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    domain               TEXT NOT NULL UNIQUE,     -- normalised: lowercase IDNA A-labels
    hostname             TEXT GENERATED ALWAYS AS (domain) VIRTUAL,
    status               TEXT NOT NULL DEFAULT 'pending_validation',  -- pending_validation | pending_ssl | active | failed | suspended | deleted
    ssl_status           TEXT,                     -- Cloudflare ssl.status
    ssl_method           TEXT NOT NULL DEFAULT 'http' CHECK (ssl_method IN ('http', 'txt', 'email')),
    custom_hostname_id   TEXT UNIQUE,              -- Cloudflare custom hostname id
    custom_origin_server TEXT,
    verification_token   TEXT,                     -- TXT value for ownership validation
    verification_errors  TEXT,                     -- JSON array from Cloudflare
    recreate_count       INTEGER NOT NULL DEFAULT 0,
    retry_count          INTEGER NOT NULL DEFAULT 0,
    status_since         TEXT,                     -- when the current status began (timeouts)
    last_checked_at      TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX domains_site ON domains (site_id);
CREATE INDEX domains_status ON domains (status);

CREATE TABLE performance_budgets (
    site_id                     TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    max_js_kb                   REAL NOT NULL,
    max_css_kb                  REAL NOT NULL,
    max_third_party_scripts     INTEGER NOT NULL,
    current_js_kb               REAL,
    current_css_kb              REAL,
    current_third_party_scripts INTEGER,
    status                      TEXT NOT NULL DEFAULT 'unknown'
                                CHECK (status IN ('unknown', 'ok', 'exceeded')),
    measured_version            INTEGER,
    measured_at                 TEXT,
    updated_at                  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
