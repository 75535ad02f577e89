"""Training: the spec, the plan (validation and estimates) and checkpoints — no torch here."""
