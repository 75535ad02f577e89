"""What a sweep searches: a range or a list of choices for each training-spec field, and what
it optimises. Checked without optuna: every field must be a TrainSpec field a search can
vary, every range well formed, and every value at the edges of the space a spec TrainSpec
accepts (the service then has train_plan check those edges against the model and data)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.spec import TrainSpec

# Fields a sweep never varies: what is trained and on what, and where it runs. A search over
# them is a different experiment, not a hyperparameter.
FIXED_FIELDS = frozenset({"method", "adapter", "base_model", "dataset", "split", "eval_split", "general_dataset",
                          "backend", "devices", "report_to", "dtype"})  # fmt: skip
EVAL_METRICS = ("exact_match", "contains", "rouge_l", "json_valid", "judge_score", "perplexity")
OBJECTIVES = ("eval_loss", *EVAL_METRICS)
LOWER_IS_BETTER = frozenset({"eval_loss", "perplexity"})
MAX_GRID = 10_000  # combinations a grid may have


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["float"]
    low: float
    high: float
    log: bool = Field(False, description="Sample on a log scale (learning rates); needs low > 0")

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError("low must be below high (both finite)")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def edges(self) -> list[Any]:
        return [self.low, self.high]


class IntRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1, description="Only low, low+step, … up to high")
    log: bool = Field(False, description="Sample on a log scale; needs low >= 1 and step 1")

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log range needs low >= 1 and step 1")
        return self

    def edges(self) -> list[Any]:
        return [self.low, self.values()[-1]]

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


class Choices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _distinct(self) -> Choices:
        seen = [repr(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError("choices must be distinct")
        for choice in self.choices:
            if not isinstance(choice, str | int | float | bool | list | type(None)):
                raise ValueError("each choice is a string, number, boolean, null or list of strings")
        return self

    def edges(self) -> list[Any]:
        return list(self.choices)


Parameter = Annotated[FloatRange | IntRange | Choices, Field(discriminator="type")]


class SearchSpace(BaseModel):
    """`{field: {type, …}}` over TrainSpec fields."""

    parameters: dict[str, Parameter]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SearchSpace:
        from pydantic import ValidationError

        from forge_mcp.errors import describe_validation_error

        if not raw:
            raise InvalidArguments("space: give at least one field to search, e.g. "
                                   '{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": true}}')  # fmt: skip
        unknown = [name for name in raw if name not in TrainSpec.model_fields]
        if unknown:
            raise InvalidArguments(f"space.{unknown[0]}: not a training spec field; searchable fields are "
                                   + ", ".join(searchable_fields()))  # fmt: skip
        fixed = [name for name in raw if name in FIXED_FIELDS]
        if fixed:
            raise InvalidArguments(f"space.{fixed[0]}: fixed for a whole sweep (set it in spec); searchable fields are "
                                   + ", ".join(searchable_fields()))  # fmt: skip
        try:
            return cls.model_validate({"parameters": raw})
        except ValidationError as exc:
            message = describe_validation_error(exc, "a search-space parameter", "a key").replace("parameters.", "space.")
            raise InvalidArguments(f"{message} (a parameter is {{type: float, low, high, log}}, "
                                   "{type: int, low, high, step} or {type: categorical, choices: [...]})") from None  # fmt: skip

    def edge_specs(self, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The base spec with every parameter at its low edge, at its high edge, and each one at
        each of its edges (the others low): what must all be valid for every trial to be.
        Labelled 'field=value'."""
        low = {name: param.edges()[0] for name, param in self.parameters.items()}
        high = {name: param.edges()[-1] for name, param in self.parameters.items()}
        out = [(", ".join(f"{k}={v!r}" for k, v in low.items()), {**base, **low}),
               (", ".join(f"{k}={v!r}" for k, v in high.items()), {**base, **high})]  # the most memory, usually
        for name, param in self.parameters.items():
            for value in param.edges()[1:]:
                out.append((f"{name}={value!r}", {**base, **low, name: value}))
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every parameter, for the grid sampler; a float range has none."""
        grid: dict[str, list[Any]] = {}
        for name, param in self.parameters.items():
            if isinstance(param, FloatRange):
                raise InvalidArguments(f"space.{name}: the grid sampler needs choices or an int range; "
                                       "give {type: categorical, choices: [...]} or use sampler tpe or random")  # fmt: skip
            grid[name] = param.values() if isinstance(param, IntRange) else list(param.choices)
        size = math.prod(len(v) for v in grid.values())
        if size > MAX_GRID:
            raise InvalidArguments(f"space: the grid has {size} combinations (at most {MAX_GRID}); narrow it or use tpe")
        return grid

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())


def searchable_fields() -> list[str]:
    return [name for name in TrainSpec.model_fields if name not in FIXED_FIELDS]
