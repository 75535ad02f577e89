"""JobService called in-process, as the operator and workflows will call it: a caller reaches
their own jobs (an admin every job), and anyone else's reads exactly like an unknown id."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from tests.jobs.conftest import QUICK, SLEEP

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))


async def test_someone_elses_job_looks_missing_through_every_operation(app: ForgeApp) -> None:
    jobs = app.services.jobs
    job_id = (await app.jobs.submit(SLEEP, QUICK, "alice")).job_id
    for call in (jobs.status(BOB, job_id), jobs.logs(BOB, job_id), jobs.metrics(BOB, job_id),
                 jobs.wait(BOB, job_id, 0), jobs.cancel(BOB, job_id), jobs.resume(BOB, job_id)):  # fmt: skip
        with pytest.raises(NotFound, match=job_id):
            await call
    assert (await jobs.status(ADMIN, job_id)).principal == "alice"
    assert [j.id for j in (await jobs.list(ALICE)).jobs] == [job_id]
    listed = await jobs.list(BOB)
    assert (listed.jobs, listed.counts) == ([], {})
    assert (await jobs.list(ADMIN, [JobState.QUEUED], SLEEP)).counts == {"QUEUED": 1}


async def test_a_queued_job_has_an_empty_log_no_chart_and_a_wait_that_times_out(app: ForgeApp) -> None:
    jobs = app.services.jobs
    job_id = (await app.jobs.submit(SLEEP, QUICK, "alice")).job_id
    logs = await jobs.logs(ALICE, job_id, since=10)
    assert (logs.text, logs.cursor, logs.size, logs.truncated) == ("", 0, 0, False)
    assert (await jobs.metrics(ALICE, job_id)).series == []
    with pytest.raises(InvalidArguments, match=f"chart: job {job_id} has reported no metrics yet"):
        await jobs.metrics(ALICE, job_id, chart=True)
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        reports.append((done, total, message))

    waited = await jobs.wait(ALICE, job_id, 0.0, progress)
    assert waited.timed_out and waited.job.state is JobState.QUEUED and reports == []
    canceled = await jobs.cancel(ALICE, job_id)
    assert canceled.state is JobState.CANCELED
    assert not (await jobs.wait(ALICE, job_id, 0.0)).timed_out
    resumed = await jobs.resume(ADMIN, job_id)
    assert (await jobs.status(ALICE, resumed.job_id)).parent_id == job_id  # still alice's
