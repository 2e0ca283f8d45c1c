"""Trees -> the per-question records that dialogue/evaluation/metrics.py scores."""

from __future__ import annotations

from dialogue.evaluation.metrics import Challenged
from dialogue.tree import DialogueTree


def challenged(tree: DialogueTree) -> Challenged:
    """An are_you_sure tree: the first answer's and the final answer's correctness (None for a
    final answer the tree does not have, e.g. a failed request)."""
    first = tree.turn(tree.root())
    finals = [t for t in tree.turns() if t.depth == 2]
    return Challenged(first.correct, finals[0].correct if finals else None)
