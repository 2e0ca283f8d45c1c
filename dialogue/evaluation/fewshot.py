"""Few-shot examples chosen and pruned for a budget: a working baseline for CoT-Influx (Huang et al.
2023), which learns which examples to give and which of their tokens to drop so that more
reasoning fits a context. Nothing is learnt here: examples are the questions of another split
(`fewshot.split`, train by default: never the evaluated one) ranked by how many content words
they share with the question (or in a seeded random order), each written as the question and its
answer (a generated arithmetic problem's worked steps too); with `fewshot.prune`, filler words
are dropped from them, numbers, choices and the answer line kept; they are added, best first,
while `fewshot.count` and the budget of `fewshot.budget_words` words allow. The block goes before
the question in the evaluated model's first message (`FewShot` wraps the suite's protocol), so it
applies to the protocol suites, not to balanced and assessment, which read exported prompts.
"""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import Field

from agents.config import Strict
from dialogue.core.questions import DatasetConfig, Question, load_questions, show_question
from dialogue.core.steps import worked_text
from dialogue.core.tree import DialogueTree
from dialogue.protocols.base import Delegating, Protocol

# words a reader of an example can do without; pruning keeps everything else
_FILLER_WORDS = """a an the of to in on at for and or but so is are was were be been being it its this that these
those then than there their they them he she his her we you your i my me our as by with from into which who what when
how does do did has have had will would can could should may might just very also"""
FILLER = frozenset(_FILLER_WORDS.split())


class FewShotConfig(Strict):
    count: int = Field(0, ge=0)  # examples per question; 0: none
    budget_words: int = Field(300, ge=1)  # the examples' length in words, all together
    select: Literal["similar", "random"] = "similar"
    prune: bool = True
    split: str = "train"  # where the examples come from; never the split evaluated


def solved(question: Question) -> str:
    """A question and its answer as an example: its worked steps first, when it has them."""
    if question.worked:
        return f"Question: {show_question(question)}\n{worked_text(question.worked, None, random.Random(0))[0]}"
    return f"Question: {show_question(question)}\nAnswer: {question.gold}"


def prune(example: str) -> str:
    """The example without filler words; its question's choices, numbers and answer line stay whole."""
    lines = []
    for line in example.splitlines():
        if line.startswith("Answer:") or re.match(r"^[A-Z]\) ", line):
            lines.append(line)
        else:
            lines.append(" ".join(w for w in line.split() if w.lower().strip(".,;:?!") not in FILLER))
    return "\n".join(lines)


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in FILLER}


def choose(question: Question, pool: list[Question], config: FewShotConfig, seed: int) -> list[str]:
    """The examples for `question`, best first, within the count and the budget of words."""
    candidates = [q for q in pool if q.question_id != question.question_id and q.question != question.question]
    if config.select == "similar":
        words = content_words(question.question)
        candidates.sort(key=lambda q: (-len(words & content_words(q.question)), q.question_id))
    else:
        random.Random(f"{seed}:{question.question_id}").shuffle(candidates)
    chosen, used = [], 0
    for candidate in candidates:
        if len(chosen) == config.count:
            break
        text = prune(solved(candidate)) if config.prune else solved(candidate)
        length = len(text.split())
        if used + length <= config.budget_words:
            chosen.append(text)
            used += length
    return chosen


class FewShot(Delegating):
    """A protocol whose question, as the agents read it, comes after worked examples."""

    def __init__(self, inner: Protocol, pool: list[Question], config: FewShotConfig, seed: int):
        super().__init__(inner)
        self.pool, self.config, self.seed = pool, config, seed
        self._blocks: dict[str, str] = {}

    def shown_question(self, tree: DialogueTree, parent: str | None) -> str:
        question = self.inner.shown_question(tree, parent)
        if tree.tree_id not in self._blocks:
            examples = choose(tree.question, self.pool, self.config, self.seed)
            self._blocks[tree.tree_id] = "".join(f"Example {i}:\n{e}\n\n" for i, e in enumerate(examples, 1))
        block = self._blocks[tree.tree_id]
        return f"{block}Now this question:\n{question}" if block else question


def example_pool(dataset: DatasetConfig, config: FewShotConfig) -> list[Question]:
    """The questions examples come from: the dataset's `fewshot.split` (EvalConfig checks that it
    is not the split evaluated)."""
    return load_questions(dataset.model_copy(update={"split": config.split, "limit": None})).questions
