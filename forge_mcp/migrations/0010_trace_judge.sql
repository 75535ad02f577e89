-- An LLM judge's grade of a trace (trace_judge), kept apart from a person's rating: the judge
-- grades only traces nobody rated, and never writes the `rating` column.
ALTER TABLE traces ADD COLUMN judge_rating INTEGER CHECK (judge_rating BETWEEN 1 AND 5);
ALTER TABLE traces ADD COLUMN judge_reason TEXT;   -- the judge's one sentence, cut short
ALTER TABLE traces ADD COLUMN judge_model TEXT;    -- the model that graded it
ALTER TABLE traces ADD COLUMN judged_at REAL;
CREATE INDEX traces_judge_rating ON traces (judge_rating, created_at);
CREATE INDEX traces_judged ON traces (judged_at);
