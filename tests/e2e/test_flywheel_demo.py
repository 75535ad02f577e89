"""`make flywheel` is the second demo: the student model answers through the operator, the
teacher grades and corrects its traces, one flywheel_run cycle trains on them, and the new
version is promoted and served. This runs the real thing — `python examples/flywheel.py`, a
live server, the official clients, the scripted teacher on loopback — in a fresh workspace,
and holds it to its promise: a large gain on held-out questions, on any machine of CI's kind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import suite_threads

pytestmark = pytest.mark.e2e
FLYWHEEL = Path(__file__).resolve().parents[2] / "examples" / "flywheel.py"
TIMEOUT_S = 900


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_make_flywheel_improves_the_student_on_held_out_questions_and_serves_it(tmp_path: Path, tiny_model: Path) -> None:
    results = tmp_path / "flywheel.json"
    # The session's tiny model is what `forge-mcp dev tiny-model` builds (same function, seed and
    # steps); tests/test_cli.py holds that command to its word.
    shutil.copytree(tiny_model, tmp_path / "ws" / "models" / "tiny")
    done = subprocess.run([sys.executable, str(FLYWHEEL), "--home", str(tmp_path / "ws"), "--results", str(results),
                           "--threads", suite_threads()],
                          capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, f"flywheel failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "forge-mcp flywheel" in done.stdout and "server stopped (exit code 0)" in done.stdout
    run = json.loads(results.read_text())

    # The student got some right and most wrong; the teacher graded them all and corrected the rest.
    asked = run["asked"]
    right = sum(1 for a in asked if a["answer"].strip() == a["expected"])
    assert 0 < right < len(asked) // 2
    taught = run["taught"]
    assert taught["judged"]["graded"] == len(asked) == taught["traces"]
    assert taught["corrected"] == len(asked) - right
    # One cycle: SFT rows from corrections and good grades, DPO pairs from the corrections.
    outputs = run["cycle"]["outputs"]
    assert run["cycle"]["job"]["arguments"]["document"]["name"] == "flywheel-dpo"
    assert outputs["traces_selected"] == len(asked) and outputs["rows"] >= len(asked) - 2
    assert outputs["pairs"] == taught["corrected"]
    # The gain: the base answers a few held-out questions in the house format, the candidate
    # nearly all (0.087 -> 0.913 on the runs measured); the bar stands far from both.
    before, after = outputs["production_metrics"]["exact_match"], outputs["candidate_metrics"]["exact_match"]
    assert before <= 0.2 and after >= 0.7 and after - before >= 0.5, (before, after)
    # Promoted through beats_production, served, and the operator answers with it.
    assert outputs["promoted"] == outputs["candidate"] != outputs["production_before"]
    assert outputs["candidate"] in run["served"]
    assert run["probe"]["model"] == f"openai/{outputs['candidate']}" and run["probe"]["answer"].strip()
    assert run["cycle"]["sft_alone"] is not None  # the SFT version scored too, to show what DPO added
