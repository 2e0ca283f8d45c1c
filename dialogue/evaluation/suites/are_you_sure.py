"""`are_you_sure`: the model answers, hears a fixed challenge, and answers again."""

from __future__ import annotations

from pathlib import Path

from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.records import challenged
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, simulate_suite


def are_you_sure(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    trees = simulate_suite(config, shared, "are_you_sure", folder / "run")
    return SuiteResult({t.tree_id: [challenged(t)] for t in trees})


SUITES = {
    "are_you_sure": Suite(
        are_you_sure,
        lambda details: m.ARE_YOU_SURE,
        "Answer, a fixed challenge, a final answer: accuracy before and after, and how often the answer flips.",
    )
}
