"""The SSH executor's liveness check reads /proc over SFTP instead of starting a process there
each poll: it must agree with psutil, which the target's own remote_ops would ask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from forge_mcp.compute.proc_stat import boot_time, proc_alive

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="Linux /proc only")


def stat_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text()


def test_a_live_process_is_the_one_started_when_psutil_says_it_started() -> None:
    booted = boot_time(Path("/proc/stat").read_text())
    me = psutil.Process(os.getpid())
    assert proc_alive(stat_of(me.pid), booted, me.create_time())
    assert not proc_alive(stat_of(me.pid), booted, me.create_time() - 5)  # the pid now names another process


def test_a_command_name_with_spaces_and_parentheses_is_read_past(tmp_path: Path) -> None:
    odd = tmp_path / "a (b) c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)  # lives until killed
    try:
        booted = boot_time(Path("/proc/stat").read_text())
        assert "(a (b) c)" in stat_of(child.pid)
        assert proc_alive(stat_of(child.pid), booted, psutil.Process(child.pid).create_time())
    finally:
        child.kill()
        child.wait()


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert not proc_alive(stat_of(child.pid), boot_time(Path("/proc/stat").read_text()), started)
    finally:
        child.wait()
