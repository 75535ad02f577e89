-- Conversation traces (the flywheel's raw data): what an agent was asked, what it called and
-- answered, PII masked before the row is written; then the feedback people give it.
CREATE TABLE traces (
    id                TEXT PRIMARY KEY,             -- "tr_<hex>", ordered by time
    created_at        REAL NOT NULL,
    source            TEXT NOT NULL,                -- chat, a2a, external…
    principal         TEXT NOT NULL,                -- the owner: who recorded it, or whose turn it was
    thread            TEXT,                         -- a conversation's turns share it
    model             TEXT,
    outcome           TEXT NOT NULL CHECK (outcome IN ('answered', 'failed', 'cancelled')),
    latency_ms        INTEGER,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    message_count     INTEGER NOT NULL,
    tool_call_count   INTEGER NOT NULL,
    preview           TEXT NOT NULL,                -- the first user message, shortened (lists read no messages)
    messages          TEXT NOT NULL,                -- JSON: OpenAI chat messages, PII masked
    tags              TEXT NOT NULL DEFAULT '[]',   -- JSON; also in trace_tags, where the filter looks
    metadata          TEXT NOT NULL DEFAULT '{}',   -- JSON: flat
    pii               TEXT NOT NULL DEFAULT '{}',   -- JSON: what was masked, counts by kind
    rating            INTEGER CHECK (rating BETWEEN 1 AND 5),
    correction        TEXT,                         -- the answer the assistant should have given, PII masked
    labels            TEXT NOT NULL DEFAULT '[]',   -- JSON
    feedback_at       REAL,
    idempotency_key   TEXT,
    fingerprint       TEXT NOT NULL,                -- sha256 of what was sent: a repeated key must send the same
    UNIQUE (principal, idempotency_key)
);
CREATE INDEX traces_created ON traces (created_at, id);
CREATE INDEX traces_owner ON traces (principal, created_at, id);
CREATE INDEX traces_source ON traces (source, created_at);
CREATE INDEX traces_model ON traces (model, created_at);
CREATE INDEX traces_outcome ON traces (outcome, created_at);
CREATE INDEX traces_thread ON traces (thread, created_at);
CREATE INDEX traces_rating ON traces (rating, created_at);
CREATE INDEX traces_feedback ON traces (feedback_at);
CREATE TABLE trace_tags (
    tag      TEXT NOT NULL,
    trace_id TEXT NOT NULL REFERENCES traces(id) ON DELETE CASCADE,
    PRIMARY KEY (tag, trace_id)
) WITHOUT ROWID;
