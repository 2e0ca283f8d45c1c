"""The context an agent sees, rebuilt from turns; nothing is stored twice.

From speaker S's point of view, S's own earlier turns are `assistant` messages and everyone
else's are `user` messages (prefixed with the speaker's name when more than two agents talk).
The persona is the system message and the question opens the conversation. The role
instruction for the turn being written goes last, so that siblings generated under different
instructions share every token before it (a prefix an engine with prefix caching reuses), and
so that small models read it right before they answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.base import Protocol

Message = tuple[str, str]  # (role, content)


def turn_messages(
    protocol: Protocol,
    tree: DialogueTree,
    parent: str | None,
    speaker: str,
    instruction: str,
    persona: str,
    answer_format: str,
    many_agents: bool,
) -> tuple[Message, ...]:
    """The messages `speaker` is given to write a turn under `parent` with the role instruction
    named `instruction`: the one place a prompt is made. The engine asks a model with it, and
    mining rebuilds a training prompt with it under another instruction, so the two can differ
    in nothing but the instruction."""
    wording = protocol.wording(tree, instruction)
    if protocol.asks_answer(instruction):
        wording = f"{wording}\n\n{answer_format}".strip()
    return build_messages(
        speaker=speaker,
        persona=persona,
        question=protocol.shown_question(tree, parent),
        context=protocol.context(tree, parent, speaker),
        instruction=wording,
        many_agents=many_agents,
    )


def build_messages(
    *,
    speaker: str,
    persona: str,
    question: str,
    context: Sequence[Turn],
    instruction: str,
    many_agents: bool = False,
) -> tuple[Message, ...]:
    messages: list[Message] = []
    if persona.strip():
        messages.append(("system", persona.strip()))
    messages.append(("user", question))
    for turn in context:
        if turn.speaker == speaker:
            messages.append(("assistant", turn.text))
        else:
            messages.append(("user", f"{turn.speaker}: {turn.text}" if many_agents else turn.text))
    if instruction.strip():
        messages.append(("user", instruction.strip()))
    return tuple(_merge_same_role(messages))


def _merge_same_role(messages: list[Message]) -> list[Message]:
    """Chat templates expect user and assistant to alternate; join neighbours of one role."""
    merged: list[Message] = []
    for role, content in messages:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + "\n\n" + content)
        else:
            merged.append((role, content))
    return merged
