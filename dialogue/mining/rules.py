"""Mining dialogue trees: pure functions from trees to training examples, no model calls.

PBT preference pairs (docs/design.md, section 6). Take a turn P by agent X whose children are turns by
another agent Y (Y responding to X under different instructions). With `y_prev` Y's answer at
Y's last turn above P and `x` X's answer at P, and only where the two differ:
- x wrong, y_prev correct (misleading persuasion): a child keeping a correct answer is chosen
  over a child moving to a wrong one; label `resist`.
- x correct, y_prev wrong (correct persuasion): a child adopting a correct answer is chosen over
  a child staying wrong; label `accept`.
- both wrong, or Y never spoke before P: no pair.
This holds at every level of the tree. With `score="subtree"` a child is scored by the mean
correctness of Y's answers over its whole subtree, and two children are paired when their
scores differ by at least `margin`, the higher one chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Literal

import networkx as nx

from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols.reverse import backward_gold

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Pair:
    tree_id: str
    question_id: str
    label: Literal["accept", "resist"]
    level: int  # depth of the two responses
    persuasion: str  # id of P, the turn both responses answer
    chosen: Turn
    rejected: Turn


# Why a persuasion turn gave no pair, in the order they are tested: the first that holds is
# its reason. Counted per split in the card of `agora mine` (docs/design.md, section 6).
LOST_REASONS = (
    "no_sibling",  # fewer than two replies to it
    "unreadable_persuasion",  # the persuader's answer could not be read
    "unreadable_before",  # the responder's earlier answer, the one the persuasion disputes, could not be read
    "no_disagreement",  # the persuader argued for the answer the responder already held
    "both_wrong",  # they disagreed, but neither answer was correct
    "conflict",  # a reply that might have made a pair named one choice's letter with another's text
    "unreadable_reply",  # a reply that might have made a pair gave no answer the judge could read
    "same_outcome",  # every reply was right, or every reply wrong (or their subtree scores too close)
    "identical_texts",  # the replies that differ in correctness have the same words
)


@dataclass(frozen=True)
class PersuasionOutcome:
    """A turn answered by several replies of one responder, and the pairs it gave or why none."""

    tree_id: str
    question_id: str
    turn: str  # the persuasion turn's id
    pairs: tuple[Pair, ...]
    lost: str | None  # one of LOST_REASONS when `pairs` is empty


def pbt_pairs(
    tree: DialogueTree,
    score: Literal["immediate", "subtree"] = "immediate",
    margin: float = 0.5,
    responders: set[str] | None = None,
    levels: set[int] | None = None,
    held: bool = False,
) -> list[Pair]:
    """The pairs of a tree whose responses are by one of `responders` (None: any agent) at one of
    `levels` (depths; None: any); `held`: see `persuasion_outcomes`."""
    return pairs_in(persuasion_outcomes(tree, score, margin, responders, levels, held))


def pairs_in(outcomes: list[PersuasionOutcome]) -> list[Pair]:
    """The pairs of persuasion outcomes, by level, persuasion turn, chosen and rejected turn."""
    pairs = [p for outcome in outcomes for p in outcome.pairs]
    return sorted(pairs, key=lambda p: (p.level, p.persuasion, p.chosen.id, p.rejected.id))


def persuasion_outcomes(
    tree: DialogueTree,
    score: Literal["immediate", "subtree"] = "immediate",
    margin: float = 0.5,
    responders: set[str] | None = None,
    levels: set[int] | None = None,
    held: bool = False,
) -> list[PersuasionOutcome]:
    """Every persuasion turn of the tree that could give pairs: a turn by X answered by another
    agent Y (one of `responders`, at one of `levels`) who had answered before it. Each comes with
    its pairs, or the first of LOST_REASONS that kept it from giving one. With `held`, a
    persuasion turn whose answer cannot be read argues for the answer its speaker last gave that
    could be (pbt_tree tells the persuader to argue for its own answer); by default it gives none."""
    outcomes = []
    for persuasion, before, children in persuasion_turns(tree, responders, levels):
        argued = (
            last_read_turn(tree, persuasion.speaker, persuasion.id)
            if held and persuasion.answer is None
            else persuasion
        )
        pairs, lost = _pairs_of(tree, persuasion, argued or persuasion, before, children, score, margin)
        outcomes.append(PersuasionOutcome(tree.tree_id, tree.question.question_id, persuasion.id, tuple(pairs), lost))
    return outcomes


def persuasion_turns(
    tree: DialogueTree, responders: set[str] | None = None, levels: set[int] | None = None
) -> list[tuple[Turn, Turn, list[Turn]]]:
    """(P, Y's last turn before P, Y's replies to P) for every turn P by X answered by another agent
    Y (one of `responders`, at one of `levels`; None: any) who had answered before it."""
    found = []
    for p_id in tree.graph.nodes:
        children = [tree.turn(c) for c in tree.children(p_id)]
        if not children:
            continue
        persuasion = tree.turn(p_id)
        responder = children[0].speaker
        if responder == persuasion.speaker or any(c.speaker != responder for c in children):
            continue
        if (responders is not None and responder not in responders) or (
            levels is not None and children[0].depth not in levels
        ):
            continue
        before = last_turn_of(tree, responder, persuasion.parent)
        if before is not None:  # else an independent first answer: nothing was disputed
            found.append((persuasion, before, children))
    return found


def _pairs_of(
    tree: DialogueTree,
    persuasion: Turn,
    argued: Turn,
    before: Turn,
    children: list[Turn],
    score: str,
    margin: float,
) -> tuple[list[Pair], str | None]:
    """The pairs of one persuasion turn, whose answer is `argued`'s, or why it has none."""
    if len(children) < 2:
        return [], "no_sibling"
    if argued.answer is None or argued.correct is None:
        return [], "unreadable_persuasion"
    if before.answer is None or before.correct is None:
        return [], "unreadable_before"
    if argued.answer == before.answer:
        return [], "no_disagreement"
    label = _situation(argued, before)
    if label is None:
        return [], "both_wrong"
    if score == "immediate":
        scored = [(c, 1.0 if c.correct else 0.0) for c in children if c.correct is not None]
        needed = 1.0
    else:
        scored = [(c, s) for c in children if (s := subtree_score(tree, c.id, before.speaker)) is not None]
        needed = margin
    contrasts = [(a, b) for (a, score_a), (b, score_b) in product(scored, scored) if score_a - score_b >= needed]
    pairs = [
        Pair(tree.tree_id, tree.question.question_id, label, a.depth, persuasion.id, a, b)
        for a, b in contrasts
        if a.text.strip() != b.text.strip()
    ]
    if pairs:
        return pairs, None
    if contrasts:
        return [], "identical_texts"
    unscored = [c for c in children if all(c is not s for s, _ in scored)]
    if any((c.parsed or {}).get("judge") == "conflict" for c in unscored):
        return [], "conflict"
    return [], "unreadable_reply" if unscored else "same_outcome"


def last_read_turn(tree: DialogueTree, speaker: str, turn_id: str) -> Turn | None:
    """The latest turn by `speaker` on the path to `turn_id`, inclusive, whose answer was read."""
    return next((t for t in reversed(tree.path(turn_id)) if t.speaker == speaker and t.answer is not None), None)


def last_turn_of(tree: DialogueTree, speaker: str, turn_id: str | None) -> Turn | None:
    """The latest turn by `speaker` on the path from the root to `turn_id`, inclusive."""
    if turn_id is None:
        return None
    for turn in reversed(tree.path(turn_id)):
        if turn.speaker == speaker:
            return turn
    return None


def subtree_score(tree: DialogueTree, turn_id: str, speaker: str) -> float | None:
    """Mean correctness of `speaker`'s judged answers in the subtree rooted at `turn_id`."""
    ids = [turn_id, *nx.descendants(tree.graph, turn_id)]
    verdicts = [tree.graph.nodes[i]["correct"] for i in ids if tree.graph.nodes[i]["speaker"] == speaker]
    verdicts = [v for v in verdicts if v is not None]
    return sum(verdicts) / len(verdicts) if verdicts else None


def _situation(persuasion: Turn, before: Turn) -> Literal["accept", "resist"] | None:
    """Misleading (resist) or correct (accept) persuasion of an answer read on both sides."""
    if not persuasion.correct and before.correct:
        return "resist"
    if persuasion.correct and not before.correct:
        return "accept"
    return None


@dataclass(frozen=True)
class AnswerGroup:
    """Several answers by one speaker to the same context, split by correctness (AFT)."""

    tree_id: str
    question_id: str
    parent: str  # the turn they answer
    speaker: str
    level: int
    positives: tuple[Turn, ...]
    negatives: tuple[Turn, ...]
    ranked: tuple[Turn, ...]  # best first: correct before wrong, then by subtree score


def aft_groups(
    tree: DialogueTree, responders: set[str] | None = None, levels: set[int] | None = None
) -> list[AnswerGroup]:
    """Sibling answers by one speaker with at least one correct and one wrong among them, by one
    of `responders` (None: any agent) at one of `levels` (None: any)."""
    groups = []
    for parent in tree.graph.nodes:
        by_speaker: dict[str, list[Turn]] = {}
        for i in tree.children(parent):
            turn = tree.turn(i)
            if (responders is not None and turn.speaker not in responders) or (
                levels is not None and turn.depth not in levels
            ):
                continue
            if turn.correct is not None and turn.text.strip():
                by_speaker.setdefault(turn.speaker, []).append(turn)
        for speaker, answers in by_speaker.items():
            positives = tuple(a for a in answers if a.correct)
            negatives = tuple(a for a in answers if not a.correct)
            if not positives or not negatives:
                continue

            ranked = tuple(sorted(answers, key=lambda turn, s=speaker: _rank_key(tree, turn, s)))
            groups.append(
                AnswerGroup(
                    tree.tree_id,
                    tree.question.question_id,
                    parent,
                    speaker,
                    answers[0].depth,
                    positives,
                    negatives,
                    ranked,
                )
            )
    return groups


def _rank_key(tree: DialogueTree, turn: Turn, speaker: str) -> tuple:
    """Correct before wrong, then by how well the answer survived persuasion below it."""
    survival = subtree_score(tree, turn.id, speaker)
    return (not turn.correct, -(survival if survival is not None else 0.0), turn.id)


@dataclass(frozen=True)
class CritiqueExamples:
    """What a `critique` tree teaches. The truth a critique is held to is the judged correctness
    of the solution's final answer: the data has no per-step labels to check steps against."""

    critiques: list[Turn]  # answer verdict matches the truth
    critique_pairs: list[tuple[Turn, Turn]]  # (right verdict, wrong verdict) on one solution
    corrections: list[Turn]  # a wrong solution fixed after a critique that rightly called it wrong
    revision_pairs: list[tuple[Turn, Turn, str]]  # (correct, wrong, "fix" or "keep") under one critique


def critique_examples(tree: DialogueTree) -> CritiqueExamples:
    solution = tree.turn(tree.root())
    critics = [tree.turn(c) for c in tree.children(solution.id)]
    if solution.correct is None:
        return CritiqueExamples([], [], [], [])
    judged = [c for c in critics if c.parsed is not None and "error" not in c.parsed]
    right = [c for c in judged if c.parsed["answer_correct"] == solution.correct]
    wrong = [c for c in judged if c.parsed["answer_correct"] != solution.correct]
    corrections, revision_pairs = [], []
    for critic in critics:
        revisions = [tree.turn(r) for r in tree.children(critic.id)]
        if not solution.correct and critic in right:
            corrections += [r for r in revisions if r.correct]
        label = "keep" if solution.correct else "fix"
        revision_pairs += [
            (a, b, label)
            for a, b in product(revisions, revisions)
            if a.correct is True and b.correct is False and a.text.strip() != b.text.strip()
        ]
    return CritiqueExamples(right, list(product(right, wrong)), corrections, revision_pairs)


def reverse_turns(tree: DialogueTree) -> dict[str, Turn]:
    """A reverse tree's turns by instruction (one path: one turn each, failed ones left out)."""
    return {t.instruction: t for t in tree.turns() if t.gen is None or t.gen.error is None}


def verified(tree: DialogueTree, turns: dict[str, Turn]) -> bool:
    """A reverse tree teaches only when verified (RevThink): a right forward answer, a backward
    answer that is right where it can be checked (the starting amount of an arithmetic problem),
    and a consistency check that found the two consistent."""
    if len(turns) < 4 or turns["forward"].correct is not True:
        return False
    if backward_gold(tree.question) is not None and turns["backward_reasoning"].correct is not True:
        return False
    return (turns["consistency"].parsed or {}).get("consistent") is True
