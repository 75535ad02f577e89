"""Resuming someone else's job (an admin's right): the new job is the original owner's, and
the per-principal queue limit counts against that owner, not against whoever resumed it."""

from __future__ import annotations

import pytest

from forge_mcp.errors import Conflict
from forge_mcp.security.principal import Principal
from tests.jobs.conftest import LONG, QUICK, SLEEP, AppFactory, running_with_pid

ADMIN = Principal("root", frozenset({"admin"}))


async def test_an_admin_resumes_into_the_owners_queue(forge: AppFactory) -> None:
    app = await forge(cpu_job_slots=1, max_queued_per_principal=1)
    await running_with_pid(app, (await app.jobs.submit(SLEEP, LONG, "blocker")).job_id)
    canceled = await app.jobs.submit(SLEEP, QUICK, "alice")
    await app.jobs.cancel(canceled.job_id)
    resumed = await app.jobs.resume(canceled.job_id, ADMIN)
    job = await app.jobs.repo.get(resumed.job_id)
    assert (job.principal, job.parent_id) == ("alice", canceled.job_id)
    # alice's one queue place is now taken by the resumed job: a second resume is refused,
    # naming her queue; the admin's own queue is empty and still takes a job.
    with pytest.raises(Conflict, match=r"^1 of alice's jobs are already queued \(the limit is 1\)"):
        await app.jobs.resume(canceled.job_id, ADMIN)
    with pytest.raises(Conflict, match=r"^1 of your jobs are already queued"):
        await app.jobs.submit(SLEEP, QUICK, "alice")
    assert (await app.jobs.submit(SLEEP, QUICK, "root")).job_id
