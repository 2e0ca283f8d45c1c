"""`aft`: a responder's replies to one turn, grouped by whether their answer is right (for AFT's
constraint loss), from pbt_tree runs."""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, MESSAGES, Miner, chat
from dialogue.mining.rules import AnswerGroup, Messages, aft_groups

FEATURES = Features(
    {
        "prompt": MESSAGES,
        "positives": [Value("string")],
        "negatives": [Value("string")],
        "ranked": [Value("string")],
        "speaker": Value("string"),
        **KEYS,
    }
)


def aft_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    levels = None if miner.levels is None else set(miner.levels)
    return {
        "": [
            _row(g, prompt(tree, g.parent, g.speaker, miner.instruction), run)
            for g in aft_groups(tree, responders, levels)
        ]
    }


def _row(group: AnswerGroup, prompt: Messages, run: str) -> dict:
    def texts(turns):
        return [t.text for t in turns]

    return {
        "prompt": chat(prompt),
        "positives": texts(group.positives),
        "negatives": texts(group.negatives),
        "ranked": texts(group.ranked),
        "speaker": group.speaker,
        "tree_id": group.tree_id,
        "question_id": group.question_id,
        "level": group.level,
        "run": run,
    }


MINERS = {"aft": Miner(frozenset({"pbt_tree"}), {"": FEATURES}, aft_rows)}
