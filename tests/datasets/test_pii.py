"""PII detection measured on a labelled fixture: precision matters as much as recall
(version strings, dates, ISBNs and counts are not phone numbers or addresses)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from forge_mcp.datasets.pii import PII_TYPES, find, redact

FIXTURE = Path(__file__).parent / "fixtures" / "pii_labelled.jsonl"


def labelled() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_precision_and_recall_on_the_labelled_fixture() -> None:
    true_positive, false_positive, false_negative = Counter(), Counter(), Counter()
    for case in labelled():
        expected = {(p["type"], p["value"]) for p in case["pii"]}
        found = {(f.kind, case["text"][f.start : f.end]) for f in find(case["text"])}
        for kind, _ in found & expected:
            true_positive[kind] += 1
        for kind, _ in found - expected:
            false_positive[kind] += 1
        for kind, _ in expected - found:
            false_negative[kind] += 1
    tp, fp, fn = sum(true_positive.values()), sum(false_positive.values()), sum(false_negative.values())
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision == 1.0, dict(false_positive)
    assert recall >= 0.95, dict(false_negative)
    assert set(true_positive) == set(PII_TYPES)  # every type is exercised


def test_negatives_produce_no_findings() -> None:
    for case in labelled():
        if not case["pii"]:
            assert find(case["text"]) == [], case["text"]


def test_redaction_replaces_each_finding_with_its_type() -> None:
    text, counts = redact("Mail jane@example.com or call +1 (415) 555-2671; card 4111 1111 1111 1111.")
    assert text == "Mail [EMAIL] or call [PHONE]; card [CREDIT_CARD]."
    assert counts == Counter({"email": 1, "phone": 1, "credit_card": 1})
    assert redact("nothing here") == ("nothing here", Counter())
