"""What a miner is, and the pieces its rows are made of.

A miner turns the trees of one kind of run into rows of a dataset. Each lives in its own module
under `dialogue/mining/miners/`, which registers it in a `MINERS` dict: `agora mine miner=NAME`
finds it there, and nothing else in the code names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasets import Features, Value

from dialogue.core.tree import Turn
from dialogue.mining.rules import Messages


@dataclass(frozen=True)
class Miner:
    """Everything `agora mine miner=NAME` needs to know about one miner."""

    reads: frozenset[str]  # the protocols whose trees it understands; another's would be misread
    features: dict[str, Features]  # subset folder ("" for one dataset at the top) -> its columns
    rows: Callable  # (miner config, tree, prompt, run, responders) -> {subset: rows}
    label: str | None = None  # the accept/resist column that balance and data.labels read
    neutral_prompts: bool = True  # prompts under miner.instruction; else each turn's own instruction
    report: Callable | None = None  # (miner config, a run's trees, responders) -> counts for the card, summed over runs
    # (miner config, tree, responders) -> the persuasion turns with their pairs or why they gave
    # none: for the miners of PBT pairs, whose card counts what was lost
    persuasions: Callable | None = None


MESSAGES = [{"role": Value("string"), "content": Value("string")}]
KEYS = {"tree_id": Value("string"), "question_id": Value("string"), "level": Value("int64"), "run": Value("string")}
PAIR = {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES}


def row_keys(tree, level: int, run: str) -> dict:
    """The KEYS every row carries: where it came from."""
    return {"tree_id": tree.tree_id, "question_id": tree.question.question_id, "level": level, "run": run}


def chat(messages: Messages) -> list[dict]:
    return [{"role": role, "content": content} for role, content in messages]


def reply(turn: Turn) -> list[dict]:
    return [{"role": "assistant", "content": turn.text}]
