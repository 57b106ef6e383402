-- Migration number: 0007
-- Two changes: the DCV TXT record in `domains`, and older dunning rows of unknown outcome.
-- The certificate's DCV TXT record (ssl.validation_records[].txt_name / txt_value): what
-- runbook 2's `dig _acme-challenge.example.com TXT` is compared with. `verification_token`
-- keeps the ownership TXT value (_cf-custom-hostname.<host>). NULL until Cloudflare shows one
-- (http validation has none; a new certificate starts without one while initializing).
ALTER TABLE domains ADD COLUMN dcv_txt_name TEXT;
ALTER TABLE domains ADD COLUMN dcv_txt_value TEXT;
-- Dunning rows written before 0005 recorded a send of unknown outcome as `failed`; `failed`
-- now means "nothing was sent" (a refused number), which a corrected number or a manual retry
-- sends again. Those older rows become `unknown`, so they are never sent again.
UPDATE dunning_step_logs SET status = 'unknown'
WHERE status = 'failed' AND error_message LIKE 'outcome of % is unknown%';
