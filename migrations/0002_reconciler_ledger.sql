-- Migration number: 0002
-- The reconciler's own ledger. Times here are epoch seconds (REAL, UTC) from the reconciler's
-- injected clock, so they compare numerically with it (lease expiry, timeouts).
-- JSON columns hold objects; json_valid keeps garbage out.

-- Intent journal: written before each side effect, finished after it.
-- A pending row on restart means "the outcome is unknown: look before acting again".
CREATE TABLE intents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id   TEXT NOT NULL UNIQUE,              -- stable id of the planned action
    kind        TEXT NOT NULL,                     -- publish | rollback | create_hostname | ...
    target      TEXT NOT NULL,                     -- resource key, e.g. Site/acme-home
    payload     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    commit_sha  TEXT,                              -- specs commit the plan was made from
    created_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT CHECK (outcome IS NULL OR json_valid(outcome)),
    CHECK ((state = 'pending') = (finished_at IS NULL))
);
CREATE INDEX intents_pending ON intents (created_at) WHERE state = 'pending';
CREATE INDEX intents_target ON intents (target, created_at);

-- Conditions per resource, Kubernetes style (Ready, Stuck, Degraded, ...): one row per
-- (resource, condition_type), overwritten in place.
CREATE TABLE resource_status (
    resource             TEXT NOT NULL,            -- Site/acme-home, Domain/www.example.com, ...
    condition_type       TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('True', 'False', 'Unknown')),
    reason               TEXT NOT NULL DEFAULT '', -- CamelCase machine reason
    message              TEXT NOT NULL DEFAULT '', -- human sentence
    last_error           TEXT,
    observed_commit      TEXT,                     -- specs commit this condition reflects
    last_transition_at   REAL NOT NULL,            -- when status last changed
    updated_at           REAL NOT NULL,
    PRIMARY KEY (resource, condition_type)
);
CREATE INDEX resource_status_condition ON resource_status (condition_type, status);

-- Append-only event log. Rows are never updated; old rows may be deleted for retention.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,                       -- e.g. action.started, action.failed, drift
    resource  TEXT NOT NULL DEFAULT '',
    action_id TEXT,                                -- the intent this event belongs to, if any
    message   TEXT NOT NULL,
    data      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data))
);
CREATE INDEX events_resource ON events (resource, id);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_kind ON events (kind, id);
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Leases for leader election and per-resource exclusivity. fencing_token grows by one on
-- every acquisition by a new holder; writers pass it along so a stale leader is detectable.
CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    expires_at    REAL NOT NULL,
    fencing_token INTEGER NOT NULL DEFAULT 1 CHECK (fencing_token >= 1),
    acquired_at   REAL NOT NULL,
    renewed_at    REAL NOT NULL
);
