-- Dataset versions. Rows live in datasets/<name>/v<version>/data.parquet with a manifest.json;
-- this table is the index: a version appears here only once its folder is complete.
CREATE TABLE datasets (
    id               TEXT PRIMARY KEY,          -- "<name>@v<version>"
    name             TEXT NOT NULL,
    version          INTEGER NOT NULL,
    fingerprint      TEXT NOT NULL,             -- sha256 over the canonical rows, in order
    kind             TEXT NOT NULL,
    kind_confidence  REAL NOT NULL,
    rows             INTEGER NOT NULL,
    schema           TEXT NOT NULL,             -- JSON: top-level fields, their types and how many rows have them
    source           TEXT NOT NULL,             -- JSON: where it came from (format, path, bytes) or its parent
    parent_id        TEXT REFERENCES datasets(id),
    steps            TEXT NOT NULL DEFAULT '[]',-- JSON: lineage, the steps that made it and their counts
    report           TEXT NOT NULL DEFAULT '{}',-- JSON: what importing or preparing found
    created_at       REAL NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX datasets_fingerprint ON datasets (fingerprint);
