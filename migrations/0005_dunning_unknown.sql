-- Migration number: 0005
-- A dunning send whose outcome is unknown (a timeout, a 5xx, a process that died or lost its
-- lease between the send and its record) is recorded as `unknown`, not `failed`: the runbook's
-- manual resend of `failed` rows must not message a tenant twice. SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt (same columns, same rows, same indexes).
CREATE TABLE dunning_step_logs_v5 (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id          TEXT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    subscription_id     TEXT REFERENCES subscriptions (id) ON DELETE SET NULL,
    tenant_id           TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    step_code           TEXT NOT NULL,
    channel             TEXT NOT NULL DEFAULT 'whatsapp',
    phone               TEXT,
    message             TEXT,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'skipped', 'unknown')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    provider_response   TEXT,
    error_message       TEXT,
    sent_at             TEXT,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (invoice_id, step_code)
);
INSERT INTO dunning_step_logs_v5 (id, invoice_id, subscription_id, tenant_id, step_code,
    channel, phone, message, status, attempts, provider_message_id, provider_response,
    error_message, sent_at, created_at, updated_at)
SELECT id, invoice_id, subscription_id, tenant_id, step_code, channel, phone, message, status,
    attempts, provider_message_id, provider_response, error_message, sent_at, created_at,
    updated_at
FROM dunning_step_logs;
DROP TABLE dunning_step_logs;
ALTER TABLE dunning_step_logs_v5 RENAME TO dunning_step_logs;
CREATE INDEX IF NOT EXISTS dunning_step_logs_subscription_sent
    ON dunning_step_logs (subscription_id, sent_at);
CREATE INDEX IF NOT EXISTS dunning_step_logs_status_sent ON dunning_step_logs (status, sent_at);
CREATE INDEX IF NOT EXISTS dunning_step_logs_tenant ON dunning_step_logs (tenant_id);
