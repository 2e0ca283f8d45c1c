"""How often the judge reads the answer a person reads: precision and recall on labelled replies.

tests/data/judge_labels.jsonl holds 470 real SmolLM2-135M replies from `agora simulate` runs on the
bundled general-knowledge questions and the arithmetic generator, each labelled by reading it:
the answer it gives, or none (tests/data/README.md says how). The judge reads each one as a run
does, with the answer-format instructions of conf/prompts/default.yaml as echoes and the reply's
finish reason. A false positive is a reply read as an answer it does not give (a wrong answer,
or any answer where it gives none); a false negative is a real answer missed.

    python benchmarks/judge_accuracy.py [--min-precision 0.98]

Exits 1 if the precision is below --min-precision.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

from dialogue.core.judge import Judge
from dialogue.core.questions import Question

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "data" / "judge_labels.jsonl"


def judged(rows: list[dict]) -> list[tuple[dict, str | None]]:
    """Each labelled row with what the judge reads from it."""
    formats = OmegaConf.load(ROOT / "conf" / "prompts" / "default.yaml").answer_format
    judges = {kind: Judge(kind, echoes=list(formats.values())) for kind in ("choice", "number")}
    found = []
    for row in rows:
        question = Question(
            question_id=row["source"], question=row["question"], choices=row["choices"], gold=row["gold"]
        )
        reading = judges[row["kind"]].read(row["reply"], question, row["finish_reason"] == "length")
        found.append((row, reading.answer))
    return found


def scores(found: list[tuple[dict, str | None]]) -> dict[str, float | int]:
    tp = sum(1 for row, got in found if got is not None and got == row["answer"])
    fp = sum(1 for row, got in found if got is not None and got != row["answer"])
    fn = sum(1 for row, got in found if got is None and row["answer"] is not None)
    return {
        "replies": len(found),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-precision", type=float, default=0.98)
    args = parser.parse_args()
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    found = judged(rows)
    groups: dict[str, list] = defaultdict(list)
    for row, got in found:
        groups[f"kind={row['kind']}"].append((row, got))
        groups[f"slice={row['slice']}"].append((row, got))
    print(f"{'':18} {'replies':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}")
    for name, part in [("all", found), *sorted(groups.items())]:
        s = scores(part)
        counts = f"{s['replies']:7d} {s['tp']:4d} {s['fp']:4d} {s['fn']:4d}"
        print(f"{name:18} {counts} {s['precision']:9.3f} {s['recall']:7.3f}")
    wrong = [(row, got) for row, got in found if got is not None and got != row["answer"]]
    for row, got in wrong:
        print(
            f"\nfalse positive {row['source']}: read {got}, labelled {row['answer']} ({row['note']})\n"
            f"  {row['reply'][:160]!r}"
        )
    total = scores(found)
    print(f"\nprecision {total['precision']:.3f}, recall {total['recall']:.3f} on {total['replies']} labelled replies")
    return 0 if total["precision"] >= args.min_precision else 1


if __name__ == "__main__":
    sys.exit(main())
