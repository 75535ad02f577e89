-- A2A tasks and push configs (agents/a2a_store.py). Until now a2a-sdk's SQLAlchemy stores
-- created these tables at start-up; the columns are theirs, so a workspace keeps its tasks.
-- status, artifacts, history and metadata are JSON text; last_updated is naive-UTC text
-- 'YYYY-MM-DD HH:MM:SS.ffffff', which sorts as time does; config_data is the config's JSON.
CREATE TABLE IF NOT EXISTS a2a_tasks (
    id               VARCHAR(36) NOT NULL,
    context_id       VARCHAR(36) NOT NULL,
    kind             VARCHAR(16) NOT NULL,
    owner            VARCHAR(255),
    last_updated     DATETIME,
    status           JSON NOT NULL,
    artifacts        JSON,
    history          JSON,
    protocol_version VARCHAR(16),
    metadata         JSON,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_a2a_tasks_owner_last_updated ON a2a_tasks (owner, last_updated);

CREATE TABLE IF NOT EXISTS a2a_push_configs (
    task_id          VARCHAR(36) NOT NULL,
    config_id        VARCHAR(255) NOT NULL,
    config_data      BLOB NOT NULL,
    owner            VARCHAR(255),
    protocol_version VARCHAR(16),
    PRIMARY KEY (task_id, config_id)
);
CREATE INDEX IF NOT EXISTS ix_a2a_push_configs_owner ON a2a_push_configs (owner);
