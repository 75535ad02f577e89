-- A version registered from a sweep names where it came from: the sweep, the trial, its
-- parameters and objective (JSON; NULL for a version from a plain training job or a folder).
ALTER TABLE models ADD COLUMN sweep TEXT;
