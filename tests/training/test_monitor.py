"""The training monitor's judgements: a NaN or exploding loss stops the run and says so;
eval loss rising while train loss falls is flagged as overfitting, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import TrainerControl, TrainerState  # noqa: E402

from forge_mcp.backends.hf_train import TrainingMonitor  # noqa: E402
from forge_mcp.training.plan import TrainPlan  # noqa: E402
from forge_mcp.training.spec import resolve_spec  # noqa: E402
from tests.job_context import job_context  # noqa: E402


def monitor(tmp_path: Path) -> TrainingMonitor:
    plan = TrainPlan.model_construct(steps=100, spec=resolve_spec({"base_model": "m", "dataset": "d"}))
    return TrainingMonitor(job_context(tmp_path / "runs" / "job_x", workspace=tmp_path), plan)


def log(watch: TrainingMonitor, step: int, control: TrainerControl, **values: float) -> None:
    state = TrainerState()
    state.global_step, state.max_steps = step, 100
    watch.on_log(state, control, values)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 50.0])
def test_a_diverging_loss_stops_training_with_a_reason(tmp_path: Path, bad: float) -> None:
    watch, control = monitor(tmp_path), TrainerControl()
    log(watch, 1, control, loss=2.0)
    assert not control.should_training_stop
    log(watch, 2, control, loss=bad)
    assert control.should_training_stop and watch.diverged and watch.warnings[0].startswith("divergence:")


def test_eval_loss_rising_while_train_loss_falls_is_flagged_once(tmp_path: Path) -> None:
    watch, control = monitor(tmp_path), TrainerControl()
    for step, (train, evaluation) in enumerate([(3.0, 2.0), (2.5, 2.1), (2.0, 2.2), (1.5, 2.3)], start=1):
        log(watch, step, control, loss=train)
        log(watch, step, control, eval_loss=evaluation)
    assert [w for w in watch.warnings if w.startswith("overfitting")] == [
        "overfitting: eval loss rose to 2.2000 while train loss fell to 2.0000"
    ]
    assert not control.should_training_stop  # a warning; early_stopping_patience is what stops
    events = [json.loads(line) for line in watch.job.run.events.read_text().splitlines()]
    assert {e["name"] for e in events if e["type"] == "metric"} >= {"loss", "eval_loss"}
