"""`critique`: the model critiques worked arithmetic solutions whose step truth is known, then revises."""

from __future__ import annotations

from pathlib import Path

from dialogue.core.questions import DatasetConfig
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.records import revised, verdicts
from dialogue.evaluation.solutions import GivenSolutions, worked_solutions
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, simulate_suite
from dialogue.protocols.critique import Critique


def critique_dataset(config: EvalConfig) -> DatasetConfig:
    """The arithmetic problems the critique suite's solutions are for, in the evaluated split."""
    data, split = config.critique, config.dataset
    return DatasetConfig(
        name="arithmetic",
        count=data.count,
        seed=data.seed,
        steps=data.steps,
        split=split.split,
        split_seed=split.split_seed,
        split_fractions=split.split_fractions,
    )


def critique(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    data = config.critique
    solutions = {
        s.question.question_id: s for s in worked_solutions(data.count, data.seed, data.steps, data.wrong_fraction)
    }
    protocol = GivenSolutions(Critique(config.protocols["critique"]), {k: s.text for k, s in solutions.items()})
    dataset = critique_dataset(config)
    trees = simulate_suite(config, shared, "critique", folder / "run", protocol=protocol, dataset=dataset)
    records = {t.tree_id: verdicts(t, solutions[t.tree_id]) + revised(t) for t in trees}
    unreadable = sum(1 for t in trees for c in t.turns() if c.depth == 1 and (c.parsed is None or "error" in c.parsed))
    wrong = sum(1 for t in trees if not solutions[t.tree_id].answer_correct)
    return SuiteResult(records, {"unreadable_critiques": unreadable, "given_solutions_wrong": wrong})


SUITES = {
    "critique": Suite(
        critique,
        lambda details: m.CRITIQUE,
        "The model critiques worked solutions with known step truth (F1 with 'incorrect' as the positive class), "
        "then revises; correction gain = fix rate - break rate.",
        questions=critique_dataset,
        source=lambda config: (
            f"worked solutions to arithmetic problems (count {config.critique.count}, seed {config.critique.seed})"
        ),
    )
}
