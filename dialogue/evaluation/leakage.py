"""Which questions a trained model has seen: an evaluation must not score a model on them.

`agora train` writes `train.json` naming the export it trained on; the export's `card.json` names
the questions of its train split. A model trained from another trained model has seen that
one's questions too, so the chain of `train.json` files is followed to its base model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from agents.errors import AgoraError


def trained_questions(model: str) -> dict[str, set[str]]:
    """Export folder -> the question ids of its train split, for every training run that led to
    `model`; empty for a model that `agora train` did not write."""
    found: dict[str, set[str]] = {}
    folder, seen = Path(model).expanduser(), set()
    while (folder / "train.json").is_file() and folder.resolve() not in seen:
        seen.add(folder.resolve())
        summary = json.loads((folder / "train.json").read_text())
        data = summary.get("data") or json.loads((folder / "train_config.json").read_text())["run"]["data"]
        export = Path(data["path"])
        found[str(export)] = _train_ids(export, model)
        folder = Path(summary.get("model", "")).expanduser()
    return found


def _train_ids(export: Path, model: str) -> set[str]:
    card = export / "card.json"
    if not card.is_file():
        raise AgoraError(
            f"model={model} was trained on data={export}, which is not here (no card.json), so the "
            "evaluation cannot tell which questions it was trained on; allow_overlap=true evaluates "
            "without that check"
        )
    ids = json.loads(card.read_text()).get("question_ids", {}).get("train")
    if ids is not None:
        return set(ids)
    # an export written before cards named their questions: read them from the train files
    return {
        qid
        for path in sorted(export.glob("**/train.parquet"))
        for qid in pq.read_table(path, columns=["question_id"]).column("question_id").to_pylist()
    }


def check_overlap(model: str, planned: dict[str, set[str]], allow: bool) -> dict[str, list[str]]:
    """Suite -> the trained-on question ids it would score (`planned`: suite -> question ids).
    Any at all stops the evaluation, naming them, unless `allow`."""
    try:
        trained = trained_questions(model)
    except AgoraError:
        if not allow:
            raise
        return {}  # allowed: which questions it was trained on cannot be told, and need not be
    seen = set().union(*trained.values()) if trained else set()
    found = {suite: sorted(ids & seen) for suite, ids in planned.items() if ids & seen}
    if found and not allow:
        suites = "; ".join(
            f"{suite}: {len(ids)} of {len(planned[suite])} questions ({', '.join(ids[:3])}"
            f"{', ...' if len(ids) > 3 else ''})"
            for suite, ids in found.items()
        )
        raise AgoraError(
            f"model={model} was trained on questions this evaluation would score ({suites}); it was "
            f"trained on data={', '.join(trained)}. Evaluate held-out questions (dataset.split=test, "
            "the default), or pass allow_overlap=true to evaluate anyway (the report then says so)"
        )
    return found
