"""The durable job engine: every long action is a job, run in a supervised worker process.

One enum of states (states.py), constants in one place (constants.py), the repository
on the workspace database (repository.py), executors that start and stop worker
processes (executor.py), the event file between worker and engine (events.py), the
allowlist of job kinds and the worker-side API (kinds.py), admission (admission.py),
and the engine that ties them together (engine.py).
"""
