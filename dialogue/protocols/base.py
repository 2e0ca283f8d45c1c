from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from dialogue.tree import DialogueTree, Turn


@dataclass(frozen=True)
class ChildSpec:
    speaker: str  # agent name
    instruction: str  # role instruction name
    samples: int = 1
    fixed_text: str | None = None  # a turn whose words are given (a recorded turn, a set challenge)
    asks_answer: bool = True  # append the answer format to the instruction


class Protocol(TypingProtocol):
    name: str
    instructions: dict[str, str]  # role instruction name -> wording, from conf/protocol/

    def first(self, tree: DialogueTree) -> ChildSpec:
        """The root turn: exactly one."""

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        """What to generate under `turn`; empty when the branch stops there."""

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        """The earlier turns that `speaker` sees when speaking under `parent`."""

    # Optional:
    #   `parse(spec, text) -> dict | None`: structured content read from a turn (kept as
    #     `Turn.parsed`, e.g. a critic's verdicts);
    #   `wording(tree, spec) -> str`: the instruction's words for this tree (the misinformation
    #     target), instead of `instructions[spec.instruction]`;
    #   `check_questions(questions)`: raise AgoraError for data the protocol cannot run on,
    #     before anything is written.


def check_config(instructions: dict[str, str], needed: list[str], protocol: str, agents: dict[str, str]) -> None:
    """The checks every protocol config shares: each instruction it uses is defined, and each
    role (key: its config key) is played by a different agent."""
    missing = [name for name in needed if name not in instructions]
    if missing:
        raise ValueError(f"protocol.instructions: missing '{missing[0]}' ({protocol} uses {', '.join(needed)})")
    if len(set(agents.values())) != len(agents):
        raise ValueError(f"protocol.{' and protocol.'.join(agents)} must be different agents")
