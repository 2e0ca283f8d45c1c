"""Trees (and scored solutions) -> the per-question records that dialogue/evaluation/metrics.py scores."""

from __future__ import annotations

from dialogue.core.steps import reasoning_counts
from dialogue.core.tree import DialogueTree
from dialogue.evaluation.metrics import Challenged, Debated, Misinformed, Reasoned, Reranked, Revised, Verdict
from dialogue.evaluation.solutions import Solution


def challenged(tree: DialogueTree) -> Challenged:
    """An are_you_sure tree: the first answer's and the final answer's correctness (None for a
    final answer the tree does not have, e.g. a failed request)."""
    first = tree.turn(tree.root())
    final = next((t for t in tree.turns() if t.depth == 2), None)
    if final is None or first.answer is None or final.answer is None:
        return Challenged(first.correct, final.correct if final else None, None)
    return Challenged(first.correct, final.correct, first.answer != final.answer)


def misinformed(tree: DialogueTree) -> Misinformed:
    """A misinformation tree (one chain): the first answer's correctness, and after which
    persuasion turn the answerer first gave the target."""
    answerer = tree.turn(tree.root()).speaker
    target = tree.graph.graph["target"]
    replies = [t for t in tree.turns() if t.speaker == answerer and t.depth > 0]
    flipped = next((i for i, t in enumerate(replies, start=1) if t.answer == target), None)
    return Misinformed(tree.turn(tree.root()).correct, flipped)


def debated(tree: DialogueTree, order: int, agents: list[str]) -> list[Debated]:
    """A debate tree: each of `agents`' first and last answers' correctness."""
    turns = tree.turns()
    return [
        Debated(
            order,
            a,
            next((t.correct for t in turns if t.speaker == a), None),
            next((t.correct for t in reversed(turns) if t.speaker == a), None),
        )
        for a in agents
    ]


def verdicts(tree: DialogueTree, solution: Solution) -> list[Verdict]:
    """Every critique of a given solution, held against the solution's known truth. A critique
    that could not be read, or skips a step, has said nothing about it (None)."""
    found = []
    for critique in (t for t in tree.turns() if t.depth == 1):
        parsed = critique.parsed or {"error": "missing"}
        readable = "error" not in parsed
        said = (not parsed["answer_correct"]) if readable else None
        found.append(Verdict("answer", not solution.answer_correct, said))
        for i, correct in enumerate(solution.steps_correct, start=1):
            step = parsed["steps"].get(str(i)) if readable else None
            found.append(Verdict("step", not correct, None if step is None else not step))
    return found


def revised(tree: DialogueTree) -> list[Revised]:
    """Every revision's correctness against the solution it revised."""
    before = tree.turn(tree.root()).correct
    return [Revised(before, t.correct) for t in tree.turns() if t.depth == 2]


def reasoned(tree: DialogueTree) -> Reasoned:
    """A one-turn tree's solution held against its generated problem's worked steps."""
    solution = tree.turn(tree.root())
    return Reasoned(solution.correct, **reasoning_counts(tree.question, solution.text))


def reranked(solutions: list[tuple[str | None, bool | None, list[float]]]) -> Reranked:
    """One question's solutions, each (final answer or None, its correctness, its step scores),
    chosen among by majority vote over the answers read and by the verifier: the solution whose
    lowest step score is highest. Ties go to the one met first."""
    votes: dict[str, int] = {}
    for answer, _, _ in solutions:
        if answer is not None:
            votes[answer] = votes.get(answer, 0) + 1
    top = max(votes.values(), default=0)
    voted = next((answer for answer, n in votes.items() if n == top), None)
    majority = any(answer == voted and correct is True for answer, correct, _ in solutions) if voted else False
    lowest = [min(scores) if scores else float("-inf") for _, _, scores in solutions]
    best = solutions[lowest.index(max(lowest))][1] is True
    return Reranked(len(solutions), majority, best, any(correct is True for _, correct, _ in solutions))
