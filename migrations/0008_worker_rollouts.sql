-- Migration number: 0008
-- Every rollout of one of the platform's own Workers (kind: Worker) that the reconciler made:
-- the version it moved to, the split, and how the health check judged it. The newest row per
-- script decides: `checking` means a run deployed and stopped before its health check was
-- judged (the next pass checks again), `turned_back` means traffic went back to the last good split by itself
-- (runbook 6, "rollback immediately") and the plan blocks that version until the spec changes.
CREATE TABLE worker_rollouts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    script       TEXT NOT NULL,
    version      INTEGER NOT NULL,            -- the newest version number of the split asked for
    split        TEXT NOT NULL,               -- "version 3 at 100 %"
    status       TEXT NOT NULL CHECK (status IN ('checking', 'live', 'turned_back')),
    return_to    TEXT NOT NULL DEFAULT '[]',  -- JSON [[version_id, percentage]]: the last good split
    returned_to  TEXT NOT NULL DEFAULT '',    -- the split traffic went back to, when turned back
    error        TEXT NOT NULL DEFAULT '',    -- what the health check saw
    revision     TEXT,                        -- the specs commit
    created_at   REAL NOT NULL                -- epoch seconds, the reconciler's clock
);
CREATE INDEX worker_rollouts_script ON worker_rollouts (script, id);
