-- processes: the processes a job runs as (data-parallel training ranks; 1 for every other
-- job). An executor that schedules (Ray) places each rank on its own worker, and holds no GPU
-- for the job's driving process, which only watches them.
-- retry_elsewhere: 1 when the caller allowed the job to run again on another machine where it
-- fits (this one first) if the host it runs on is lost; 0 keeps it where it was placed.
ALTER TABLE jobs ADD COLUMN processes INTEGER NOT NULL DEFAULT 1 CHECK (processes >= 1);
ALTER TABLE jobs ADD COLUMN retry_elsewhere INTEGER NOT NULL DEFAULT 0 CHECK (retry_elsewhere IN (0, 1));
