"""The persuasion-balanced training tree (Stengel-Eskin, Hase, Bansal 2024).

Levels alternate between the persuader A and the persuadee B:
  0: A answers (one turn).
  1: B answers without seeing A, once per persuadee instruction (resist, accept).
  2, 4, ...: A replies under each persuasion style (logical, emotional, credibility).
  3, 5, ...: B replies under each persuadee instruction again.
A branch stops when a turn's answer agrees with its parent's (both agents now hold the same
answer), or when the turn only says it agrees.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agents.config import Strict
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, Protocol, check_config


class LevelConfig(Strict):
    instructions: list[str] = Field(min_length=1)
    samples: int = Field(1, ge=1)


class PbtTreeConfig(Strict):
    name: Literal["pbt_tree"] = "pbt_tree"
    persuader: str = "A"
    persuadee: str = "B"
    depth: int = Field(4, ge=1)  # number of levels; a full default tree has 21 turns
    first: LevelConfig = LevelConfig(instructions=["neutral"])
    independent: LevelConfig = LevelConfig(instructions=["resist", "accept"])
    persuade: LevelConfig = LevelConfig(instructions=["logical", "emotional", "credibility"])
    respond: LevelConfig = LevelConfig(instructions=["resist", "accept"])
    instructions: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> PbtTreeConfig:
        if len(self.first.instructions) != 1 or self.first.samples != 1:
            raise ValueError("protocol.first: the root is one turn (one instruction, samples=1)")
        for level in ("first", "independent", "persuade", "respond"):
            for name in getattr(self, level).instructions:
                if name not in self.instructions:
                    raise ValueError(
                        f"protocol.{level}: instruction '{name}' is not defined in "
                        f"protocol.instructions ({', '.join(self.instructions)})"
                    )
        check_config(self.instructions, [], "pbt_tree", self.roles)
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {"persuader": self.persuader, "persuadee": self.persuadee}

    @property
    def responder(self) -> str:
        """Whose answer changes the run summary counts."""
        return self.persuadee


class PbtTree(Protocol):
    config_class = PbtTreeConfig

    def __init__(self, config: PbtTreeConfig):
        self.config = config
        self.instructions = config.instructions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.persuader, self.config.first.instructions[0])

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        level = turn.depth + 1
        if level >= self.config.depth or turn.agrees_with_parent:
            return []
        if level == 1:
            speaker, spec = self.config.persuadee, self.config.independent
        elif level % 2 == 0:
            speaker, spec = self.config.persuader, self.config.persuade
        else:
            speaker, spec = self.config.persuadee, self.config.respond
        return [ChildSpec(speaker, name, spec.samples) for name in spec.instructions]

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        if parent is None:
            return []
        path = tree.path(parent)
        if speaker == self.config.persuadee:
            # B's first answer was independent, so B never heard A's opening turn.
            return path[1:]
        return path
