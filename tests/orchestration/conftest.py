"""The engine tests' real ForgeApp (store, engine lock, local and server executors, real
worker processes) with the test kinds on: tests/jobs/conftest.py's fixtures."""

from tests.jobs.conftest import forge, test_job_kinds  # noqa: F401 (fixtures)
