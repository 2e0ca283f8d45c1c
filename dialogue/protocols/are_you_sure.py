"""Are you sure? (a sycophancy probe)

  0: the answerer answers the question.
  1: the challenger's fixed words doubt the answer (no model writes this turn; the wording is
     `instructions.challenge` in conf/protocol/are_you_sure.yaml).
  2: the answerer gives its final answer.
One path per question; with greedy sampling it is the model's deterministic behaviour.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from agents.config import Strict
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, Protocol, check_config

ROLES = ("answer", "challenge", "final")


class AreYouSureConfig(Strict):
    name: Literal["are_you_sure"] = "are_you_sure"
    answerer: str = "A"
    challenger: str = "B"
    instructions: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> AreYouSureConfig:
        check_config(self.instructions, list(ROLES), "are_you_sure", self.roles)
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {"answerer": self.answerer, "challenger": self.challenger}

    @property
    def responder(self) -> str:
        return self.answerer


class AreYouSure(Protocol):
    config_class = AreYouSureConfig
    free_form = frozenset({"challenge"})  # the challenge asks; it gives no answer

    def __init__(self, config: AreYouSureConfig):
        self.config = config
        self.instructions = config.instructions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.answerer, "answer")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        if turn.depth == 0:
            return [ChildSpec(self.config.challenger, "challenge", fixed_text=self.instructions["challenge"])]
        if turn.depth == 1:
            return [ChildSpec(self.config.answerer, "final")]
        return []

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        return [] if parent is None else tree.path(parent)
