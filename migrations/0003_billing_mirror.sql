-- Migration number: 0003
-- The billing mirror's fingerprint: a short hash of the Stripe facts (subscriptions and open
-- invoices) of the account's customer, written by the sync_billing action together with the
-- copied rows. A plan compares it with the hash of what Stripe shows now
-- (reconciler.core.observed.billing_digest): equal means the mirror is current, so a missed
-- webhook changes nothing and an unchanged customer costs no D1 write.
-- mirror_synced_at is epoch seconds (REAL, UTC) from the reconciler's injected clock.

ALTER TABLE billing_accounts ADD COLUMN mirror_digest TEXT;
ALTER TABLE billing_accounts ADD COLUMN mirror_synced_at REAL;
