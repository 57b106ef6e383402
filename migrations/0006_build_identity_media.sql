-- Migration number: 0006
-- Builds follow every input, and image weight is part of the performance budget (docs/build.md).
-- publish_versions.build_identity is the SHA-256 of build_inputs (canonical JSON: site, version,
-- content digest, scripts, builder fingerprint); the deployment's tag carries its first 12 hex
-- digits. image_kb is the largest image file the build serves, page_weight_kb its heaviest page.
ALTER TABLE publish_versions ADD COLUMN build_identity TEXT;
ALTER TABLE publish_versions ADD COLUMN build_inputs TEXT;
ALTER TABLE publish_versions ADD COLUMN image_kb REAL;
ALTER TABLE publish_versions ADD COLUMN page_weight_kb REAL;
ALTER TABLE performance_budgets ADD COLUMN max_image_kb REAL;
ALTER TABLE performance_budgets ADD COLUMN max_page_weight_kb REAL;
ALTER TABLE performance_budgets ADD COLUMN current_image_kb REAL;
ALTER TABLE performance_budgets ADD COLUMN current_page_weight_kb REAL;
CREATE INDEX publish_versions_build_identity ON publish_versions (build_identity);
