"""`persuader`: the persuasion turns that worked, as SFT rows for the persuader (pbt_tree runs).

A persuasion turn P by X, answered by replies of another agent Y, worked when X argued for an
answer Y did not hold (Y's last answer before P) and at least one reply took it up. The row is
the prompt X was given for P, under P's own instruction (its style of persuasion), and P's text.
`miner.toward` keeps persuasion toward the correct answer, toward a wrong one, or both.
"""

from __future__ import annotations

from datasets import Features, Value

from dialogue.core.tree import DialogueTree, Turn
from dialogue.mining.miner import KEYS, MESSAGES, Miner, chat, reply, row_keys
from dialogue.mining.rules import persuasion_turns

FEATURES = Features(
    {
        "prompt": MESSAGES,
        "completion": MESSAGES,
        "label": Value("string"),  # correct: argued for the right answer; misleading: for a wrong one
        "instruction": Value("string"),
        "adopted": Value("float64"),  # the share of the replies that took up the argued answer
        **KEYS,
    }
)
LABEL = {True: "correct", False: "misleading"}


def disputes(tree: DialogueTree, responders) -> list[tuple[Turn, list[Turn]]]:
    """Every turn that argued for an answer its responder (one of `responders`; None: any) did not
    hold, both answers read, with the responder's replies to it."""
    return [
        (persuasion, replies)
        for persuasion, before, replies in persuasion_turns(tree, responders)
        if None not in (before.answer, persuasion.answer, persuasion.correct) and persuasion.answer != before.answer
    ]


def adopted(persuasion: Turn, replies: list[Turn]) -> float:
    return sum(r.answer == persuasion.answer for r in replies) / len(replies)


def persuader_rows(miner, tree: DialogueTree, prompt, run: str, responders) -> dict[str, list[dict]]:
    rows = []
    for persuasion, replies in disputes(tree, responders):
        share = adopted(persuasion, replies)
        if share == 0 or miner.toward not in ("any", LABEL[persuasion.correct]):
            continue
        rows.append(
            {
                "prompt": chat(prompt(tree, persuasion.parent, persuasion.speaker, persuasion.instruction)),
                "completion": reply(persuasion),
                "label": LABEL[persuasion.correct],
                "instruction": persuasion.instruction,
                "adopted": share,
                **row_keys(tree, persuasion.depth, run),
            }
        )
    return {"": rows}


def persuader_report(miner, trees: list[DialogueTree], responders) -> dict:
    """How many disputed turns there were, and how many worked, by the answer argued for."""
    counts = dict.fromkeys(("disputes", "worked_correct", "worked_misleading", "failed"), 0)
    for tree in trees:
        for persuasion, replies in disputes(tree, responders):
            if adopted(persuasion, replies) == 0:
                counts["failed"] += 1
            else:
                counts[f"worked_{LABEL[persuasion.correct]}"] += 1
            counts["disputes"] += 1
    return counts


MINERS = {
    "persuader": Miner(
        frozenset({"pbt_tree"}),
        {"": FEATURES},
        persuader_rows,
        label="label",
        neutral_prompts=False,
        report=persuader_report,
    )
}
