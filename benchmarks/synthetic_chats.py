"""A synthetic chat JSONL for the data benchmark, with planted exact duplicates, near
duplicates (a few words changed) and PII, and a sidecar file that says where they are."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = ("order parcel refund invoice account password billing card charge delivery courier address warehouse "
         "ticket agent reply update status shipping return exchange voucher discount subscription renewal plan "
         "upgrade downgrade cancel confirm email phone support weekend monday today tomorrow week month late "
         "early damaged missing wrong size colour label tracking number store online app login reset").split()  # fmt: skip
PII = (
    ("email", lambda r: f"{r.choice(['ann', 'bo', 'cy', 'di'])}.{r.randrange(10**4)}@example.com"),
    ("phone", lambda r: f"+1 ({r.randrange(200, 999)}) {r.randrange(200, 999)}-{r.randrange(1000, 9999)}"),
    ("credit_card", lambda r: "4111 1111 1111 1111"),
)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    planted = {"exact": [], "near": [], "pii": []}
    originals: list[dict] = []
    with path.open("w") as f:
        for line in range(1, rows + 1):
            roll = rng.random()
            if roll < 0.01 and originals:
                source = rng.choice(originals)
                row = source["row"]
                planted["exact"].append([source["line"], line])
            elif roll < 0.02 and originals:
                source = rng.choice(originals)
                row = json.loads(json.dumps(source["row"]))
                words = row["messages"][1]["content"].split()
                for _ in range(2):
                    words[rng.randrange(len(words))] = rng.choice(WORDS)
                row["messages"][1]["content"] = " ".join(words)
                planted["near"].append([source["line"], line])
            else:
                user = sentence(rng, rng.randrange(12, 30))
                if roll < 0.03:
                    kind, make = rng.choice(PII)
                    user += f" My details: {make(rng)}."
                    planted["pii"].append([line, kind])
                row = {"messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": sentence(rng, rng.randrange(40, 70))}]}  # fmt: skip
                if len(originals) < 5000 and rng.random() < 0.05:
                    originals.append({"line": line, "row": row})
            f.write(json.dumps(row) + "\n")
    return planted


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    labels = generate(args.path, args.rows)
    args.path.with_suffix(".labels.json").write_text(json.dumps(labels))
    print({k: len(v) for k, v in labels.items()})
