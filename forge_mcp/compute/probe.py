"""What a target has: a short Python program sent to the target's interpreter on stdin
(standard library only, so it runs before forge-mcp is installed there), which prints one
JSON line. Nothing it prints is evaluated here: the line is parsed as JSON and validated."""

from __future__ import annotations

import json

from forge_mcp.compute.models import ProbeResult

PROBE_PROGRAM = r'''
import json, os, platform, shutil, subprocess, sys

found = {"os": platform.platform(), "hostname": platform.node(), "cpus": os.cpu_count(),
         "python": platform.python_version(), "gpus": []}
try:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    found["ram_gb"] = round(int(fields["MemTotal"].split()[0]) / 2**20, 1)
except (OSError, KeyError, ValueError):
    pass
place = os.path.abspath(os.path.expanduser(sys.argv[1]))
while not os.path.exists(place):
    place = os.path.dirname(place)
found["disk_free_gb"] = round(shutil.disk_usage(place).free / 2**30, 1)
if shutil.which("nvidia-smi"):
    for fields in ("index,name,memory.total,compute_cap", "index,name,memory.total"):  # older drivers lack compute_cap
        try:
            listed = subprocess.run(["nvidia-smi", "--query-gpu=" + fields, "--format=csv,noheader,nounits"],
                                    capture_output=True, text=True, timeout=20)
            if listed.returncode != 0:
                continue
            for line in listed.stdout.strip().splitlines():
                parts = [part.strip() for part in line.split(",")]
                gpu = {"index": int(parts[0]), "name": parts[1], "memory_gb": round(float(parts[2]) / 1024, 1)}
                if len(parts) > 3:
                    gpu["compute_capability"] = parts[3]
                found["gpus"].append(gpu)
            break
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            found["gpus"] = []
try:
    import forge_mcp
    found["forge_mcp"] = forge_mcp.__version__
except ImportError:
    found["forge_mcp"] = None
print(json.dumps(found))
'''


def parse_probe(stdout: str) -> ProbeResult:
    """The probe's last line; ValueError when there is none that parses."""
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError("the probe printed no result")
    return ProbeResult.model_validate(json.loads(lines[-1]))
