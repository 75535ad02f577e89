"""GRPO's reward functions: an allowlist chosen by name, with data for parameters (a regular
expression, a length, a judge's endpoint), never code a caller sends. Each scores a sampled
answer against the row's reference, the last assistant answer of its chat. Plain Python, no
torch: the spec checks them at submission, the worker builds them.

    exact_match     1 when the answer equals the reference (whitespace and case aside; the
                    same check as model_evaluate's, models/scoring.py)
    contains        1 when the answer contains the reference
    regex           with a capture group: 1 when the group found in the answer equals the one
                    in the reference (an answer extractor); without: 1 when the pattern is found
                    (a format check)
    json_valid      1 when the answer parses as JSON
    length_penalty  0 up to max_chars, then down to -1 at twice that
    llm_judge       the evaluation judge's 1-5 grade against the reference, scaled to 0..1
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REWARDS = ("exact_match", "contains", "regex", "json_valid", "length_penalty", "llm_judge")
PATTERN_CHARS = 200  # a caller's regular expression runs on every sampled answer: kept short
RewardFunction = Callable[..., list[float | None]]


class RewardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"One of {', '.join(REWARDS)}")
    weight: float = Field(1.0, ge=-10.0, le=10.0, description="Its share of the summed reward")
    pattern: str | None = Field(None, max_length=PATTERN_CHARS, description="regex: the pattern (a group extracts the answer)")
    max_chars: int | None = Field(None, ge=1, le=1_000_000, description="length_penalty: answers longer than this lose reward")
    judge_url: str | None = Field(None, max_length=512, description="llm_judge: the judge's OpenAI-compatible endpoint")
    judge_model: str | None = Field(None, max_length=256, description="llm_judge: the model it serves")
    judge_api_key_env: str | None = Field(None, max_length=128, description="llm_judge: the variable holding its key")

    @field_validator("name")
    @classmethod
    def _allowed(cls, name: str) -> str:
        if name not in REWARDS:
            raise ValueError(f"{name!r} is not a reward; choose from {', '.join(REWARDS)} (rewards are named, never code)")
        return name

    @model_validator(mode="after")
    def _parameters(self) -> RewardSpec:
        needs = {"regex": ("pattern",), "length_penalty": ("max_chars",), "llm_judge": ("judge_url", "judge_model")}
        wanted = needs.get(self.name, ())
        missing = [f for f in wanted if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.name} needs {' and '.join(missing)}")
        extra = [f for f in ("pattern", "max_chars", "judge_url", "judge_model", "judge_api_key_env")
                 if getattr(self, f) is not None and f not in wanted and not (f == "judge_api_key_env" and self.name == "llm_judge")]  # fmt: skip
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used by {self.name}")
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a regular expression ({exc})") from None
            if compiled.groups > 1:
                raise ValueError("pattern: use at most one capture group (the answer to compare)")
        if self.weight == 0:
            raise ValueError("weight: 0 turns the reward off; leave it out instead")
        return self


def answer_text(completion: Any) -> str:
    """A sampled answer as text: TRL passes a string, or a list of messages for chat prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))


def regex_reward(pattern: re.Pattern[str], answer: str, reference: str) -> float:
    # Imported here, as below: the training spec imports this module, and a training worker
    # imports only its own domain (tests/jobs/test_worker_imports.py).
    from forge_mcp.models.scoring import exact_match

    found = pattern.search(answer)
    if found is None:
        return 0.0
    if pattern.groups == 0:
        return 1.0
    expected = pattern.search(reference)
    wanted = expected.group(1) if expected is not None else reference
    return exact_match(found.group(1) or "", wanted)


def fenced_json_valid(answer: str) -> float:
    """Evaluation's JSON check, on the answer or the fenced block chat models put JSON in."""
    from forge_mcp.models.scoring import json_valid

    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    return json_valid(text)


def length_penalty(answer: str, max_chars: int) -> float:
    over = len(answer) - max_chars
    return 0.0 if over <= 0 else -min(1.0, over / max_chars)


def reward_functions(specs: list[RewardSpec], judge_for: Callable[[RewardSpec], Any] | None = None) -> list[RewardFunction]:
    """TRL reward functions, one per spec, named as the spec (numbered when a name repeats) so
    that each one's mean is logged as rewards/<name>/mean. `judge_for` opens a judge
    (models/judge.py) for an llm_judge spec; it is closed with the process."""
    functions = []
    seen: dict[str, int] = {}
    for spec in specs:
        seen[spec.name] = seen.get(spec.name, 0) + 1
        function = _function(spec, judge_for)
        function.__name__ = spec.name if seen[spec.name] == 1 else f"{spec.name}_{seen[spec.name]}"
        functions.append(function)
    return functions


def _function(spec: RewardSpec, judge_for: Callable[[RewardSpec], Any] | None) -> RewardFunction:
    if spec.name == "llm_judge":
        if judge_for is None:
            raise ValueError("llm_judge: no judge to ask")
        judge = judge_for(spec)

        def judged(prompts: list[Any], completions: list[Any], reference: list[str], **_: Any) -> list[float | None]:
            return [judge.grade(_conversation(p), r, answer_text(c)).normalised for p, c, r in zip(prompts, completions, reference, strict=True)]  # fmt: skip

        return judged
    score = _scorer(spec)

    def scored(completions: list[Any], reference: list[str], **_: Any) -> list[float | None]:
        return [score(answer_text(c), r) for c, r in zip(completions, reference, strict=True)]

    return scored


def _scorer(spec: RewardSpec) -> Callable[[str, str], float]:
    from forge_mcp.models.scoring import contains, exact_match  # model_evaluate's own checks

    if spec.name == "exact_match":
        return exact_match
    if spec.name == "contains":
        return contains
    if spec.name == "regex":
        pattern = re.compile(spec.pattern or "")
        return lambda answer, reference: regex_reward(pattern, answer, reference)
    if spec.name == "json_valid":
        return lambda answer, reference: fenced_json_valid(answer)
    limit = spec.max_chars or 1
    return lambda answer, reference: length_penalty(answer, limit)


def _conversation(prompt: Any) -> list[dict[str, Any]]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
