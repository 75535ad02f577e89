"""Compute targets: machines beyond this one that jobs can run on (DESIGN §4c)."""
