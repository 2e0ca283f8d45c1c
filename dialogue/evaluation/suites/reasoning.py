"""`reasoning`: the model solves generated arithmetic problems in numbered steps, and its steps
are held against each problem's worked steps (MME-CoT's precision, recall and relevance)."""

from __future__ import annotations

from pathlib import Path

from dialogue.core.tree import DialogueTree, Turn
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.records import reasoned
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, simulate_suite
from dialogue.evaluation.suites.critique import critique_dataset
from dialogue.protocols.base import ChildSpec, Delegating
from dialogue.protocols.critique import Critique


class SolveOnly(Delegating):
    """The critique protocol's first turn alone: the answerer's own numbered solution."""

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        return []


def reasoning(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    protocol = SolveOnly(Critique(config.protocols["critique"]))
    trees = simulate_suite(
        config,
        shared,
        "reasoning",
        folder / "run",
        protocol_config=config.protocols["critique"],
        protocol=protocol,
        dataset=critique_dataset(config),
    )
    records = {t.tree_id: [reasoned(t)] for t in trees}
    return SuiteResult(records, {"steps_per_problem": config.critique.steps})


SUITES = {
    "reasoning": Suite(
        reasoning,
        lambda details: m.REASONING,
        "The model solves arithmetic problems in numbered steps, checked against the worked steps (MME-CoT): "
        "precision = steps whose arithmetic holds / steps with arithmetic; recall = the worked steps' values it "
        "arrives at / worked steps; relevance = steps arriving at a worked value / all steps.",
        questions=critique_dataset,
        source=lambda config: (
            f"generated arithmetic problems (count {config.critique.count}, seed {config.critique.seed}, "
            f"{config.critique.steps} steps)"
        ),
    )
}
