"""Rollouts from step prefixes (per-step credit, Setlur et al. 2024; first pits, Hwang et al. 2024).

  0:   the empty prefix: the question alone (a given turn with no words).
  1:   `solutions` solutions in numbered steps, sampled from the question (or, with `planted`,
       given: worked arithmetic solutions, a seeded fraction with one wrong step).
  2:   under each solution, one prefix turn per step it branches at: its first i steps, given.
  3:   under each prefix, `continuations` samples of the answerer going on from there.
  4-5: with `depth` 2, the continuations are branched the same way, and so on.
A solution's last step is never branched at: the solution itself is its only continuation.

A continuation is the answerer shown its own first steps as its earlier message and asked to go
on, so every backend can run it (a hosted chat API included) and a training prompt holds it as
plain chat messages. The value of a step, what the continuations below its prefix tell of it,
is computed from the tree by dialogue/mining/values.py.
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agents.errors import AgoraError
from dialogue.core.questions import Question
from dialogue.core.steps import join_steps, split_steps, worked_text
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, OneAgentConfig, Protocol, check_config

ROLES = ("solve", "continue")
PREFIX = "prefix"  # the instruction name of a given prefix turn; it asks for nothing


class RolloutsConfig(OneAgentConfig):
    name: Literal["rollouts"] = "rollouts"
    solutions: int = Field(4, ge=1)  # per question
    continuations: int = Field(4, ge=1)  # per prefix (k)
    # the step numbers to branch at (1: after step 1); null: every step but the last
    branch_at: list[Annotated[int, Field(ge=1)]] | None = None
    depth: int = Field(1, ge=1)  # 2: continuations are branched too
    planted: bool = False  # given worked solutions (dataset=arithmetic) instead of sampled ones
    wrong_fraction: float = Field(0.5, ge=0.0, le=1.0)  # planted: solutions with one wrong step

    @model_validator(mode="after")
    def _check(self) -> RolloutsConfig:
        check_config(self.instructions, list(ROLES), "rollouts", self.roles)
        return self


class Rollouts(Protocol):
    config_class = RolloutsConfig
    free_form = frozenset({PREFIX})

    def __init__(self, config: RolloutsConfig):
        self.config = config
        self.instructions = config.instructions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.answerer, PREFIX, fixed_text="")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        c = self.config
        if turn.instruction == PREFIX:
            if turn.parent is not None:
                return [ChildSpec(c.answerer, "continue", c.continuations)]
            if c.planted:
                return [ChildSpec(c.answerer, "solve", fixed_text=text) for text in planted(tree.question, c)]
            return [ChildSpec(c.answerer, "solve", c.solutions)]
        if (turn.depth - 1) // 2 >= c.depth:  # depth 1, 3, 5...: solutions of rollout level 0, 1, 2...
            return []
        before = prefix_steps(tree, turn)
        own = split_steps(turn.text)
        return [
            ChildSpec(c.answerer, PREFIX, fixed_text=join_steps(before + own[:i]))
            for i in range(1, len(own))  # not after the last step: that is the whole solution
            if c.branch_at is None or len(before) + i in c.branch_at
        ]

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        if parent is None:
            return []
        turn = tree.turn(parent)
        return [turn] if turn.instruction == PREFIX and turn.text else []

    def wording(self, tree: DialogueTree, instruction: str) -> str:
        return "" if instruction == PREFIX else self.instructions[instruction]

    def judged_against(self, tree: DialogueTree, instruction: str) -> Question | None:
        return None if instruction == PREFIX else tree.question  # a prefix gives no answer of its own

    def check_questions(self, questions: list[Question]) -> None:
        if self.config.planted and (missing := [q.question_id for q in questions if q.worked is None]):
            raise AgoraError(
                f"protocol.planted: the worked solutions come from generated arithmetic problems "
                f"(dataset=arithmetic); question {missing[0]} has none"
            )


def prefix_steps(tree: DialogueTree, solution: Turn) -> list[str]:
    """The steps a solution starts after: those of the prefix turn it continues."""
    return split_steps(tree.turn(solution.parent).text) if solution.parent is not None else []


def planted(question: Question, config: RolloutsConfig) -> list[str]:
    """`solutions` worked solutions of an arithmetic problem, each wrong at one seeded step with
    probability `wrong_fraction`."""
    texts = []
    for j in range(config.solutions):
        rng = random.Random(f"{question.question_id}:planted:{j}")
        wrong_at = rng.randrange(len(question.worked)) if rng.random() < config.wrong_fraction else None
        texts.append(worked_text(question.worked, wrong_at, rng)[0])
    return texts
