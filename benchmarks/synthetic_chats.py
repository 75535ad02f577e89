"""A synthetic chat JSONL for the data benchmark, with planted exact duplicates, near
duplicates (one or two words changed, each pair labelled with its true word 3-gram
Jaccard similarity), personal data of every type we detect, and decoys that must not be
taken for personal data (versions, dates, order numbers). A sidecar `.labels.json` says
where each planted item is.

    python -m benchmarks.synthetic_chats .bench/chats.jsonl --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

from forge_mcp.datasets.near_dup import jaccard, shingle

WORDS = ("order parcel refund invoice account password billing card charge delivery courier address warehouse "
         "ticket agent reply update status shipping return exchange voucher discount subscription renewal plan "
         "upgrade downgrade cancel confirm email phone support weekend monday today tomorrow week month late "
         "early damaged missing wrong size colour label tracking number store online app login reset").split()  # fmt: skip


def _card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = sum(d if i % 2 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(reversed(digits)))
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    return " ".join(text[i : i + 4] for i in range(0, 16, 4))


PII = {
    "email": lambda r: f"{r.choice(['ann', 'bo', 'cy', 'di'])}.{r.randrange(10**4)}@example.com",
    "phone": lambda r: f"+1 ({r.randrange(200, 999)}) {r.randrange(200, 999)}-{r.randrange(1000, 9999)}",
    "credit_card": _card,
    "ssn": lambda r: f"{r.randrange(1, 666):03d}-{r.randrange(1, 100):02d}-{r.randrange(1, 10000):04d}",
    "ip_address": lambda r: f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
    "iban": lambda r: "GB82 WEST 1234 5698 7654 32",
    "secret": lambda r: "sk-" + "".join(r.choice(string.ascii_letters + string.digits) for _ in range(32)),
}
DECOYS = (
    lambda r: f"I am on version {r.randrange(1, 9)}.{r.randrange(20)}.{r.randrange(50)}",
    lambda r: f"it shipped on 2025-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
    lambda r: f"order #{r.randrange(100, 999)}-{r.randrange(100, 999)}-{r.randrange(1000, 9999)}",
    lambda r: f"the app build is 10.0.{r.randrange(19000, 19999)}.{r.randrange(1000, 9999)}",
    lambda r: f"it cost {r.randrange(10, 999)}.{r.randrange(10, 99)} for {r.randrange(2, 40)} items",
)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def text_of(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"])


def generate(path: Path, rows: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    planted: dict[str, list] = {"exact": [], "near": [], "pii": [], "decoys": []}
    originals: list[dict] = []
    with path.open("w") as f:
        for line in range(1, rows + 1):
            roll = rng.random()
            if roll < 0.02 and originals:
                source = rng.choice(originals)
                row = json.loads(json.dumps(source["row"]))
                if roll < 0.01:
                    planted["exact"].append([source["line"], line])
                else:
                    words = row["messages"][1]["content"].split()
                    for position in rng.sample(range(len(words)), rng.choice((1, 2))):
                        words[position] = rng.choice([w for w in WORDS if w != words[position].lower().strip(".")])
                    row["messages"][1]["content"] = " ".join(words)
                    similarity = jaccard(shingle(text_of(source["row"])), shingle(text_of(row)))
                    planted["near"].append([source["line"], line, round(similarity, 4)])
                if source["pii"]:
                    planted["pii"].append([line, source["pii"]])
            else:
                user = sentence(rng, rng.randrange(12, 30))
                kind = None
                if roll < 0.03:
                    kind = rng.choice(sorted(PII))
                    user += f" My details: {PII[kind](rng)}."
                    planted["pii"].append([line, kind])
                elif roll < 0.04:
                    user += f" By the way, {rng.choice(DECOYS)(rng)}."
                    planted["decoys"].append(line)
                row = {"messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": sentence(rng, rng.randrange(40, 70))}]}  # fmt: skip
                if len(originals) < 5000 and rng.random() < 0.05:
                    originals.append({"line": line, "row": row, "pii": kind})
            f.write(json.dumps(row) + "\n")
    return planted


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    labels = generate(args.path, args.rows, args.seed)
    args.path.with_suffix(".labels.json").write_text(json.dumps(labels))
    print(json.dumps({k: len(v) for k, v in labels.items()}))
