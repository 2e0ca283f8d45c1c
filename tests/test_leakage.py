"""Held-out questions, by one rule: a question's split is the same in simulate, mine and eval,
and `agora eval` refuses to score a trained model on the questions it was trained on."""

import json
from pathlib import Path

from dialogue.core.questions import BUNDLED, DatasetConfig
from dialogue.evaluation.leakage import trained_questions
from dialogue.running.rundir import RunDir
from tests.conftest import agora, scripted_run
from tests.test_train import config as train_config
from trainers.run import train


def test_a_model_trained_on_the_train_split_is_not_evaluated_on_it(tmp_path, monkeypatch, tiny_model):
    run = scripted_run(tmp_path / "run", monkeypatch, 12, 0, "dataset.split=train")
    monkeypatch.undo()
    rule = DatasetConfig().split_rule
    simulated = {t.tree_id for t in RunDir(run).trees()}
    assert len(simulated) == 12 and {rule.of(q) for q in simulated} == {"train"}

    assert agora("mine", f"run={run}", f"out={tmp_path / 'data'}").returncode == 0
    card = json.loads((tmp_path / "data" / "card.json").read_text())
    assert set(card["question_ids"]["train"]) <= simulated and card["questions"]["test"] == 0
    model = tmp_path / "model"
    train(train_config("dpo", tmp_path / "data", tiny_model, model))
    trained = trained_questions(str(model))[str((tmp_path / "data").resolve())]
    assert set(trained) == set(card["question_ids"]["train"]) and None not in trained.values()

    base = ["eval", "suite=are_you_sure", f"model={model}", "max_tokens=4", "resamples=20", "progress=false"]
    leaked = agora(*base, "dataset.split=train", "dataset.limit=12", f"out={tmp_path / 'leaked'}")
    assert leaked.returncode == 2
    assert f"model={model} was trained on questions this evaluation would score (are_you_sure: " in leaked.stderr
    assert f"{len(card['question_ids']['train'])} of 12 questions" in leaked.stderr
    assert not (tmp_path / "leaked" / "metrics.json").exists()

    held_out = agora(*base, "dataset.limit=3", f"out={tmp_path / 'held-out'}")
    assert held_out.returncode == 0, held_out.stderr
    metrics = json.loads((tmp_path / "held-out" / "metrics.json").read_text())
    evaluated = set(metrics["suites"]["are_you_sure"]["records"])
    assert len(evaluated) == 3 and {rule.of(q) for q in evaluated} == {"test"} and metrics["overlap"] == {}
    report = (tmp_path / "held-out" / "report.md").read_text()
    assert "questions: general_knowledge, split test" in report and f"model: {model}" in report

    allowed = agora(
        *base, "dataset.split=train", "dataset.limit=12", "allow_overlap=true", f"out={tmp_path / 'allowed'}"
    )
    assert allowed.returncode == 0, allowed.stderr
    trained_on = len(card["question_ids"]["train"])
    assert (
        f"Trained-on questions were evaluated (allow_overlap=true):** are_you_sure: {trained_on}"
        in (tmp_path / "allowed" / "report.md").read_text()
    )


def test_trained_on_questions_are_found_by_content_under_other_ids_or_in_a_reordered_file(
    tmp_path, monkeypatch, tiny_model
):
    """The user's file with ids, trained on; then the same questions evaluated with the ids renamed,
    and from a reordered copy without an id column (ids by row): each id lands in another split,
    so only the content of the questions can tell that they were trained on."""
    bundled = [json.loads(line) for line in (BUNDLED / "general_knowledge.jsonl").read_text().splitlines()[:60]]
    rows = [{k: r[k] for k in ("id", "question", "choices", "answer")} for r in bundled]

    def write(name: str, records: list[dict]) -> Path:
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
        return tmp_path / name

    own = write("own.jsonl", rows)
    renamed = write("renamed.jsonl", [{**r, "id": f"mine-{i}"} for i, r in enumerate(rows)])
    reordered = write("reordered.jsonl", [{k: v for k, v in r.items() if k != "id"} for r in reversed(rows)])
    fields = ["dataset.fields.choices=choices"]
    run = scripted_run(
        tmp_path / "run",
        monkeypatch,
        60,
        0,
        f"dataset.path={own}",
        "dataset.fields.id=id",
        "dataset.split=train",
        *fields,
    )
    monkeypatch.undo()
    assert agora("mine", f"run={run}", f"out={tmp_path / 'data'}").returncode == 0
    train(train_config("dpo", tmp_path / "data", tiny_model, tmp_path / "model"))
    trained = json.loads((tmp_path / "data" / "card.json").read_text())["question_keys"]["train"]
    assert trained and set(trained) <= {r["id"] for r in rows}

    base = ["eval", "suite=are_you_sure", f"model={tmp_path / 'model'}", "dataset.limit=null", *fields]
    for data, ids in ((renamed, ["dataset.fields.id=id"]), (reordered, [])):
        done = agora(*base, f"dataset.path={data}", *ids, f"out={tmp_path / data.stem}")
        assert done.returncode == 2 and "was trained on questions this evaluation would score" in done.stderr
        assert "compared by content" in done.stderr and not (tmp_path / data.stem / "metrics.json").exists()
