"""Generation metrics, pure Python: exact match, contains, ROUGE-L (F1 over the longest
common subsequence of words) and JSON validity. Text is compared after trimming and
collapsing whitespace; exact match and contains ignore case."""

from __future__ import annotations

import json
from collections.abc import Sequence


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def contains(prediction: str, reference: str) -> float:
    return float(normalise(reference) in normalise(prediction))


def rouge_l(prediction: str, reference: str) -> float:
    candidate, target = prediction.lower().split(), reference.lower().split()
    if not candidate or not target:
        return float(candidate == target)
    previous = [0] * (len(target) + 1)
    for word in candidate:
        current = [0]
        for j, other in enumerate(target):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(candidate), common / len(target)
    return 2 * precision * recall / (precision + recall)


def json_valid(prediction: str) -> float:
    try:
        json.loads(prediction)
    except ValueError:
        return 0.0
    return 1.0


def score(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Means over rows; json_valid only when the references themselves are JSON."""
    n = len(predictions)
    if n == 0:
        return {}
    scores = {
        "exact_match": sum(map(exact_match, predictions, references)) / n,
        "contains": sum(map(contains, predictions, references)) / n,
        "rouge_l": sum(map(rouge_l, predictions, references)) / n,
    }
    if all(json_valid(r) for r in references):
        scores["json_valid"] = sum(map(json_valid, predictions)) / n
    return {k: round(v, 4) for k, v in scores.items()}
