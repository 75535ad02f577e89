-- Verified exports of model versions (adapter, merged folder, GGUF). Files live in
-- models/<name>/v<version>/exports/<key>/ with a manifest; one row per key, a re-export
-- of the same format and quantisation replaces it.
CREATE TABLE model_exports (
    model_id      TEXT NOT NULL REFERENCES models(id),
    key           TEXT NOT NULL,             -- "adapter", "merged", "gguf-q8_0", ...
    format        TEXT NOT NULL CHECK (format IN ('adapter', 'merged', 'gguf')),
    quantization  TEXT,
    path          TEXT NOT NULL,             -- folder inside the workspace
    file          TEXT,                      -- the GGUF file inside it
    job_id        TEXT NOT NULL,
    verification  TEXT NOT NULL,             -- JSON: next-token agreement with the source
    created_at    REAL NOT NULL,
    PRIMARY KEY (model_id, key)
);
