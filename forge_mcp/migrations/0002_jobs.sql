-- Jobs: every long action. A row exists before the job is announced anywhere.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    arguments        TEXT NOT NULL,
    principal        TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    gpus             INTEGER NOT NULL DEFAULT 0,
    memory_gb        REAL NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    arguments_hash   TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    parent_id        TEXT REFERENCES jobs(id),
    executor         TEXT NOT NULL DEFAULT 'local',
    host             TEXT,
    pid              INTEGER,
    pid_started_at   REAL,
    heartbeat_at     REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_done    REAL,
    progress_total   REAL,
    progress_message TEXT,
    result           TEXT,
    reason           TEXT,
    error            TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    UNIQUE (principal, idempotency_key)
);
CREATE INDEX jobs_state ON jobs (state, priority DESC, created_at);
CREATE INDEX jobs_kind ON jobs (kind, created_at);

-- Every state change, in order; written in the same transaction as the change itself.
CREATE TABLE job_transitions (
    id         INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT,
    at         REAL NOT NULL
);
CREATE INDEX job_transitions_job ON job_transitions (job_id, id);

-- Step-indexed metric series reported by workers.
CREATE TABLE job_metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    name   TEXT NOT NULL,
    step   REAL NOT NULL,
    value  REAL NOT NULL,
    at     REAL NOT NULL,
    PRIMARY KEY (job_id, name, step)
);

-- A2A tasks this server is running, so a restart can settle those whose executor is gone:
-- from their job when they are one, else as failed by the restart.
CREATE TABLE a2a_task_ledger (
    task_id    TEXT PRIMARY KEY,
    context_id TEXT NOT NULL,
    owner      TEXT NOT NULL,
    tool       TEXT NOT NULL,
    job_id     TEXT REFERENCES jobs(id),
    settled    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX a2a_task_ledger_open ON a2a_task_ledger (settled);
