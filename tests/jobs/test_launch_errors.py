"""A worker that cannot be started fails its job with a message a client may read: the OS
error's host paths made workspace-relative, a ref to the server log, which has the detail."""

from __future__ import annotations

import logging
import re

import pytest

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.states import JobState
from tests.jobs.conftest import LONG, QUICK, SLEEP, AppFactory, running_with_pid


async def test_a_worker_that_cannot_start_fails_its_job_without_host_paths(forge: AppFactory,
                                                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    app = await forge(cpu_job_slots=1)
    blocker = await app.jobs.submit(SLEEP, LONG, "tester")
    await running_with_pid(app, blocker.job_id)
    queued = await app.jobs.submit(SLEEP, QUICK, "tester")
    # The launch opens runs/<job>/worker.log for the worker's output: a folder there is a real OSError.
    run = app.workspace.run(queued.job_id)
    log_file = run.log
    log_file.mkdir(parents=True)
    with caplog.at_level(logging.ERROR, logger="forge_mcp.jobs"):
        await app.jobs.cancel(blocker.job_id)  # frees the slot: the queued job is launched now
        job = await app.jobs.wait(queued.job_id, 60)
    assert job.state is JobState.FAILED and job.reason == C.REASON_LAUNCH_FAILED
    shown = re.fullmatch(r"could not start the worker \(ref ([0-9a-f]{8})\): \[Errno 21\] Is a directory: "
                         rf"'{run.shown(log_file)}'; the server log has the detail", job.error or "")  # fmt: skip
    assert shown, job.error
    assert str(app.workspace.root) not in job.error
    # The server log keeps the host path, under the same ref.
    [logged] = [r.getMessage() for r in caplog.records if shown.group(1) in r.getMessage()]
    assert f"{queued.job_id}: could not start the worker" in logged and str(log_file) in logged
