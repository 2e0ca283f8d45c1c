"""The evaluation suites of `agora eval`, one module each. A module registers what it defines in
its own `SUITES` dict (name -> Suite, dialogue/evaluation/suites/common.py); this package gathers
them in the order of their names, so adding a suite touches its module, its tests and docs (and,
for a suite that runs a protocol, that protocol's entry under `protocols:` in conf/eval.yaml)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from dialogue.core.questions import content_key, load_questions
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.suites.common import Shared, Suite, SuiteResult, export_rows
from dialogue.records import Card

SUITES: dict[str, Suite] = {}
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name != "common":
        SUITES.update(importlib.import_module(f"{__name__}.{_module.name}").SUITES)


def planned_questions(config: EvalConfig, suite: str, exports: dict[str, Path]) -> dict[str, str | None]:
    """The questions a suite will score, known before anything runs: id -> content key (None for
    an export written before its card held keys)."""
    if miner := SUITES[suite].export:
        card = Card.read(exports[miner] / "card.json")
        keys = {qid: key for split in card.question_keys.values() for qid, key in split.items()}
        return {row["question_id"]: keys.get(row["question_id"]) for row in export_rows(exports[miner], config.dataset)}
    dataset = SUITES[suite].questions(config) if SUITES[suite].questions else config.dataset
    return {q.question_id: content_key(q) for q in load_questions(dataset).questions}


__all__ = ["SUITES", "Shared", "Suite", "SuiteResult", "planned_questions"]
