"""Conversation traces: what agents said and did, stored in the workspace database with the
PII masked, and the ratings and corrections people give them afterwards; the flywheel's raw
data (DESIGN §9). limits.py bounds a trace, messages.py is its chat format and the rules
between its messages, models.py what goes in and comes out, redaction.py masks PII,
repository.py stores it, service.py is what tools and the operator call."""
