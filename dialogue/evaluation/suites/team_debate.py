"""`team_debate`: the model and its partner answer alone, then debate; both speaking orders."""

from __future__ import annotations

from pathlib import Path

from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EVALUATED, PARTNER, EvalConfig
from dialogue.evaluation.records import debated
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, by_question, simulate_suite


def team_debate(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    keyed = []
    for order, agents in ((1, [EVALUATED, PARTNER]), (2, [PARTNER, EVALUATED])):
        protocol = config.protocols["team_debate"].model_copy(update={"agents": agents})
        trees = simulate_suite(config, shared, "team_debate", folder / f"order{order}", protocol, partner_speaks=True)
        for tree in trees:
            keyed += [(tree.tree_id, record) for record in debated(tree, order, [EVALUATED, PARTNER])]
    return SuiteResult(by_question(keyed))


SUITES = {
    "team_debate": Suite(
        team_debate,
        lambda details: m.TEAM_DEBATE,
        "Two agents answer on their own, then debate four turns; team accuracy is the mean of both agents' "
        "correctness, per speaking order (order 1: the model speaks first).",
    )
}
