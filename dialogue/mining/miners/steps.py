"""`steps`: step-level data from rollouts runs (values in dialogue/mining/values.py). Pairs of
sibling steps whose values differ by at least `miner.margin` (for DPO as it is), each wrong
solution's first pit (`pits/`), and every valued step weighted by its advantage (`weighted/`)."""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, MESSAGES, PAIR, Miner, chat, row_keys
from dialogue.mining.values import StepValue, first_pit, first_wrong_step, solutions, step_pairs, step_values

_STEP = {"step": Value("int64")}
FEATURES = {  # pairs at the top, for DPO as it is; pits and weighted rows in folders of their own
    "": Features(
        {
            **PAIR,
            **_STEP,
            "value_chosen": Value("float64"),
            "value_rejected": Value("float64"),
            "n_chosen": Value("int64"),
            "n_rejected": Value("int64"),
            **KEYS,
        }
    ),
    "pits": Features(
        {
            "prompt": MESSAGES,
            "completion": MESSAGES,
            **_STEP,
            "value_before": Value("float64"),
            "value": Value("float64"),
            "n": Value("int64"),
            "true_step": Value("int64"),  # an arithmetic solution's first wrong step; null when unknown
            **KEYS,
        }
    ),
    "weighted": Features(
        {
            "prompt": MESSAGES,
            "completion": MESSAGES,
            "weight": Value("float64"),
            **_STEP,
            "value": Value("float64"),
            **KEYS,
        }
    ),
}


def steps_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    def asked(prefix: str) -> list[dict]:  # what the answerer was asked after `prefix`
        turn = tree.turn(prefix)
        return chat(prompt(tree, prefix, turn.speaker, "solve" if turn.parent is None else "continue"))

    def keys(prefix: str) -> dict:
        return row_keys(tree, tree.turn(prefix).depth + 1, run)

    def step(s: StepValue) -> list[dict]:
        return [{"role": "assistant", "content": s.text}]

    pairs = [
        {
            "prompt": asked(p.prefix),
            "chosen": step(p.chosen),
            "rejected": step(p.rejected),
            "step": p.chosen.number,
            "value_chosen": p.chosen.value,
            "value_rejected": p.rejected.value,
            "n_chosen": p.chosen.n,
            "n_rejected": p.rejected.n,
            **keys(p.prefix),
        }
        for p in step_pairs(tree, miner.margin)
    ]
    pits, weighted = [], []
    for solution in solutions(tree):
        if (pit := first_pit(tree, solution, miner.pit_value)) is not None:
            pits.append(
                {
                    "prompt": asked(pit.prefix),
                    "completion": step(pit),
                    "step": pit.number,
                    "value_before": pit.value - pit.advantage,
                    "value": pit.value,
                    "n": pit.n,
                    "true_step": first_wrong_step(tree, solution),
                    **keys(pit.prefix),
                }
            )
        for s in step_values(tree, solution):
            if s.advantage is not None:
                weighted.append(
                    {
                        "prompt": asked(s.prefix),
                        "completion": step(s),
                        "weight": s.advantage,
                        "step": s.number,
                        "value": s.value,
                        **keys(s.prefix),
                    }
                )
    return {"": pairs, "pits": pits, "weighted": weighted}


def steps_report(miner, trees: list[DialogueTree], responders) -> dict:
    """How the first pits found by rollouts compare with the true first wrong step, where the
    problem's truth is known (arithmetic; planted solutions)."""
    wrong = located = with_truth = agree = 0
    for tree in trees:
        for solution in solutions(tree):
            if tree.turn(solution).correct is True:
                continue
            wrong += 1
            if (pit := first_pit(tree, solution, miner.pit_value)) is None:
                continue
            located += 1
            if (truth := first_wrong_step(tree, solution)) is not None:
                with_truth += 1
                agree += pit.number == truth
    return {"wrong_solutions": wrong, "pits_located": located, "pits_with_truth": with_truth, "pits_agree": agree}


MINERS = {"steps": Miner(frozenset({"rollouts"}), FEATURES, steps_rows, neutral_prompts=False, report=steps_report)}
