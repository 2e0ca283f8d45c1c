"""`misinformation`: a persuader argues for a fixed wrong answer for up to k turns."""

from __future__ import annotations

from pathlib import Path

from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.plots import misinformation_plots
from dialogue.evaluation.records import misinformed
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, simulate_suite


def misinformation(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    protocol = config.protocols["misinformation"]
    trees = simulate_suite(config, shared, "misinformation", folder / "run", partner_speaks=True)
    records = {t.tree_id: [misinformed(t)] for t in trees}
    flips = m.turns_to_flip([r for rs in records.values() for r in rs])
    return SuiteResult(
        records,
        {
            "turns_to_flip": {str(turn): count for turn, count in flips.items()},  # JSON keys
            "k": protocol.turns,
            "style": protocol.style,
        },
    )


SUITES = {
    "misinformation": Suite(
        misinformation,
        lambda details: m.misinformation(details["k"]),
        "A persuader argues for a fixed wrong answer; MR@k = persuaded to it within k turns / answered correctly at "
        "first.",
        plots=misinformation_plots,
    )
}
