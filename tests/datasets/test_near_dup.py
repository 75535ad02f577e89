"""Near duplicates: planted pairs are found, distinct rows are not grouped."""

from __future__ import annotations

import random

from forge_mcp.datasets.near_dup import MinHasher, jaccard, lsh_shape, near_duplicate_groups, shingle

VOCAB = ("order ship refund account password reset help thanks delivery late parcel invoice address change "
         "cancel upgrade plan billing card charge twice support agent reply soon today tomorrow week").split()  # fmt: skip


def corpus(seed: int, base_rows: int, planted: int) -> tuple[list[str], list[tuple[int, int]]]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(VOCAB) for _ in range(60)) for _ in range(base_rows)]
    pairs = []
    for i in range(planted):
        words = texts[i].split()
        for _ in range(2):  # two edits in sixty words: still a near duplicate
            words[rng.randrange(len(words))] = rng.choice(["edited", "changed", "typo"])
        texts.append(" ".join(words))
        pairs.append((i, len(texts) - 1))
    return texts, pairs


def test_planted_near_duplicates_are_recalled_without_false_groups() -> None:
    texts, pairs = corpus(seed=7, base_rows=3000, planted=300)
    groups = near_duplicate_groups(texts, threshold=0.8)
    member = {i: n for n, g in enumerate(groups) for i in g}
    found = sum(1 for a, b in pairs if a in member and member.get(a) == member.get(b))
    recall = found / len(pairs)
    planted_members = {i for pair in pairs for i in pair}
    false_members = [i for g in groups for i in g if i not in planted_members]
    assert recall >= 0.95, recall
    assert false_members == []
    for group in groups:  # every grouped pair really is similar
        assert jaccard(shingle(texts[group[0]]), shingle(texts[group[1]])) >= 0.8


def test_lsh_shape_centres_on_the_threshold() -> None:
    bands, rows = lsh_shape(128, 0.8)
    assert bands * rows == 128 and abs((1 / bands) ** (1 / rows) - 0.8) < 0.1


def test_short_and_empty_texts() -> None:
    assert near_duplicate_groups(["hi", "hi", "bye"], threshold=0.9) == [[0, 1]]
    assert near_duplicate_groups([], threshold=0.9) == []


def test_signatures_are_the_same_in_every_process() -> None:
    """The first pass hashes in pool processes: a signature must not depend on which one."""
    import subprocess
    import sys

    import numpy as np

    texts = ["Where is my parcel? It is late.", "Ünïcode wörds — and “quotes”", "", "a b"]
    here = MinHasher().signatures(texts)
    script = f"import sys; from forge_mcp.datasets.near_dup import MinHasher; sys.stdout.buffer.write(MinHasher().signatures({texts!r}).tobytes())"
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    assert np.array_equal(here, np.frombuffer(there, dtype=np.uint32).reshape(here.shape))


def test_signature_agreement_estimates_jaccard() -> None:
    rng = random.Random(3)
    errors = []
    for _ in range(200):
        words = [rng.choice(VOCAB) + str(rng.randrange(50)) for _ in range(rng.randrange(20, 120))]
        edited = list(words)
        for _ in range(rng.randrange(0, 12)):
            edited[rng.randrange(len(edited))] = "edit" + str(rng.randrange(1000))
        a, b = " ".join(words), " ".join(edited)
        signatures = MinHasher().signatures([a, b])
        estimate = float((signatures[0] == signatures[1]).mean())
        errors.append(abs(estimate - jaccard(shingle(a), shingle(b))))
    assert sum(errors) / len(errors) < 0.05 and max(errors) < 0.3


def test_signature_words_are_the_words_confirmation_uses() -> None:
    """Signatures tokenise bytes and confirmation tokenises with a regex: same words."""
    pairs = [("Hello, World! it's fine", "hello world it s fine"), ("café—au lait…", "CAFÉ—AU LAIT…"),
             ("snake_case and 3.14", "snake_case and 3 14")]  # fmt: skip
    for a, b in pairs:
        assert shingle(a) == shingle(b)
        signatures = MinHasher().signatures([a, b])
        assert (signatures[0] == signatures[1]).all()
    assert shingle("one two") == {"one two"} and shingle("") == {""}
