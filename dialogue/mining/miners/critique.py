"""`critique`: four datasets from critique runs (a solution, critics of it, revisions after each
critic): right critiques (SFT), right over wrong critiques (pairs), corrections of a wrong solution
(SFT) and right over wrong revisions (pairs). Each row is asked under the turn's own instruction:
the critic's and reviser's tasks are what is learnt."""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree
from dialogue.mining.miner import KEYS, MESSAGES, PAIR, Miner, chat, reply, row_keys
from dialogue.mining.rules import critique_examples

FEATURES = {  # four datasets, one folder each
    "critique_sft": Features({"prompt": MESSAGES, "completion": MESSAGES, **KEYS}),
    "critique_pairs": Features({**PAIR, **KEYS}),
    "correction_sft": Features({"prompt": MESSAGES, "completion": MESSAGES, **KEYS}),
    "revision_pairs": Features({**PAIR, "label": Value("string"), **KEYS}),
}


def critique_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    found = critique_examples(tree)

    def keys(turn):
        return row_keys(tree, turn.depth, run)

    def asked(turn):
        return chat(prompt(tree, turn.parent, turn.speaker, turn.instruction))

    return {
        "critique_sft": [{"prompt": asked(c), "completion": reply(c), **keys(c)} for c in found.critiques],
        "critique_pairs": [
            {"prompt": asked(a), "chosen": reply(a), "rejected": reply(b), **keys(a)} for a, b in found.critique_pairs
        ],
        "correction_sft": [{"prompt": asked(r), "completion": reply(r), **keys(r)} for r in found.corrections],
        "revision_pairs": [
            {"prompt": asked(a), "chosen": reply(a), "rejected": reply(b), "label": label, **keys(a)}
            for a, b, label in found.revision_pairs
        ],
    }


MINERS = {"critique": Miner(frozenset({"critique"}), FEATURES, critique_rows, neutral_prompts=False)}
