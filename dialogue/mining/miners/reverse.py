"""`reverse`: RevThink's three SFT tasks from verified reverse trees (dialogue/mining/rules.py
says when a tree is verified): question -> forward reasoning, question -> backward question,
backward question -> backward reasoning, told apart by a `task` column."""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, MESSAGES, Miner, chat, reply, row_keys
from dialogue.mining.rules import reverse_turns, verified
from dialogue.protocols.reverse import backward_gold

FEATURES = Features({"prompt": MESSAGES, "completion": MESSAGES, "task": Value("string"), **KEYS})


def reverse_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    turns = reverse_turns(tree)
    if not verified(tree, turns):
        return {"": []}
    forward, question, reasoning = turns["forward"], turns["backward_question"], turns["backward_reasoning"]
    tasks = [  # (task, the turn it learns, the turn it is written after)
        ("forward", forward, None),
        ("backward_question", question, None),  # from the question alone: the answer is not given
        ("backward_reasoning", reasoning, question.id),
    ]
    return {
        "": [
            {
                "prompt": chat(prompt(tree, after, turn.speaker, task)),
                "completion": reply(turn),
                "task": task,
                **row_keys(tree, turn.depth, run),
            }
            for task, turn, after in tasks
        ]
    }


def reverse_report(miner, trees: list[DialogueTree], responders) -> dict:
    counts = dict.fromkeys(("questions", "forward_right", "checkable", "backward_right", "consistent", "verified"), 0)
    for tree in trees:
        turns = reverse_turns(tree)
        counts["questions"] += 1
        counts["forward_right"] += "forward" in turns and turns["forward"].correct is True
        if "backward_reasoning" in turns and backward_gold(tree.question) is not None:
            counts["checkable"] += 1
            counts["backward_right"] += turns["backward_reasoning"].correct is True
        counts["consistent"] += "consistency" in turns and (turns["consistency"].parsed or {}).get("consistent") is True
        counts["verified"] += verified(tree, turns)
    return counts


MINERS = {
    "reverse": Miner(frozenset({"reverse"}), {"": FEATURES}, reverse_rows, neutral_prompts=False, report=reverse_report)
}
