"""Debate among N agents over R rounds (multi-agent debate, after Du et al. 2023).

Round 0: every agent answers on its own, seeing no other answer. Rounds 1..R: every agent
speaks once more, in the order of `agents`, having heard all earlier rounds; with
`sequential`, also the agents who already spoke in its round. The tree is one chain of
N * (R + 1) turns (turn d is spoken by agents[d % N] in round d // N).

`protocol=team_debate` is this protocol for two agents, two rounds, sequential: independent
first answers, then four turns; swapping `agents` swaps the speaking order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agents.config import Strict
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, Protocol, check_config

ROLES = ("answer", "debate")


class DebateConfig(Strict):
    name: Literal["debate"] = "debate"
    agents: list[str] = Field(["A", "B", "C"], min_length=2)  # speaking order
    rounds: int = Field(2, ge=0)  # rounds after the independent first answers
    sequential: bool = False
    instructions: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> DebateConfig:
        check_config(self.instructions, list(ROLES), "debate", {})
        if len(set(self.agents)) != len(self.agents):
            raise ValueError("protocol.agents: an agent is named twice")
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {f"agents[{i}]": name for i, name in enumerate(self.agents)}

    @property
    def responder(self) -> str:
        return self.agents[0]


class Debate(Protocol):
    config_class = DebateConfig

    def __init__(self, config: DebateConfig):
        self.config = config
        self.instructions = config.instructions
        self.n = len(config.agents)

    def round_of(self, turn: Turn) -> int:
        return turn.depth // self.n

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.agents[0], "answer")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        depth = turn.depth + 1
        if depth >= self.n * (self.config.rounds + 1):
            return []
        return [ChildSpec(self.config.agents[depth % self.n], "answer" if depth < self.n else "debate")]

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        if parent is None:
            return []
        path = tree.path(parent)
        speaking_round = (path[-1].depth + 1) // self.n
        if speaking_round == 0:
            return []
        return [
            t
            for t in path
            if self.round_of(t) < speaking_round or (self.config.sequential and self.round_of(t) == speaking_round)
        ]
