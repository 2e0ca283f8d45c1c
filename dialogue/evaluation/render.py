"""A dialogue tree for people: an indented text transcript, a self-contained HTML page, or
Graphviz dot.

All three show the same things: the question and its gold answer, every turn with its speaker,
instruction, extracted answer and verdict, and where a branch stopped on agreement. The HTML
page also marks the pairs that `agora mine miner=pbt` would take from the tree. It needs no
network and no script: branches fold with <details>, and every piece of model text is escaped.
"""

from __future__ import annotations

import html
import json
import textwrap
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import field_validator

from agents.config import Strict
from agents.errors import AgoraError
from dialogue.core.questions import LETTERS, show_question
from dialogue.core.tree import DialogueTree, Turn
from dialogue.evaluation.page import page
from dialogue.mining.rules import pbt_pairs
from dialogue.running.rundir import RunDir


def gold_text(tree: DialogueTree) -> str:
    question = tree.question
    if question.choices:
        return f"{question.gold} ({question.choices[LETTERS.index(question.gold)]})"
    return question.gold


def render_text(tree: DialogueTree, width: int = 100) -> str:
    lines = [
        f"tree {tree.tree_id}  [{tree.graph.graph['protocol']}]",
        show_question(tree.question),
        f"gold: {gold_text(tree)}",
        "",
    ]

    def visit(turn_id: str) -> None:
        turn = tree.turn(turn_id)
        indent = "    " * turn.depth
        lines.append(f"{indent}[{turn.id}] {turn.speaker} · {turn.instruction} · {_verdict(turn)}")
        for paragraph in _body(turn).splitlines() or [""]:
            wrapped = textwrap.wrap(paragraph, width=max(40, width - len(indent) - 2)) or [""]
            lines.extend(f"{indent}  {w}" for w in wrapped)
        if turn.agrees_with_parent:
            lines.append(f"{indent}  -- agrees with [{turn.parent}]: branch stops")
        for child in tree.children(turn_id):
            visit(child)

    visit(tree.root())
    return "\n".join(lines)


def render_html(tree: DialogueTree, back: str | None = None) -> str:
    """The tree as a page; `back`: the address of the page it was opened from (a run's view)."""
    pairs = pbt_pairs(tree)
    roles: dict[str, list[str]] = {}
    for n, pair in enumerate(pairs, start=1):
        roles.setdefault(pair.chosen.id, []).append(f"chosen in pair {n} ({pair.label})")
        roles.setdefault(pair.rejected.id, []).append(f"rejected in pair {n} ({pair.label})")
    esc = html.escape

    def visit(turn_id: str) -> str:
        turn = tree.turn(turn_id)
        verdict = "unknown" if turn.correct is None else ("correct" if turn.correct else "incorrect")
        marks = "".join(f'<span class="pair">{esc(r)}</span>' for r in roles.get(turn.id, []))
        stop = '<span class="stop">agrees: branch stops</span>' if turn.agrees_with_parent else ""
        children = "".join(visit(c) for c in tree.children(turn_id))
        return (
            f'<details open class="turn {verdict}" data-id="{esc(turn.id)}"><summary>'
            f'<span class="id">[{esc(turn.id)}]</span> <b>{esc(turn.speaker)}</b> · {esc(turn.instruction)} · '
            f'<span class="answer">{esc(_verdict(turn))}</span>{stop}{marks}</summary>'
            f'<div class="text">{esc(_body(turn))}</div>{children}</details>'
        )

    pair_items = (
        "".join(
            f"<li>pair {n}: <b>{p.label}</b> at level {p.level}, answering [{esc(p.persuasion)}]: "
            f"[{esc(p.chosen.id)}] {esc(p.chosen.instruction)} chosen over [{esc(p.rejected.id)}] "
            f"{esc(p.rejected.instruction)}</li>"
            for n, p in enumerate(pairs, start=1)
        )
        or "<li>none</li>"
    )
    back_link = f'<p><a class="back" href="{esc(back)}">&larr; all trees</a></p>' if back else ""
    return page(
        f"tree {tree.tree_id}",
        f"""{back_link}
<h1>tree {esc(tree.tree_id)} <small>{esc(tree.graph.graph["protocol"])}</small></h1>
<div class="question">{esc(show_question(tree.question))}</div>
<p>gold: <b class="gold">{esc(gold_text(tree))}</b></p>
<h2>pairs that pbt mining takes</h2><ul class="pairs">{pair_items}</ul>
<h2>dialogue</h2>
{visit(tree.root())}""",
        body_class="tree",
    )


def render_dot(tree: DialogueTree) -> str:
    """Graphviz: one box per turn, green or red by verdict, dashed edges into agreeing turns."""

    def quote(s):
        return json.dumps(s, ensure_ascii=False)  # dot reads JSON's \" \\ \n escapes alike

    lines = [
        f"digraph {quote('tree ' + tree.tree_id)} {{",
        "  node [shape=box, style=filled];",
        f"  label={quote(show_question(tree.question) + ' | gold: ' + gold_text(tree))};",
    ]
    for turn in tree.turns():
        color = {True: "#d8f5d8", False: "#f8d7d7", None: "#eeeeee"}[turn.correct]
        label = f"[{turn.id}] {turn.speaker} · {turn.instruction}\n{_verdict(turn)}"
        lines.append(f"  {quote(turn.id)} [label={quote(label)}, fillcolor={quote(color)}];")
        if turn.parent is not None:
            style = ", style=dashed" if turn.agrees_with_parent else ""
            lines.append(f'  {quote(turn.parent)} -> {quote(turn.id)} [label=""{style}];')
    lines.append("}")
    return "\n".join(lines)


RENDERERS = {"text": render_text, "html": render_html, "dot": render_dot}


def _body(turn: Turn) -> str:
    return turn.text if turn.text else f"(no text: {turn.gen.error if turn.gen and turn.gen.error else 'empty'})"


def _verdict(turn: Turn) -> str:
    if turn.answer is None:
        return "no answer"
    return f"answer {turn.answer} " + ("correct" if turn.correct else "incorrect")


def safe_file_name(tree_id: str) -> str:
    """A tree id as one file name that stays in its folder: every character but letters, digits,
    "-", "_" and "." is percent-escaped, and so is a leading "." (no "..", no hidden file). The
    id itself is left as it is in the data."""
    name = quote(tree_id, safe="")
    return "%2E" + name[1:] if name.startswith(".") else name


class RenderConfig(Strict):
    """`agora render` (conf/render.yaml)."""

    run: str
    tree: str | None = None  # null: list the trees
    format: Literal["text", "html", "dot"] = "text"
    out: str | None = None  # null: text to stdout, a page to RUN/render/TREE.EXT

    @field_validator("tree", mode="before")
    @classmethod
    def _as_text(cls, tree):
        return None if tree is None else str(tree)  # an id such as 42 is still an id


def render(config: RenderConfig) -> tuple[str, Path | None]:
    """(what to show, the file it was written to, if any): the run's tree ids without `tree`;
    else the tree, as text on stdout, or written to `out` (a page: RUN/render/TREE.EXT)."""
    run = RunDir(config.run)
    if not run.trees_path.exists():
        raise AgoraError(f"run={config.run}: no trees.jsonl there")
    trees = run.trees_by_id()
    if config.tree is None:
        return "trees: " + " ".join(trees), None
    if config.tree not in trees:
        raise AgoraError(f"tree={config.tree}: not in {run.trees_path} (it has {len(trees)} trees)")
    page = RENDERERS[config.format](trees[config.tree])
    if config.format == "text" and config.out is None:
        return page, None
    out = Path(config.out) if config.out else run.path / "render" / f"{safe_file_name(config.tree)}.{config.format}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return f"out={out}", out
