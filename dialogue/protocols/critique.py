"""Critique and correction (VISCO-style).

  0: the answerer solves the problem in numbered steps (one turn).
  1: the critic judges each step and the final answer, `critics` times, as JSON:
     {"step_1": {"correctness": bool, "explanation": str}, ..., "answer_correctness": bool}
  2: the answerer revises under each critique, `revisions` times.
A critique that is not such JSON is kept, with the parse failure recorded on the turn.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import Field, model_validator

from agents.config import Strict
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import ChildSpec, Protocol, check_config

ROLES = ("solve", "critique", "revise")


class CritiqueConfig(Strict):
    name: Literal["critique"] = "critique"
    answerer: str = "A"
    critic: str = "B"
    critics: int = Field(3, ge=1)  # critiques per solution
    revisions: int = Field(2, ge=1)  # revisions per critique
    instructions: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> CritiqueConfig:
        check_config(self.instructions, list(ROLES), "critique", self.roles)
        return self

    @property
    def roles(self) -> dict[str, str]:
        return {"answerer": self.answerer, "critic": self.critic}

    @property
    def responder(self) -> str:
        return self.answerer


class Critique(Protocol):
    config_class = CritiqueConfig
    free_form = frozenset({"critique"})  # a critique answers in JSON, not with "Answer: ..."

    def __init__(self, config: CritiqueConfig):
        self.config = config
        self.instructions = config.instructions

    def first(self, tree: DialogueTree) -> ChildSpec:
        return ChildSpec(self.config.answerer, "solve")

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        if turn.depth == 0:
            return [ChildSpec(self.config.critic, "critique", self.config.critics)]
        if turn.depth == 1:
            return [ChildSpec(self.config.answerer, "revise", self.config.revisions)]
        return []

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        return [] if parent is None else tree.path(parent)

    def parse(self, spec: ChildSpec, text: str) -> dict | None:
        return parse_verdicts(text) if spec.instruction == "critique" else None


def parse_verdicts(text: str) -> dict:
    """{"steps": {"1": bool, ...}, "answer_correct": bool}, or {"error": why} when the critique
    is not the JSON it was asked for. The outermost {...} is read, so prose around it is fine."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {"error": "no JSON object"}
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as e:
        return {"error": f"invalid JSON: {e.msg}"}
    if not isinstance(data, dict) or not isinstance(data.get("answer_correctness"), bool):
        return {"error": "no boolean answer_correctness"}
    steps = {}
    for key, value in data.items():
        match = re.fullmatch(r"step_(\d+)", key)
        if match and isinstance(value, dict) and isinstance(value.get("correctness"), bool):
            steps[match.group(1)] = value["correctness"]
    return {"steps": steps, "answer_correct": data["answer_correctness"]}
