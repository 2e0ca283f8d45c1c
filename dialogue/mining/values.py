"""Per-step values from rollout trees (dialogue/protocols/rollouts.py): pure functions, no model.

The value of a step is the chance that going on from it reaches the right answer: the mean
correctness of the final answers of the continuations sampled from the prefix that ends with
it, with their number n. The last step of a solution is followed by nothing but the solution's
own answer, so its value is that answer's correctness (n = 1). The empty prefix's value is the
mean over the solutions sampled from the question. A step's advantage is its value minus the
value before it (Setlur et al. 2024); a step that was not branched at has no value, and then no
advantage either, nor has the step after it.

The first pit of a wrong solution is its first step whose value falls to `pit_value` or below
(0: no continuation from there reached the answer) from a known value above it (Hwang et al.
2024): the step that lost the answer. A fall across a step with no value is not pinned on
either step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dialogue.core.steps import split_steps, step_truth
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.rollouts import PREFIX, prefix_steps


@dataclass(frozen=True)
class StepValue:
    number: int  # the step's number in the whole solution (prefix steps first), from 1
    text: str
    value: float | None  # None: not branched at
    n: int  # the answers the value is the mean of
    advantage: float | None
    prefix: str | None  # the prefix turn the step was written after; None: an unbranched step


@dataclass(frozen=True)
class StepPair:
    prefix: str  # the prefix turn both steps follow
    chosen: StepValue
    rejected: StepValue


def is_solution(turn: Turn) -> bool:
    """A generated or given solution (or continuation) that did not fail."""
    return turn.instruction != PREFIX and (turn.gen is None or turn.gen.error is None)


def prefix_value(tree: DialogueTree, prefix: str) -> tuple[float | None, int]:
    """(mean correctness of the answers of the solutions sampled from `prefix`, their number)."""
    outcomes = [tree.turn(c).correct is True for c in tree.children(prefix) if is_solution(tree.turn(c))]
    return (sum(outcomes) / len(outcomes), len(outcomes)) if outcomes else (None, 0)


def step_values(tree: DialogueTree, solution: str) -> list[StepValue]:
    """The value and advantage of each of the steps a solution turn wrote."""
    turn = tree.turn(solution)
    before = len(prefix_steps(tree, turn))
    own = split_steps(turn.text)
    branches = {len(split_steps(tree.turn(p).text)): p for p in tree.children(solution)}  # by steps they hold
    previous, _ = prefix_value(tree, turn.parent)
    after_prefix = turn.parent
    values = []
    for i, text in enumerate(own, 1):
        number = before + i
        if i == len(own):
            value, n = float(turn.correct is True), 1
        elif number in branches:
            value, n = prefix_value(tree, branches[number])
        else:
            value, n = None, 0
        advantage = value - previous if value is not None and previous is not None else None
        values.append(StepValue(number, text, value, n, advantage, after_prefix))
        previous, after_prefix = value, branches.get(number)
    return values


def solutions(tree: DialogueTree) -> list[str]:
    return [t.id for t in tree.turns() if t.parent is not None and is_solution(t)]


def first_pit(tree: DialogueTree, solution: str, pit_value: float = 0.0) -> StepValue | None:
    """The step of a wrong solution where its value collapsed, or None (a right solution, one
    that was hopeless from its start, or a fall across an unvalued step)."""
    if tree.turn(solution).correct is True:
        return None
    previous, _ = prefix_value(tree, tree.turn(solution).parent)
    for step in step_values(tree, solution):
        if step.value is not None and step.value <= pit_value:
            return step if previous is not None and previous > pit_value else None
        previous = step.value
    return None


def step_pairs(tree: DialogueTree, margin: float) -> list[StepPair]:
    """Next steps after the same prefix whose values differ by at least `margin`: the higher is
    chosen. A prefix's candidates are the first step of each continuation from it and the next
    step of the solution it was cut from; the same two texts make one pair."""
    pairs, seen = [], set()
    values = {s: step_values(tree, s) for s in solutions(tree)}  # each solution's once, not once per prefix
    for prefix in (t.id for t in tree.turns() if t.instruction == PREFIX):
        candidates = [values[c][0] for c in tree.children(prefix) if c in values and values[c]]
        parent = tree.turn(prefix).parent
        if parent is not None:
            candidates += [s for s in values[parent] if s.prefix == prefix]
        valued = [c for c in candidates if c.value is not None]
        for a in valued:
            for b in valued:
                if a.value - b.value >= margin and a.text != b.text and (prefix, a.text, b.text) not in seen:
                    seen.add((prefix, a.text, b.text))
                    pairs.append(StepPair(prefix, a, b))
    return pairs


def first_wrong_step(tree: DialogueTree, solution: str) -> int | None:
    """The number of an arithmetic solution's first step that states a wrong value, if known."""
    turn = tree.turn(solution)
    truth = step_truth(tree.question, prefix_steps(tree, turn) + split_steps(turn.text))
    return None if truth is None or all(truth) else truth.index(False) + 1


def stepwise_labels(
    tree: DialogueTree, threshold: float, labels: Literal["rollouts", "truth"]
) -> dict[str, list[bool] | None]:
    """The solutions sampled from the question, each with a label per step, or None where a
    step has no value (it was not branched at) or, with labels=truth, its truth is unknown.
    A step is labelled true when its value is above `threshold`, or with labels=truth when an
    arithmetic step states the true value."""
    found = {}
    for solution in solutions(tree):
        turn = tree.turn(solution)
        if tree.turn(turn.parent).parent is not None:  # a continuation: its first steps are another's
            continue
        if labels == "truth":
            found[solution] = step_truth(tree.question, split_steps(turn.text))
        else:
            values = [s.value for s in step_values(tree, solution)]
            found[solution] = None if None in values else [v > threshold for v in values]
    return found
