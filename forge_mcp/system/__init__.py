"""The server as a whole: what it is and offers (the overview), how busy its machine is, and
measuring that machine (the benchmark job)."""
