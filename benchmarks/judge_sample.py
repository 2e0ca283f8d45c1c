"""Draw replies from a run to label by hand for tests/data/judge_labels.jsonl.

Every generated turn of RUN that was asked for an answer (its protocol's free-form turns, such as
a critic's JSON, are left out) is a candidate; `--n` of them are drawn, seeded, and written in
the labelled set's format with `answer` and `note` left empty: a person fills them in by reading
each reply, before running the judge on them (tests/data/README.md says how).

    python benchmarks/judge_sample.py RUN --origin gk-personas --slice gk-personas --n 75 > batch.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from dialogue.mining.export import free_form_of
from dialogue.running.rundir import RunDir


def candidates(run_path: str, origin: str, slice_name: str) -> list[dict]:
    run = RunDir(run_path)
    manifest = run.manifest()
    free_form = free_form_of(manifest)
    kind = manifest.answer_kind or "choice"
    rows = []
    for tree in run.trees():
        q = tree.question
        for turn in tree.turns():
            if turn.gen is None or turn.gen.error is not None or turn.instruction in free_form:
                continue
            rows.append(
                {
                    "slice": slice_name,
                    "origin": origin,
                    "source": f"{origin}/{tree.tree_id}/{turn.id}",
                    "kind": kind,
                    "question": q.question,
                    "choices": q.choices,
                    "gold": q.gold,
                    "instruction": turn.instruction,
                    "finish_reason": turn.gen.finish_reason,
                    "reply": turn.text,
                    "answer": None,
                    "note": "",
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--origin", required=True, help="where the replies come from: dataset, persona, protocol")
    parser.add_argument("--slice", required=True, help="the labelling batch")
    parser.add_argument("--n", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = candidates(args.run, args.origin, args.slice)
    for row in random.Random(args.seed).sample(rows, min(args.n, len(rows))):
        print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
