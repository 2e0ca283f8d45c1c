"""A dialogue tree as an indented text transcript."""

from __future__ import annotations

import textwrap

from dialogue.questions import LETTERS, show_question
from dialogue.tree import DialogueTree, Turn


def render_text(tree: DialogueTree, width: int = 100) -> str:
    question = tree.question
    gold = question.gold
    if question.choices:
        gold = f"{gold} ({question.choices[LETTERS.index(gold)]})"
    lines = [f"tree {tree.tree_id}  [{tree.graph.graph['protocol']}]", show_question(question), f"gold: {gold}", ""]

    def visit(turn_id: str) -> None:
        turn = tree.turn(turn_id)
        indent = "    " * turn.depth
        lines.append(f"{indent}[{turn.id}] {turn.speaker} · {turn.instruction} · {_verdict(turn)}")
        body = turn.text if turn.text else f"(no text: {turn.gen.error if turn.gen else 'empty'})"
        for paragraph in body.splitlines() or [""]:
            wrapped = textwrap.wrap(paragraph, width=max(40, width - len(indent) - 2)) or [""]
            lines.extend(f"{indent}  {w}" for w in wrapped)
        if turn.agrees_with_parent:
            lines.append(f"{indent}  -- agrees with [{turn.parent}]: branch stops")
        for child in tree.children(turn_id):
            visit(child)

    visit(tree.root())
    return "\n".join(lines)


def _verdict(turn: Turn) -> str:
    if turn.answer is None:
        return "no answer"
    return f"answer {turn.answer} " + ("correct" if turn.correct else "incorrect")
