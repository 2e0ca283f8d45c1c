"""Misinformation: a persuader argues for one fixed wrong answer for up to `turns` rounds.

  0: the answerer answers the question.
  1, 3, ...: the persuader argues that the answer is the target, in one appeal style.
  2, 4, ...: the answerer replies.
The branch stops once the answerer gives the target. The target is a wrong answer drawn per
question from `seed` (another choice letter, or a nearby wrong number) and kept on the tree as
`graph["target"]`, so the records can tell when the answerer was persuaded.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from agents.config import Strict
from agents.errors import AgoraError
from dialogue.core.judge import canonical_number
from dialogue.core.questions import LETTERS, Question
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, Protocol, check_config


class MisinformationConfig(Strict):
    name: Literal["misinformation"] = "misinformation"
    answerer: str = "A"
    persuader: str = "B"
    turns: int = Field(3, ge=1)  # k: persuasion turns at most
    style: Literal["logical", "credibility", "emotional"] = "logical"
    seed: int = 0  # draws each question's wrong target
    instructions: dict[str, str]  # answer, respond, and persuade_STYLE with a {target} field

    @model_validator(mode="after")
    def _check(self) -> MisinformationConfig:
        check_config(self.instructions, ["answer", "respond", f"persuade_{self.style}"], "misinformation", self.roles)
        if "{target}" not in self.instructions[f"persuade_{self.style}"]:
            raise ValueError(f"protocol.instructions.persuade_{self.style}: must contain {{target}}")
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {"answerer": self.answerer, "persuader": self.persuader}

    @property
    def responder(self) -> str:
        return self.answerer


def wrong_target(question: Question, seed: int) -> str | None:
    """A wrong answer in the form the judge reads answers: a letter, or a canonical number.
    None when the question has neither choices nor a numeric answer."""
    rng = random.Random(f"{seed}:{question.question_id}")
    if question.choices:
        return rng.choice([LETTERS[i] for i in range(len(question.choices)) if LETTERS[i] != question.gold])
    try:
        gold = float(question.gold.replace(",", ""))
    except ValueError:
        return None
    if gold.is_integer():
        spread = max(3, abs(int(gold)) // 2)
        offsets = [d for d in range(-spread, spread + 1) if d != 0 and (gold < 0 or gold + d >= 0)]
        return canonical_number(str(int(gold) + rng.choice(offsets)))
    return canonical_number(str(gold * rng.choice([0.5, 1.5, 2.0])))


def show_target(question: Question, target: str) -> str:
    if question.choices:
        return f"{target}) {question.choices[LETTERS.index(target)]}"
    return target


class Misinformation(Protocol):
    config_class = MisinformationConfig

    def __init__(self, config: MisinformationConfig):
        self.config = config
        self.instructions = config.instructions

    def check_questions(self, questions: list[Question]) -> None:
        for q in questions:
            if wrong_target(q, self.config.seed) is None:
                raise AgoraError(
                    f"protocol=misinformation: question '{q.question_id}' has neither choices nor a "
                    "numeric answer, so no wrong target can be drawn for it"
                )

    def target(self, tree: DialogueTree) -> str:
        """Drawn once per tree and kept on it (a replayed tree gets it when first asked)."""
        return tree.graph.graph.setdefault("target", wrong_target(tree.question, self.config.seed))

    def first(self, tree: DialogueTree) -> ChildSpec:
        self.target(tree)
        return ChildSpec(self.config.answerer, "answer")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        if turn.speaker == self.config.persuader:
            return [ChildSpec(self.config.answerer, "respond")]
        persuaded = turn.answer is not None and turn.answer == self.target(tree)
        if persuaded or turn.depth >= 2 * self.config.turns:
            return []
        return [ChildSpec(self.config.persuader, f"persuade_{self.config.style}")]

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        return [] if parent is None else tree.path(parent)

    def wording(self, tree: DialogueTree, instruction: str) -> str:
        text = self.instructions[instruction]
        if instruction.startswith("persuade_"):
            text = text.format(target=show_target(tree.question, self.target(tree)))
        return text
