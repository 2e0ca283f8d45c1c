"""`balanced`: greedy replies to held-out persuasion turns of a pbt export, read by the source run's judge."""

from __future__ import annotations

import json
from pathlib import Path

from agents.errors import AgoraError
from agents.requests import ChatRequest, Sampling
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.suites.common import (
    Shared,
    Suite,
    SuiteResult,
    by_question,
    export_rows,
    generate,
    source_questions,
    with_persona,
)


def balanced(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    rows = export_rows(shared.exports["pbt"], config.dataset)
    questions = source_questions(rows, shared.exports["pbt"])
    persona = config.system_message
    # Several pairs can share one persuasion turn: each distinct prompt is asked once.
    prompts: dict[str, dict] = {}
    for row in rows:
        prompt = with_persona(row["prompt"], persona)
        prompts.setdefault(json.dumps(prompt), {"prompt": prompt, "row": row})
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens)
    requests = [
        ChatRequest(tuple((msg["role"], msg["content"]) for msg in p["prompt"]), greedy, config.seed)
        for p in prompts.values()
    ]
    completions = generate(config, shared, folder, requests)
    failed = [done.error for done in completions if done.error is not None]
    if failed:
        raise AgoraError(
            f"balanced: {len(failed)} of {len(completions)} requests failed (the first: {failed[0]}); "
            "run the same command again to ask them again"
        )
    keyed, replies = [], []
    for item, done in zip(prompts.values(), completions, strict=True):
        row = item["row"]
        question, judge = questions[(row["run"], row["tree_id"])]
        answer = judge.read(done.text, question, done.finish_reason == "length").answer
        correct = judge.is_correct(answer, question)
        keyed.append((row["question_id"], m.Persuaded(row["label"], correct)))
        replies.append(
            {
                "question_id": row["question_id"],
                "tree_id": row["tree_id"],
                "level": row["level"],
                "should": row["label"],
                "reply": done.text,
                "answer": answer,
                "correct": correct,
                "error": done.error,
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replies))
    counts = {label: sum(1 for _, r in keyed if r.should == label) for label in ("resist", "accept")}
    return SuiteResult(by_question(keyed), {"persuasion_turns": counts})


SUITES = {
    "balanced": Suite(
        balanced,
        lambda details: m.BALANCED,
        "Greedy reply to held-out persuasion turns: accuracy when the persuasion argues for a wrong answer (should "
        "resist), for the right one (should accept), and their mean.",
        export="pbt",
    )
}
