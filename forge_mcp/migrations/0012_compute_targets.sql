-- Compute targets (forge_mcp/compute): machines beyond this one that jobs can run on.
-- kind 'ssh': host, port, user, the private key's workspace path (never the key itself) and
-- the host key pinned at compute_add (checked on every connection; never trusted on first
-- use). kind 'ray': the cluster's address. config is JSON; probe is the last compute_probe.
CREATE TABLE compute_targets (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('ssh', 'ray')),
    config     TEXT NOT NULL,
    probe      TEXT,
    probed_at  REAL,
    created_at REAL NOT NULL,
    principal  TEXT NOT NULL
);
