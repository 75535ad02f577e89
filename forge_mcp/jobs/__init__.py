"""The durable job engine: every long action is a job, run in a supervised worker process.

One enum of states (states.py), constants in one place (constants.py), the repository
on the workspace database (repository.py), executors that start, watch, stop and collect
workers wherever they run (executors/), the event file between worker and engine (events.py), the
catalog of job kinds (catalog.py: the allowlist; kinds.py: a typed kind; testing_kinds.py:
the engine tests' workloads), publication of a job's result (publishing.py), a run's folder and its job.json (run_dir.py, spec.py),
the worker-side API (context.py), admission (admission.py),
and the engine that ties them together (engine.py: a façade over submission.py,
supervision.py with launching.py and settlement.py, recovery.py and waiting.py).
"""
