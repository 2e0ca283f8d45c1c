"""Which questions a trained model has seen: an evaluation must not score a model on them.

`agora train` writes `train.json` naming the export it trained on; the export's `card.json` names
the questions of its train split. A model trained from another trained model has seen that
one's questions too, so the chain of `train.json` files is followed to its base model.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from agents.errors import AgoraError
from dialogue.records import Card, train_summary


def trained_questions(model: str) -> dict[str, dict[str, str | None]]:
    """Export folder -> its train split's questions (id -> content key, or None in an export
    written before cards held keys), for every training run that led to `model`; empty for a
    model that `agora train` did not write."""
    found: dict[str, dict[str, str | None]] = {}
    folder, seen = Path(model).expanduser(), set()
    while (folder / "train.json").is_file() and folder.resolve() not in seen:
        seen.add(folder.resolve())
        summary = train_summary(folder)
        export = Path(summary.data.path)
        found[str(export)] = _train_questions(export, model)
        folder = Path(summary.model).expanduser()
    return found


def _train_questions(export: Path, model: str) -> dict[str, str | None]:
    card_file = export / "card.json"
    if not card_file.is_file():
        raise AgoraError(
            f"model={model} was trained on data={export}, which is not here (no card.json), so the "
            "evaluation cannot tell which questions it was trained on; allow_overlap=true evaluates "
            "without that check"
        )
    if trained := Card.read(card_file).train_questions():
        return trained
    # an export written before cards named their questions: read them from the train files
    ids = {
        qid
        for path in sorted(export.glob("**/train.parquet"))
        for qid in pq.read_table(path, columns=["question_id"]).column("question_id").to_pylist()
    }
    return dict.fromkeys(ids)


def check_overlap(model: str, planned: dict[str, dict[str, str | None]], allow: bool) -> dict[str, list[str]]:
    """Suite -> the trained-on question ids it would score (`planned`: suite -> question id ->
    content key). A question is trained on when its content key is a trained one (whatever its
    id), or, where either side has no key, when its id is. Any at all stops the evaluation,
    naming them, unless `allow`."""
    try:
        trained = trained_questions(model)
    except AgoraError:
        if not allow:
            raise
        return {}  # allowed: which questions it was trained on cannot be told, and need not be
    keys = {key for questions in trained.values() for key in questions.values() if key is not None}
    keyless_ids = {qid for questions in trained.values() for qid, key in questions.items() if key is None}
    all_ids = {qid for questions in trained.values() for qid in questions}

    def seen(qid: str, key: str | None) -> bool:
        if key is None:
            return qid in all_ids
        return key in keys or qid in keyless_ids

    found = {suite: sorted(q for q, k in questions.items() if seen(q, k)) for suite, questions in planned.items()}
    found = {suite: ids for suite, ids in found.items() if ids}
    if found and not allow:
        suites = "; ".join(
            f"{suite}: {len(ids)} of {len(planned[suite])} questions ({', '.join(ids[:3])}"
            f"{', ...' if len(ids) > 3 else ''})"
            for suite, ids in found.items()
        )
        raise AgoraError(
            f"model={model} was trained on questions this evaluation would score ({suites}), compared by "
            f"content, whatever their ids; it was trained on data={', '.join(trained)}. Evaluate held-out "
            "questions (dataset.split=test, the default), or pass allow_overlap=true to evaluate anyway "
            "(the report then says so)"
        )
    return found
