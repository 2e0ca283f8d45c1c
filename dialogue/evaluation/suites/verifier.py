"""`verifier`: a process verifier (`agora train trainer=prm`) scores the held-out solutions of a
stepwise export, step by step: how well its scores separate right steps from wrong ones, and how
often the solution it ranks first is correct, against a majority vote over the same solutions."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from agents.errors import AgoraError
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.records import reranked
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, export_rows


def verifier(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    import torch

    from agents.models import load_causal_lm
    from agents.scoring import step_scores

    rows = export_rows(shared.exports["stepwise"], config.dataset)
    options = config.verifier
    model, tokenizer = load_causal_lm(config.model)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    questions: dict[str, list[dict]] = {}
    for row in rows:
        questions.setdefault(row["question_id"], []).append(row)
    records, scored = {}, []
    for question_id, solutions in tqdm(
        questions.items(), desc="verifier", unit="question", disable=not config.progress
    ):
        try:
            scores = step_scores(
                model,
                tokenizer,
                [{"role": "user", "content": solutions[0]["prompt"]}],
                [row["completions"] for row in solutions],
                options.step_separator,
                options.good_token,
                options.bad_token,
                max_length=options.max_length,
            )
        except ValueError as e:  # a verdict token the tokenizer does not have as one token
            raise AgoraError(f"suite verifier, model {config.model}: verifier.{e}") from None
        steps = [
            m.StepScored(score, right)
            for row, row_scores in zip(solutions, scores, strict=True)
            for score, right in zip(row_scores, row["labels"], strict=False)
        ]
        chosen = reranked([(row["answer"], row["correct"], s) for row, s in zip(solutions, scores, strict=True)])
        records[question_id] = [*steps, chosen]
        scored += [
            {
                "question_id": question_id,
                "tree_id": row["tree_id"],
                "steps": row["completions"],
                "labels": row["labels"],
            }
            | {"scores": s, "answer": row["answer"], "correct": row["correct"]}
            for row, s in zip(solutions, scores, strict=True)
        ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))
    return SuiteResult(records, {"solutions": len(rows), "questions": len(questions)})


SUITES = {
    "verifier": Suite(
        verifier,
        lambda details: m.VERIFIER,
        "A process verifier scores each step of held-out solutions: step AUROC (right above wrong steps), "
        "best-of-N accuracy (the solution with the highest lowest step score) against majority vote, and the "
        "oracle (any solution correct).",
        export="stepwise",
    )
}
