"""Hyperparameter sweeps: an Optuna study over training-spec fields whose trials are train jobs,
run as an orchestration (DESIGN §4b). space.py and request.py say what a sweep is, study.py
keeps its study, jobs.py runs it, service.py starts and shows it."""

SWEEP_KIND = "sweep"  # the orchestration kind; here so the registry can name it without importing a sweep's code
