"""How often the judge reads the answer a person reads: precision and recall on labelled replies.

tests/data/judge_labels.jsonl holds real SmolLM2-135M replies from `agora simulate` runs, each
labelled by reading it: the answer it gives, or none (tests/data/README.md says how and where
each reply comes from). The judge reads each one as a run does, with the answer-format
instructions of conf/prompts/default.yaml as echoes and the reply's finish reason. A false
positive is a reply read as an answer it does not give (a wrong answer, or any answer where it
gives none); a false negative is a real answer missed. Each figure has its 95% Wilson interval,
overall and per origin (dataset, persona and protocol of the run), per kind and per slice.

    python benchmarks/judge_accuracy.py [--min-precision 0.98] [--min-recall 0.92]
                                        [--min-origin-recall 0.85] [--misses]

Exits 1 if the overall precision or recall, or the recall of any origin, is below its minimum.
--misses lists every reply the judge missed, for reading. These figures are on replies the
judge's rules were revised against; tests/data/README.md gives each batch's first-look figures.
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
from dialogue.evaluation.stats import wilson

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
        "precision_ci": wilson(tp, tp + fp) if tp + fp else (float("nan"),) * 2,
        "recall_ci": wilson(tp, tp + fn) if tp + fn else (float("nan"),) * 2,
    }


def table(found: list[tuple[dict, str | None]]) -> str:
    groups: dict[str, list] = defaultdict(list)
    for row, got in found:
        for key in ("origin", "kind", "slice"):
            groups[f"{key}={row[key]}"].append((row, got))
    lines = [f"{'':24} {'replies':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'precision [95% CI]':>22} {'recall [95% CI]':>22}"]
    for name, part in [("all", found), *sorted(groups.items())]:
        s = scores(part)
        p, r = s["precision_ci"], s["recall_ci"]
        lines.append(
            f"{name:24} {s['replies']:7d} {s['tp']:4d} {s['fp']:4d} {s['fn']:4d} "
            f"{s['precision']:6.3f} [{p[0]:.3f}, {p[1]:.3f}] {s['recall']:6.3f} [{r[0]:.3f}, {r[1]:.3f}]"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument("--min-recall", type=float, default=0.0)
    parser.add_argument("--min-origin-recall", type=float, default=0.0)
    parser.add_argument("--misses", action="store_true", help="print every labelled answer the judge missed")
    parser.add_argument("--labels", type=Path, default=LABELS)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines()]
    found = judged(rows)
    print(table(found), flush=True)
    for row, got in found:
        if got is not None and got != row["answer"]:
            print(
                f"\nfalse positive {row['source']}: read {got}, labelled {row['answer']} ({row['note']})\n"
                f"  {row['reply'][:160]!r}"
            )
        elif args.misses and got is None and row["answer"] is not None:
            print(f"\nmissed {row['source']}: labelled {row['answer']} ({row['note']})\n  {row['reply'][:300]!r}")
    total = scores(found)
    print(f"\nprecision {total['precision']:.3f}, recall {total['recall']:.3f} on {total['replies']} labelled replies")
    origins = {row["origin"] for row, _ in found}
    low = {
        o: s["recall"]
        for o in origins
        if (s := scores([f for f in found if f[0]["origin"] == o]))["recall"] < args.min_origin_recall
    }
    for origin, recall in sorted(low.items()):
        print(f"recall on {origin} is {recall:.3f}, below {args.min_origin_recall}")
    return 0 if total["precision"] >= args.min_precision and total["recall"] >= args.min_recall and not low else 1


if __name__ == "__main__":
    sys.exit(main())
