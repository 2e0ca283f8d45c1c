"""`assessment`: does the model score right answers above wrong ones (an aft export's groups)?"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from agents.backends import BACKENDS
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.plots import assessment_plots
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, by_question, export_rows, with_persona
from dialogue.running.simulate import load_backend


def assessment(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    import torch

    from agents.models import load_causal_lm
    from agents.scoring import mean_logprobs

    rows = export_rows(shared.exports["aft"], config.dataset)
    persona = config.system_message
    if BACKENDS[config.backend.type].scores_in_process:  # score with the copy the other suites use
        backend = load_backend(shared.pool, config.model, config.backend, config.seed)
        model, tokenizer = backend.model, backend.tokenizer
    else:  # a served model: score in-process with transformers
        model, tokenizer = load_causal_lm(config.model)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
    model.eval()
    keyed, margins, scored = [], [], []
    for row in tqdm(rows, desc="assessment", unit="row", disable=not config.progress):
        candidates = row["positives"] + row["negatives"]
        if not row["positives"] or not row["negatives"]:
            continue
        scores = mean_logprobs(model, tokenizer, with_persona(row["prompt"], persona), candidates)
        positives, negatives = scores[: len(row["positives"])], scores[len(row["positives"]) :]
        for p in positives:
            for n in negatives:
                keyed.append((row["question_id"], m.Scored(p, n)))
                margins.append(p - n)
        scored.append(
            {
                "question_id": row["question_id"],
                "tree_id": row["tree_id"],
                "prompt": row["prompt"][-1]["content"],
                "positives": [{"text": t, "score": s} for t, s in zip(row["positives"], positives, strict=True)],
                "negatives": [{"text": t, "score": s} for t, s in zip(row["negatives"], negatives, strict=True)],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))
    return SuiteResult(by_question(keyed), {"pairs": len(keyed), "margins": margins})


SUITES = {
    "assessment": Suite(
        assessment,
        lambda details: m.ASSESSMENT,
        "Fraction of (correct, wrong) answer pairs the model scores in the right order by mean token log-probability.",
        export="aft",
        plots=assessment_plots,
    )
}
