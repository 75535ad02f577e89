-- The model registry. Files live in models/<name>/v<version>/ (with a model card); this table
-- is the index. The partial unique index is what makes "one production version per name"
-- hold under concurrent promotes: the database refuses the second.
CREATE TABLE models (
    id                   TEXT PRIMARY KEY,          -- "<name>@v<version>"
    name                 TEXT NOT NULL,
    version              INTEGER NOT NULL,
    stage                TEXT NOT NULL CHECK (stage IN ('registered', 'staging', 'production', 'archived')),
    kind                 TEXT NOT NULL CHECK (kind IN ('adapter', 'full')),
    path                 TEXT NOT NULL,             -- folder inside the workspace
    base_model           TEXT,                      -- what an adapter applies to
    dataset_id           TEXT,
    dataset_fingerprint  TEXT,
    job_id               TEXT,
    spec                 TEXT NOT NULL DEFAULT '{}',-- JSON: the resolved training spec
    metrics              TEXT NOT NULL DEFAULT '{}',-- JSON: from training and from evaluations
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL,
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX models_one_production ON models (name) WHERE stage = 'production';
CREATE TABLE model_transitions (
    model_id    TEXT NOT NULL REFERENCES models(id),
    from_stage  TEXT,
    to_stage    TEXT NOT NULL,
    principal   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          REAL NOT NULL
);
