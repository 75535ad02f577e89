-- The monitor's samples (forge_mcp/monitoring): one row per host and sampling round, this
-- machine as 'local' and each compute target by its name. A host that could not be reached
-- has no row for that round. gpus is JSON: a list of per-GPU readings (index, name,
-- utilization_percent, memory_used_bytes, memory_total_bytes, temperature_celsius,
-- power_watts). Rows older than monitor_retention_hours are deleted as new ones are written.
CREATE TABLE system_samples (
    id               INTEGER PRIMARY KEY,
    host             TEXT NOT NULL,
    at               REAL NOT NULL,
    cpu_percent      REAL,
    ram_used_bytes   INTEGER,
    ram_total_bytes  INTEGER,
    disk_free_bytes  INTEGER,
    disk_total_bytes INTEGER,
    gpus             TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX system_samples_host_at ON system_samples (host, at);
CREATE INDEX system_samples_at ON system_samples (at);
