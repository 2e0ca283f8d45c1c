"""Backward reasoning (RevThink, Chen et al. 2024): forward reasoning, a backward question, the
backward reasoning that answers it, and a check that the two agree. One agent plays every turn.

  0: the answerer reasons forward and answers the question.
  1: under a right answer only, it writes a backward question: one that starts from the answer
     and asks for a given of the original question (for a generated arithmetic problem, the
     amount it starts with, so the backward answer can be checked exactly).
  2: it answers the backward question, seeing that question alone.
  3: it is shown the original question with its backward question and reasoning, and asked
     whether they agree: "yes" or "no", kept as `Turn.parsed["consistent"]`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import model_validator

from dialogue.core.questions import Question
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, OneAgentConfig, Protocol, check_config

ROLES = ("forward", "backward_question", "backward_reasoning", "consistency")
NEXT = dict(zip(ROLES, ROLES[1:], strict=False))


class ReverseConfig(OneAgentConfig):
    name: Literal["reverse"] = "reverse"

    @model_validator(mode="after")
    def _check(self) -> ReverseConfig:
        check_config(self.instructions, list(ROLES), "reverse", self.roles)
        return self


class Reverse(Protocol):
    config_class = ReverseConfig
    # the backward reasoning asks for its answer line in its own words: the dataset's answer format
    # (a choice letter, say) is the original question's, not the backward question's
    free_form = frozenset({"backward_question", "backward_reasoning", "consistency"})

    def __init__(self, config: ReverseConfig):
        self.config = config
        self.instructions = config.instructions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.answerer, "forward")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        if turn.instruction == "forward" and turn.correct is not True:
            return []  # only a right answer is reasoned back from
        return [ChildSpec(self.config.answerer, NEXT[turn.instruction])] if turn.instruction in NEXT else []

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        if parent is None:
            return []
        turn = tree.turn(parent)
        if turn.instruction == "backward_question":  # its question is all the backward reasoning sees
            return []
        if turn.instruction == "backward_reasoning":
            return tree.path(parent)[1:]  # the backward question and its reasoning
        return [turn]

    def shown_question(self, tree: DialogueTree, parent: str | None) -> str:
        if parent is not None and tree.turn(parent).instruction == "backward_question":
            return tree.turn(parent).text
        return super().shown_question(tree, parent)

    def judged_against(self, tree: DialogueTree, instruction: str) -> Question | None:
        if instruction == "forward":
            return tree.question
        if instruction == "backward_reasoning":
            return backward_gold(tree.question)
        return None

    def parse(self, spec: ChildSpec, text: str) -> dict | None:
        if spec.instruction != "consistency":
            return None
        found = re.search(r"\b(yes|no)\b", text, re.IGNORECASE)
        return {"consistent": found.group(1).lower() == "yes"} if found else {"error": "neither yes nor no"}


def backward_gold(question: Question) -> Question | None:
    """What a backward question about a generated arithmetic problem is answered by: the amount
    the problem starts with. None for other questions, whose backward answers cannot be checked."""
    if question.worked is None:
        return None
    start = str(question.worked[0].before)
    return Question(question_id=f"{question.question_id}:backward", question="", gold=start, aliases=[start])
