"""The data benchmark, side by side in one run: dataset_prepare (exact + near dedup, PII
redaction, a random split) against a straightforward pandas script doing the same steps,
on the same synthetic chats. Each side runs in its own process tree, sampled for peak
memory (all its processes together); both outputs are scored against the planted labels.

    make bench-data                      # 1,000,000 rows
    python -m benchmarks.data_prepare --rows 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.synthetic_chats import generate

THRESHOLD = 0.85
MARKERS = {kind: f"[{kind.upper()}]" for kind in ("email", "phone", "credit_card", "ssn", "ip_address", "iban", "secret")}


def measured(command: list[str]) -> tuple[dict[str, Any], float, float]:
    """(the JSON the command printed, wall seconds, peak MB of its whole process tree)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.wait(0.05):
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return json.loads(out), time.perf_counter() - started, peak / 2**20


def score(output: Path, labels: dict[str, Any], rows: int) -> dict[str, Any]:
    """Duplicate removal and PII redaction in `output`, against what was planted."""
    import pyarrow.parquet as pq

    table = pq.read_table(output, columns=["line", "row"])
    kept = dict(zip(table.column("line").to_pylist(), table.column("row").to_pylist(), strict=True))
    dropped = {str(n) for n in range(1, rows + 1)} - kept.keys()
    exact = {str(copy) for _, copy in labels["exact"]}
    near = {str(copy) for _, copy, similarity in labels["near"] if similarity >= THRESHOLD}
    near_below = {str(copy) for _, copy, similarity in labels["near"] if similarity < THRESHOLD}
    found_near = dropped - exact
    pii = {str(line): kind for line, kind in labels["pii"]}
    true_positive = false_positive = false_negative = 0
    for line, row in kept.items():
        shown = {kind for kind, marker in MARKERS.items() if marker in row}
        expected = {pii[line]} if line in pii else set()
        true_positive += len(shown & expected)
        false_positive += len(shown - expected)
        false_negative += len(expected - shown)
    decoys_flagged = sum(1 for line in map(str, labels["decoys"]) if line in kept and any(m in kept[line] for m in MARKERS.values()))
    return {
        "rows_out": len(kept),
        "exact_recall": _ratio(len(exact & dropped), len(exact)),
        "near_recall": _ratio(len(near & found_near), len(near)),
        "near_precision": _ratio(len(found_near & near), len(found_near)),
        "near_planted_below_threshold_dropped": f"{len(near_below & dropped)} of {len(near_below)}",
        "pii_recall": _ratio(true_positive, true_positive + false_negative),
        "pii_precision": _ratio(true_positive, true_positive + false_positive),
        "decoys_redacted": f"{decoys_flagged} of {len(labels['decoys'])}",
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def main(rows: int, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"chats-{rows}.jsonl"
    labels_file = source.with_suffix(".labels.json")
    if not labels_file.exists():
        labels_file.write_text(json.dumps(generate(source, rows)))
    labels = json.loads(labels_file.read_text())
    home = Path(tempfile.mkdtemp(prefix="forge-bench-", dir=folder))
    forge, forge_wall, forge_peak = measured([sys.executable, "-m", "benchmarks.prepare_forge", str(source), "--home", str(home)])
    pandas_out = folder / f"pandas-{rows}.parquet"
    pandas, pandas_wall, pandas_peak = measured([sys.executable, "-m", "benchmarks.prepare_pandas", str(source), str(pandas_out)])
    report = {
        "rows": rows,
        "cpus": psutil.cpu_count(),
        "forge": {"import_s": forge["import_s"], "prepare_s": forge["prepare_s"], "process_wall_s": round(forge_wall, 2),
                  "peak_mb": round(forge_peak), **score(Path(forge["output"]), labels, rows)},  # fmt: skip
        "pandas": {"prepare_s": pandas["prepare_s"], "process_wall_s": round(pandas_wall, 2), "peak_mb": round(pandas_peak),
                   **score(pandas_out, labels, rows)},  # fmt: skip
    }
    report["speedup_prepare"] = round(pandas["prepare_s"] / forge["prepare_s"], 2)
    report["speedup_import_and_prepare"] = round(pandas["prepare_s"] / (forge["import_s"] + forge["prepare_s"]), 2)
    report["speedup_process_wall"] = round(pandas_wall / forge_wall, 2)
    (folder / f"report-{rows}.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    print(json.dumps(main(args.rows, args.folder), indent=2))
