"""nvidia-smi's CSV, as `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` prints it on a
two-GPU machine (one board that does not report its power), becomes per-GPU readings in base
units; what a board does not support is None, and lines that are not readings are skipped."""

from __future__ import annotations

from forge_mcp.monitoring.nvidia_smi import MIB, QUERY_ARGS, QUERY_FIELDS, parse_gpus
from forge_mcp.monitoring.samples import GpuSample

RECORDED = """\
0, NVIDIA H100 80GB HBM3, 87, 61234, 81559, 64, 512.34
1, NVIDIA GeForce RTX 3060, 0, 5, 12288, 35, [N/A]
"""


def test_each_line_is_one_gpu_in_base_units() -> None:
    assert parse_gpus(RECORDED) == [
        GpuSample(index=0, name="NVIDIA H100 80GB HBM3", utilization_percent=87.0, memory_used_bytes=61234 * MIB,
                  memory_total_bytes=81559 * MIB, temperature_celsius=64.0, power_watts=512.34),
        GpuSample(index=1, name="NVIDIA GeForce RTX 3060", utilization_percent=0.0, memory_used_bytes=5 * MIB,
                  memory_total_bytes=12288 * MIB, temperature_celsius=35.0, power_watts=None),
    ]  # fmt: skip


def test_unsupported_fields_are_none_and_other_lines_are_skipped() -> None:
    text = (
        "WARNING: infoROM is corrupted at gpu 0000:01:00.0\n"
        "0, Tesla T4, [Not Supported], 300, 15360, [N/A], 27.5\n"
        "\n"
        "No devices were found\n"
    )
    [gpu] = parse_gpus(text)
    assert gpu.index == 0 and gpu.name == "Tesla T4" and gpu.memory_used_bytes == 300 * MIB
    assert gpu.utilization_percent is None and gpu.temperature_celsius is None and gpu.power_watts == 27.5


def test_nothing_to_parse_is_no_gpu() -> None:
    assert parse_gpus("") == []
    assert parse_gpus("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n") == []


def test_the_query_asks_for_the_fields_the_parser_reads_without_units() -> None:
    assert QUERY_ARGS == (f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits")
    assert len(QUERY_FIELDS) == 7 and QUERY_FIELDS[:2] == ("index", "name")
