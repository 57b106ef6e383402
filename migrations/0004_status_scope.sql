-- Migration number: 0004
-- Scope of each status row: the tenant and site that own the resource, so `reconciler status
-- --tenant/--site` finds hostnames too (their key, Hostname/www.example.com, names neither).
-- NULL when the resource belongs to no tenant or site (e.g. Sweep/hostnames).
ALTER TABLE resource_status ADD COLUMN tenant TEXT;
ALTER TABLE resource_status ADD COLUMN site TEXT;
CREATE INDEX resource_status_tenant ON resource_status (tenant, site);
CREATE INDEX resource_status_site ON resource_status (site);
