"""Whether a process on a Linux target is still the worker that was started, from the text of
its /proc files (read over SFTP: no process is started there to ask). The same figures psutil
reads on the target itself: boot time plus the process's start in clock ticks."""

from __future__ import annotations

CLOCK_TICKS = 100  # USER_HZ: what /proc reports start times in, 100 on every Linux architecture
SAME_PROCESS_S = 1.0  # start times further apart than this: the pid belongs to another process now


def boot_time(proc_stat: str) -> float:
    """The btime line of /proc/stat; ValueError when there is none."""
    for line in proc_stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("/proc/stat has no btime line")


def proc_alive(pid_stat: str, booted_at: float, started_at: float) -> bool:
    """/proc/<pid>/stat: alive unless a zombie, and the same process if it started when ours did.
    The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'."""
    fields = pid_stat[pid_stat.rindex(")") + 2 :].split()
    state, start_ticks = fields[0], int(fields[19])
    return state != "Z" and abs(booted_at + start_ticks / CLOCK_TICKS - started_at) <= SAME_PROCESS_S
