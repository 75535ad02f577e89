-- API keys: only a SHA-256 of each key is stored; the key itself is shown once at creation.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_used_at REAL,
    revoked_at  REAL
);
