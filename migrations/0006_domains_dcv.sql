-- Migration number: 0006
-- The certificate's DCV TXT record (ssl.validation_records[].txt_name / txt_value): what
-- runbook 2's `dig _acme-challenge.example.com TXT` is compared with. `verification_token`
-- keeps the ownership TXT value (_cf-custom-hostname.<host>). NULL until Cloudflare shows one
-- (http validation has none; a new certificate starts without one while initializing).
ALTER TABLE domains ADD COLUMN dcv_txt_name TEXT;
ALTER TABLE domains ADD COLUMN dcv_txt_value TEXT;
