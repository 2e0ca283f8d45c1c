from __future__ import annotations

from dataclasses import dataclass

from agents.config import Strict
from dialogue.core.questions import Question, show_question
from dialogue.core.tree import DialogueTree, Turn


@dataclass(frozen=True)
class ChildSpec:
    speaker: str  # agent name
    instruction: str  # role instruction name
    samples: int = 1
    fixed_text: str | None = None  # a turn whose words are given (a recorded turn, a set challenge)


class Protocol:
    """Decides which turns a tree grows. Every hook the engine, mining and replay call is declared
    here with its default; a protocol overrides what it needs.

    `first`, `children` and `context` have no default: they are what a protocol is. The others:
    `wording` (the words of an instruction for this tree), `asks_answer` (whether a turn under an
    instruction is asked for the answer format), `shown_question` (the question a turn is asked,
    the tree's own by default), `judged_against` (the question whose gold a turn's answer is held
    to, or None for a turn that is not right or wrong), `parse` (structured content read from a
    turn's text, kept as `Turn.parsed`) and `check_questions` (refuse data the protocol cannot run
    on, before anything is written)."""

    config_class: type | None = None  # its pydantic config, whose `name` is the protocol's name
    name: str  # set from config_class: a protocol's name is written once, in its config
    instructions: dict[str, str]  # role instruction name -> wording, from conf/protocol/
    free_form: frozenset[str] = frozenset()  # instructions whose turns give no "Answer: ..." line

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("config_class") is not None:
            cls.name = cls.config_class.model_fields["name"].default

    def first(self, tree: DialogueTree) -> ChildSpec:
        """The root turn: exactly one."""
        raise NotImplementedError

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        """What to generate under `turn`; empty when the branch stops there."""
        raise NotImplementedError

    def context(self, tree: DialogueTree, parent: str | None, speaker: str) -> list[Turn]:
        """The earlier turns that `speaker` sees when speaking under `parent`."""
        raise NotImplementedError

    def wording(self, tree: DialogueTree, instruction: str) -> str:
        return self.instructions[instruction]

    def asks_answer(self, instruction: str) -> bool:
        return instruction not in self.free_form

    def shown_question(self, tree: DialogueTree, parent: str | None) -> str:
        return show_question(tree.question)

    def judged_against(self, tree: DialogueTree, instruction: str) -> Question | None:
        return tree.question

    def parse(self, spec: ChildSpec, text: str) -> dict | None:
        return None

    def check_questions(self, questions: list[Question]) -> None:
        return None


class Delegating(Protocol):
    """A protocol that is `inner` except where a subclass overrides a hook (a replay regrows
    recorded trees; the critique suite starts from given solutions). Every hook of `Protocol`
    is forwarded to `inner` by construction (`HOOKS`, below), so a hook added to `Protocol` is
    never silently answered by the default instead of by the protocol being wrapped."""

    def __init__(self, inner: Protocol):
        self.inner = inner
        self.name, self.instructions, self.free_form = inner.name, inner.instructions, inner.free_form


def _forward(name: str):
    def hook(self, *args, **kwargs):
        return getattr(self.inner, name)(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = f"`inner.{name}`, unless a subclass overrides it."
    return hook


HOOKS = tuple(name for name, value in vars(Protocol).items() if callable(value) and not name.startswith("_"))
for _name in HOOKS:
    setattr(Delegating, _name, _forward(_name))


class OneAgentConfig(Strict):
    """The config every protocol one agent plays alone shares."""

    answerer: str = "A"
    instructions: dict[str, str]

    @property
    def roles(self) -> dict[str, str]:
        return {"answerer": self.answerer}

    @property
    def responder(self) -> str:
        return self.answerer


def check_config(instructions: dict[str, str], needed: list[str], protocol: str, agents: dict[str, str]) -> None:
    """The checks every protocol config shares: each instruction it uses is defined, and each
    role (key: its config key) is played by a different agent."""
    missing = [name for name in needed if name not in instructions]
    if missing:
        raise ValueError(f"protocol.instructions: missing '{missing[0]}' ({protocol} uses {', '.join(needed)})")
    if len(set(agents.values())) != len(agents):
        raise ValueError(f"protocol.{' and protocol.'.join(agents)} must be different agents")
