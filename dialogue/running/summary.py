"""Run-level numbers printed at the end of `agora simulate` and stored in the manifest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from dialogue.core.tree import DialogueTree, Turn
from dialogue.running.engine import Stats


@dataclass
class Summary:
    trees: int = 0
    turns: int = 0
    first_answer_accuracy: dict[str, float] = field(default_factory=dict)
    # A persuasion attempt: a turn answering an agent who argued for a different answer than
    # the responder held before. Counted for the responders named in `summarize`.
    attempts: int = 0
    changed: int = 0
    correct_to_wrong: int = 0
    wrong_to_correct: int = 0
    # per agent: generated turns that were asked for an answer and gave none the judge could
    # read, and those whose letter and choice text disagreed (read as no answer, unless
    # dataset.judge_conflict settles them)
    unreadable: dict[str, int] = field(default_factory=dict)
    conflicts: dict[str, int] = field(default_factory=dict)
    failed_turns: int = 0  # requests that errored; the same command again regrows them

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Persuasion:
    attempts: int = 0
    changed: int = 0
    correct_to_wrong: int = 0
    wrong_to_correct: int = 0


def persuasion(tree: DialogueTree, responders: set[str] | None = None) -> Persuasion:
    """The persuasion attempts in one tree: turns of a responder (None: any agent) answering
    another agent who argued for a different answer than the responder held before."""
    return _persuasion({turn.id: turn for turn in tree.turns()}, responders)


def _persuasion(turns: dict[str, Turn], responders: set[str] | None) -> Persuasion:
    found = Persuasion()
    for turn in turns.values():
        if turn.parent is None or (responders is not None and turn.speaker not in responders):
            continue
        persuader = turns[turn.parent]
        if persuader.parent is None or persuader.speaker == turn.speaker:
            continue
        before = turns[persuader.parent]
        if before.speaker != turn.speaker or persuader.answer == before.answer:
            continue
        found.attempts += 1
        found.changed += turn.answer != before.answer
        found.correct_to_wrong += before.correct is True and turn.correct is not True
        found.wrong_to_correct += before.correct is not True and turn.correct is True
    return found


def judge_counts(trees: Iterable[DialogueTree], free_form: set[str] = frozenset()) -> dict[str, dict[str, int]]:
    """Per agent, how many of its generated turns gave no readable answer, and how many were
    letter/text conflicts, among turns whose instruction asked for an answer (not `free_form`)."""
    counts: dict[str, dict[str, int]] = {"unreadable": {}, "conflicts": {}}
    for tree in trees:
        _count_unread(tree.turns(), free_form, counts)
    return {kind: dict(sorted(found.items())) for kind, found in counts.items()}


def _count_unread(turns: list[Turn], free_form: set[str], counts: dict[str, dict[str, int]]) -> None:
    for turn in turns:
        if turn.gen is None or turn.gen.error is not None or turn.instruction in free_form:
            continue
        if turn.answer is None and not turn.agrees_with_parent:
            counts["unreadable"][turn.speaker] = counts["unreadable"].get(turn.speaker, 0) + 1
        if (turn.parsed or {}).get("judge") == "conflict":
            counts["conflicts"][turn.speaker] = counts["conflicts"].get(turn.speaker, 0) + 1


class Summarizer:
    """A run's summary, its trees added one at a time as they are written (a run's trees may not
    fit in memory, and reading them back would cost a pass over trees.jsonl)."""

    def __init__(self, responders: set[str] | None = None, free_form: set[str] = frozenset()):
        self.responders, self.free_form = responders, free_form
        self.summary = Summary()
        self.first_correct: dict[str, list[bool]] = {}

    def add(self, tree: DialogueTree) -> None:
        summary = self.summary
        turns = tree.turns()  # read once: the summary looks at each turn several times
        summary.trees += 1
        summary.turns += len(turns)
        summary.failed_turns += sum(turn.failed for turn in turns)
        _count_unread(turns, self.free_form, {"unreadable": summary.unreadable, "conflicts": summary.conflicts})
        first_depth: dict[str, int] = {}
        for turn in turns:
            if turn.gen is not None:  # words given by the protocol are nobody's answer
                first_depth.setdefault(turn.speaker, turn.depth)
        for turn in turns:
            if turn.depth == first_depth.get(turn.speaker):
                self.first_correct.setdefault(turn.speaker, []).append(turn.correct is True)
        found = _persuasion({turn.id: turn for turn in turns}, self.responders)
        summary.attempts += found.attempts
        summary.changed += found.changed
        summary.correct_to_wrong += found.correct_to_wrong
        summary.wrong_to_correct += found.wrong_to_correct

    def result(self) -> Summary:
        summary = self.summary
        summary.first_answer_accuracy = {
            name: sum(flags) / len(flags) for name, flags in sorted(self.first_correct.items())
        }
        summary.unreadable, summary.conflicts = (
            dict(sorted(summary.unreadable.items())),
            dict(sorted(summary.conflicts.items())),
        )
        return summary


def summarize(
    trees: Iterable[DialogueTree], responders: set[str] | None = None, free_form: set[str] = frozenset()
) -> Summary:
    """One pass over `trees`, holding one at a time."""
    summarizer = Summarizer(responders, free_form)
    for tree in trees:
        summarizer.add(tree)
    return summarizer.result()


def format_summary(summary: Summary, stats: Stats) -> str:
    accuracy = ", ".join(f"{name} {acc:.0%}" for name, acc in summary.first_answer_accuracy.items())
    return "\n".join(
        [
            f"trees: {summary.trees}   turns: {summary.turns}",
            f"generated tokens: {stats.generated_tokens}   tokens/s: {stats.tokens_per_s:.1f}"
            + (f"   (cached turns: {stats.cached_turns})" if stats.cached_turns else ""),
            *(
                [
                    f"prompt tokens: {stats.prompt_tokens}   read from the backend's prefix cache: "
                    f"{stats.prefix_hit_rate:.0%}"
                ]
                if stats.prompt_tokens
                else []
            ),
            f"first-answer accuracy: {accuracy}",
            f"persuasion attempts: {summary.attempts}   changed the answer: {summary.changed}"
            f"   correct->wrong: {summary.correct_to_wrong}   wrong->correct: {summary.wrong_to_correct}",
            f"answers the judge could not read: {per_agent(summary.unreadable)}"
            f"   letter/text conflicts: {per_agent(summary.conflicts)}",
            *(
                [
                    f"failed turns: {summary.failed_turns} (requests that errored; the run is incomplete: run the same "
                    "command again to regrow them)"
                ]
                if summary.failed_turns
                else []
            ),
        ]
    )


def per_agent(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "0"
