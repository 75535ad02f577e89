-- The processes a job runs as (data-parallel training ranks; 1 for every other job). An
-- executor that schedules (Ray) places each rank on its own worker, and holds no GPU for the
-- job's driver process, which only watches them.
ALTER TABLE jobs ADD COLUMN processes INTEGER NOT NULL DEFAULT 1 CHECK (processes >= 1);
