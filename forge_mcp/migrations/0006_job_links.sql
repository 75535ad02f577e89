-- Orchestrations' children (DESIGN §4b): which job an orchestration started as which of its
-- steps. A relation of its own: jobs.parent_id is job_resume's "repeat of", not "child of".
-- The link is written before its child job exists, naming the child's idempotency key (unique
-- per owner), so a restarted orchestration finds the child of a step again, or starts it once
-- if the crash came between the two writes; child_id is filled in once the child is queued.
CREATE TABLE job_links (
    parent_id       TEXT NOT NULL REFERENCES jobs(id),
    step            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    child_id        TEXT REFERENCES jobs(id),
    created_at      REAL NOT NULL,
    PRIMARY KEY (parent_id, step)
);
CREATE INDEX job_links_child ON job_links (child_id);
