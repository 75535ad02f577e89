"""`python -m forge_mcp.compute.ray_probe <address>`: what a Ray cluster has, as one JSON line.
`python -m forge_mcp.compute.ray_probe --sample <address> <folder>`: each alive node's load, read
by the monitor's sampling program (monitoring/sampling.py) run on that node, as one JSON line.

Run by the server in a child process (Ray is never imported into the server: it starts
threads and holds a connection for as long as the process lives). It joins the cluster as
a driver, reads the nodes and their resources, and runs one task there to learn which
Python and forge-mcp the cluster's workers have. The server parses the line and validates
it (compute/models.py ProbeResult); nothing in it is evaluated."""

from __future__ import annotations

import json
import sys

TASK_TIMEOUT_S = 60.0
GIB = 2**30


def probe(address: str) -> dict[str, object]:
    import ray

    ray.init(address=address, namespace="forge-mcp", log_to_driver=False, logging_level="ERROR")
    try:
        nodes = []
        for node in ray.nodes():
            resources = node.get("Resources") or {}
            nodes.append({
                "node_id": node["NodeID"],
                "address": node.get("NodeManagerAddress"),
                "alive": bool(node.get("Alive")),
                "cpus": resources.get("CPU", 0.0),
                "gpus": resources.get("GPU", 0.0),
                "memory_gb": round(resources.get("memory", 0.0) / GIB, 2),
            })  # fmt: skip
        alive = [n for n in nodes if n["alive"]]
        worker = ray.get(ray.remote(num_cpus=0)(_facts).remote(), timeout=TASK_TIMEOUT_S)
        return {
            "os": worker["os"],
            "hostname": worker["hostname"],
            "cpus": int(sum(n["cpus"] for n in alive)),
            "ram_gb": round(sum(n["memory_gb"] for n in alive), 1),
            "python": worker["python"],
            "forge_mcp": worker["forge_mcp"],
            "ray": ray.__version__,
            "nodes": nodes,
            "gpu_count": int(sum(n["gpus"] for n in alive)),
        }
    finally:
        ray.shutdown()


def sample(address: str, folder: str) -> dict[str, object]:
    """Every alive node's sampling-program output, by node address."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from forge_mcp.monitoring.sampling import SAMPLE_PROGRAM

    ray.init(address=address, namespace="forge-mcp", log_to_driver=False, logging_level="ERROR")
    try:
        alive = [node for node in ray.nodes() if node.get("Alive")]
        task = ray.remote(num_cpus=0, max_retries=0)(_run_sampling_program)
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(SAMPLE_PROGRAM, folder) for node in alive]  # fmt: skip
        outputs = ray.get(refs, timeout=TASK_TIMEOUT_S)
        return {"nodes": [{"address": node.get("NodeManagerAddress"), "stdout": out} for node, out in zip(alive, outputs, strict=True)]}
    finally:
        ray.shutdown()


def _run_sampling_program(program: str, folder: str) -> str:
    """On one node: the same standard-library program an SSH target runs, in its own process."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-", folder], input=program, capture_output=True, text=True,
                          timeout=TASK_TIMEOUT_S, check=True).stdout  # fmt: skip


def _facts() -> dict[str, object]:
    """Run on a worker of the cluster: what it runs jobs with."""
    import platform

    try:
        import forge_mcp

        version: str | None = forge_mcp.__version__
    except ImportError:
        version = None
    return {"os": platform.platform(), "hostname": platform.node(), "python": platform.python_version(),
            "forge_mcp": version}  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sample":
        print(json.dumps(sample(sys.argv[2], sys.argv[3])), flush=True)
    elif len(sys.argv) == 2:
        print(json.dumps(probe(sys.argv[1])), flush=True)
    else:
        print("usage: python -m forge_mcp.compute.ray_probe <address> | --sample <address> <folder>", file=sys.stderr)
        raise SystemExit(2)
