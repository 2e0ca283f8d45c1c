"""`stepwise`: TRL's stepwise supervision rows (`prompt`, `completions`, `labels`) from rollouts
runs, one per solution sampled from the question, a label per step (dialogue/mining/values.py),
with the solution's final answer and its correctness (the verifier suite's majority vote)."""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.questions import show_question
from dialogue.core.steps import split_steps
from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, Miner, row_keys
from dialogue.mining.values import stepwise_labels

FEATURES = Features(
    {
        "prompt": Value("string"),
        "completions": [Value("string")],
        "labels": [Value("bool")],
        "answer": Value("string"),
        "correct": Value("bool"),
        **KEYS,
    }
)


def stepwise_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    rows = []
    for solution, labels in stepwise_labels(tree, miner.threshold, miner.labels).items():
        if labels is not None:
            turn = tree.turn(solution)
            rows.append(
                {
                    "prompt": show_question(tree.question),
                    "completions": split_steps(turn.text),
                    "labels": labels,
                    "answer": turn.answer,
                    "correct": turn.correct,
                    **row_keys(tree, turn.depth, run),
                }
            )
    return {"": rows}


def stepwise_report(miner, trees: list[DialogueTree], responders) -> dict:
    found = [labels for tree in trees for labels in stepwise_labels(tree, miner.threshold, miner.labels).values()]
    return {"solutions": len(found), "unlabelled": sum(labels is None for labels in found)}


MINERS = {
    "stepwise": Miner(
        frozenset({"rollouts"}), {"": FEATURES}, stepwise_rows, neutral_prompts=False, report=stepwise_report
    )
}
