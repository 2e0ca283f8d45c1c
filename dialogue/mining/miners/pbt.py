"""PBT pairs (`pbt`, for DPO) and their unpaired views (`kto`, `sft`), from pbt_tree runs.

A pair is two replies to the same persuasion turn, one that accepted or resisted it rightly and
one that did not (dialogue/mining/rules.py says when). KTO takes each reply of the pairs once,
labelled good or bad; SFT takes each chosen reply once.
"""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, MESSAGES, PAIR, Miner, chat, reply
from dialogue.mining.rules import pairs_in, persuasion_outcomes

FEATURES = Features(
    {
        **PAIR,
        "label": Value("string"),
        "chosen_instruction": Value("string"),
        "rejected_instruction": Value("string"),
        **KEYS,
    }
)
KTO_FEATURES = Features(
    {
        "prompt": MESSAGES,
        "completion": MESSAGES,
        "label": Value("bool"),
        "pbt_label": Value("string"),
        "instruction": Value("string"),
        **KEYS,
    }
)
SFT_FEATURES = Features(
    {"prompt": MESSAGES, "completion": MESSAGES, "label": Value("string"), "instruction": Value("string"), **KEYS}
)


def persuasions(miner, tree: DialogueTree, responders):
    """The tree's persuasion turns, each with its pairs or why it has none, as the miner's options say."""
    levels = None if miner.levels is None else set(miner.levels)
    held = miner.persuader_answer == "held"
    return persuasion_outcomes(tree, miner.score, miner.margin, responders, levels, held)


def pairs(miner, tree: DialogueTree, prompt, run: str, responders):
    """Each PBT pair of the tree with its training prompt and the keys every row carries."""
    for pair in pairs_in(persuasions(miner, tree, responders)):
        messages = chat(prompt(tree, pair.persuasion, pair.chosen.speaker, miner.instruction))
        yield (
            pair,
            messages,
            {"tree_id": pair.tree_id, "question_id": pair.question_id, "level": pair.level, "run": run},
        )


def pbt_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    return {
        "": [
            {
                "prompt": messages,
                "chosen": reply(pair.chosen),
                "rejected": reply(pair.rejected),
                "label": pair.label,
                "chosen_instruction": pair.chosen.instruction,
                "rejected_instruction": pair.rejected.instruction,
                **keys,
            }
            for pair, messages, keys in pairs(miner, tree, prompt, run, responders)
        ]
    }


def _sides(found, rejected: bool):
    """(pair, prompt, keys, reply, chosen?) for each reply of the pairs, once per reply."""
    seen = set()
    for pair, messages, keys in found:
        for turn, good in [(pair.chosen, True), *([(pair.rejected, False)] if rejected else [])]:
            if turn.id not in seen:
                seen.add(turn.id)
                yield pair, messages, keys, turn, good


def kto_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    return {
        "": [
            {
                "prompt": messages,
                "completion": reply(turn),
                "instruction": turn.instruction,
                "label": good,
                "pbt_label": pair.label,
                **keys,
            }
            for pair, messages, keys, turn, good in _sides(pairs(miner, tree, prompt, run, responders), rejected=True)
        ]
    }


def sft_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    return {
        "": [
            {
                "prompt": messages,
                "completion": reply(turn),
                "instruction": turn.instruction,
                "label": pair.label,
                **keys,
            }
            for pair, messages, keys, turn, _ in _sides(pairs(miner, tree, prompt, run, responders), rejected=False)
        ]
    }


PBT_TREES = frozenset({"pbt_tree"})
MINERS = {
    "pbt": Miner(PBT_TREES, {"": FEATURES}, pbt_rows, label="label", persuasions=persuasions),
    "kto": Miner(PBT_TREES, {"": KTO_FEATURES}, kto_rows, label="pbt_label", persuasions=persuasions),
    "sft": Miner(PBT_TREES, {"": SFT_FEATURES}, sft_rows, label="label", persuasions=persuasions),
}
