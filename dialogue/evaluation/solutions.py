"""Worked solutions with known step truth, for scoring critics step by step.

Each generated arithmetic problem gets a solution of one line per operation. With probability
`wrong_fraction` one step is miscalculated (its result is off by a seeded positive amount) and
every later step carries the wrong value forward. A step is true when its stated result is the
problem's true intermediate value, so the miscalculated step and every step after it are
false, and so is the final answer. The amount keeps later divisions exact, so every later line
is arithmetic a reader can check.

`GivenSolutions` is the critique protocol with these solutions as the (fixed) first turn: the
critic judges them and the answerer revises under the critique.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dialogue.core.questions import Question, arithmetic_worked
from dialogue.core.steps import worked_text
from dialogue.core.tree import DialogueTree
from dialogue.protocols.base import ChildSpec, Delegating
from dialogue.protocols.critique import Critique


@dataclass(frozen=True)
class Solution:
    question: Question
    text: str
    steps_correct: tuple[bool, ...]
    answer_correct: bool


def worked_solutions(count: int, seed: int, steps: int, wrong_fraction: float) -> list[Solution]:
    solutions = []
    for question, worked in arithmetic_worked(count, seed, steps):
        rng = random.Random(f"{seed}:{question.question_id}:solution")
        wrong_at = rng.randrange(len(worked)) if rng.random() < wrong_fraction else None
        text, truth = worked_text(worked, wrong_at, rng)
        solutions.append(Solution(question, text, truth, truth[-1]))
    return solutions


class GivenSolutions(Delegating):
    """The critique protocol, starting from a given solution instead of the answerer's own."""

    def __init__(self, critique: Critique, solutions: dict[str, str]):
        super().__init__(critique)
        self.answerer, self.solutions = critique.config.answerer, solutions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.answerer, "solve", fixed_text=self.solutions[tree.tree_id])
