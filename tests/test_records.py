"""The files between stages carry a schema version: an older one is migrated, a newer one refused."""

from __future__ import annotations

import json

import pytest

from agents.errors import AgoraError
from dialogue import records
from dialogue.records import Card, EvalMetrics, RunManifest, TrainSummary, train_summary
from dialogue.running.rundir import RunDir
from tests.conftest import agora, scripted_export, scripted_run


def _rewrite(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def run(tmp_path, monkeypatch):
    return scripted_run(tmp_path / "run", monkeypatch, 4)


def test_every_record_written_today_carries_its_version(run, tmp_path, monkeypatch):
    assert json.loads((run / "manifest.json").read_text())["schema_version"] == RunManifest.VERSION
    line = json.loads((run / "trees.jsonl").read_text().splitlines()[0])
    assert line["graph"]["schema_version"] == records.TREE_VERSION
    export = scripted_export(tmp_path / "exports", "pbt")
    assert json.loads((export / "card.json").read_text())["schema_version"] == Card.VERSION


def test_a_tree_line_of_a_newer_schema_is_refused_naming_both_versions_and_the_line(run):
    _rewrite_line(run, 1, lambda tree: tree["graph"].update(schema_version=records.TREE_VERSION + 1))
    # refused even where damaged lines would be skipped: every line after it is as unreadable
    with pytest.raises(AgoraError) as error:
        list(RunDir(run).trees(bad_lines=[]))
    message = str(error.value)
    assert f"trees.jsonl:2: written with schema version {records.TREE_VERSION + 1}" in message
    assert f"this agora reads version {records.TREE_VERSION} and older" in message


def test_a_tree_line_of_the_version_before_is_migrated_when_read(run, monkeypatch):
    """The path the next tree format takes: lines of version N-1 are brought up to version N by
    the migration written for them (here a version that renames the instruction `accept`)."""
    current = records.TREE_VERSION
    monkeypatch.setattr(records, "TREE_VERSION", current + 1)

    def rename(line: dict) -> dict:
        for node in line["nodes"]:
            node["instruction"] = {"accept": "yield"}.get(node["instruction"], node["instruction"])
        return line

    monkeypatch.setitem(records.TREE_MIGRATIONS, current, rename)
    trees = list(RunDir(run).trees())
    assert len(trees) == 4 and all(t.graph.graph["schema_version"] == current + 1 for t in trees)
    instructions = {turn.instruction for tree in trees for turn in tree.turns()}
    assert "yield" in instructions and "accept" not in instructions
    # a version with no migration to it is named, not misread
    monkeypatch.setattr(records, "TREE_VERSION", current + 2)
    with pytest.raises(AgoraError, match=f"schema version {current + 1} is older than any this agora can read"):
        list(RunDir(run).trees())


def test_a_manifest_from_before_versions_is_read_and_a_newer_one_refused(run, tmp_path):
    manifest = run / "manifest.json"
    _rewrite(manifest, lambda data: data.pop("schema_version"))
    assert RunDir(run).manifest().status == "complete"
    mined = agora("mine", f"run={run}", f"out={tmp_path / 'mined'}")
    assert mined.returncode == 0, mined.stderr

    _rewrite(manifest, lambda data: data.update(schema_version=RunManifest.VERSION + 1))
    refused = agora("mine", f"run={run}", f"out={tmp_path / 'refused'}")
    assert refused.returncode == 2
    assert f"{manifest}: written with schema version {RunManifest.VERSION + 1}" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_a_card_from_before_keys_is_migrated_and_a_newer_one_refused(tmp_path):
    export = scripted_export(tmp_path / "exports", "pbt")
    card_file = export / "card.json"
    card = Card.read(card_file)
    ids = card.question_ids["train"]
    assert ids and card.train_questions() == card.question_keys["train"]

    def old(data):  # a card written before content keys and versions
        data.pop("schema_version")
        data.pop("question_keys")

    _rewrite(card_file, old)
    assert Card.read(card_file).train_questions() == dict.fromkeys(ids)

    _rewrite(card_file, lambda data: data.update(schema_version=Card.VERSION + 1))
    with pytest.raises(AgoraError, match=rf"card.json: written with schema version {Card.VERSION + 1}"):
        Card.read(card_file)


def test_a_train_summary_from_before_versions_finds_its_export_in_the_train_config(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "train.json").write_text(
        json.dumps({"trainer": "dpo", "stages": {"dpo": {"global_step": 2}}, "model": "base", "saved": "adapter"})
    )
    (folder / "train_config.json").write_text(json.dumps({"run": {"data": {"path": "/data/pbt", "labels": None}}}))
    summary = train_summary(folder)
    assert summary.data.path == "/data/pbt" and summary.schema_version == TrainSummary.VERSION

    _rewrite(folder / "train.json", lambda data: data.update(schema_version=TrainSummary.VERSION + 1))
    with pytest.raises(AgoraError, match=rf"train.json: written with schema version {TrainSummary.VERSION + 1}"):
        train_summary(folder)


def test_metrics_from_before_versions_are_read_and_a_newer_file_refused(tmp_path):
    oldest = {
        "model": "m",
        "persona": "neutral",
        "seed": 0,
        "resamples": 10,
        "suites": {"are_you_sure": {"metrics": {}, "questions": 0, "source": "bundled"}},
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(oldest))
    metrics = EvalMetrics.read(path)
    assert metrics.partner == "m" and metrics.stimulus == "none" and metrics.suites["are_you_sure"].records is None

    path.write_text(json.dumps({**oldest, "schema_version": EvalMetrics.VERSION + 1}))
    with pytest.raises(AgoraError, match=f"schema version {EvalMetrics.VERSION + 1}, and this agora reads"):
        EvalMetrics.read(path)


def test_a_record_with_a_wrong_field_names_the_file_and_the_key(run):
    _rewrite(run / "manifest.json", lambda data: data.update(status="done"))
    with pytest.raises(AgoraError, match=r"manifest.json: status: Input should be 'running', 'complete' or"):
        RunDir(run).manifest()


def _rewrite_line(run, index: int, change) -> None:
    lines = (run / "trees.jsonl").read_text().splitlines(keepends=True)
    tree = json.loads(lines[index])
    change(tree)
    lines[index] = json.dumps(tree) + "\n"
    (run / "trees.jsonl").write_text("".join(lines))


def test_a_manifest_cut_short_is_named_and_the_run_goes_on_once_it_is_moved_aside(tmp_path, monkeypatch):
    run = scripted_run(tmp_path / "run", monkeypatch, 4)
    trees = (run / "trees.jsonl").read_text()
    manifest = run / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])  # a full disk cut it
    done = agora("mine", f"run={run}", f"out={tmp_path / 'data'}")
    assert done.returncode == 2 and f"{manifest}: cannot be read as JSON" in done.stderr
    assert "move it aside and run the same command again" in done.stderr and "Traceback" not in done.stderr
    manifest.rename(tmp_path / "manifest.json.bad")
    scripted_run(run, monkeypatch, 4)
    assert RunDir(run).manifest().status == "complete" and (run / "trees.jsonl").read_text() == trees


def test_a_question_file_edited_in_place_is_refused_on_rerun(tmp_path, monkeypatch):
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "choices": ["a", "b"], "answer": "A"} for i in range(3)]
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = [f"dataset.path={data}", "dataset.fields.id=id", "dataset.fields.choices=choices"]
    run = scripted_run(tmp_path / "run", monkeypatch, 3, 0, *fields)
    assert RunDir(run).manifest().dataset.sha256 is not None
    scripted_run(run, monkeypatch, 3, 0, *fields)  # the same file: the rerun is welcome
    rows[1]["answer"] = "B"  # a gold answer corrected in place
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AgoraError, match=r"the question file .*questions.jsonl changed since this run began"):
        scripted_run(run, monkeypatch, 3, 0, *fields)


def test_a_run_made_before_an_option_existed_resumes_under_its_default(tmp_path, monkeypatch):
    run = scripted_run(tmp_path / "run", monkeypatch, 2)
    _rewrite(run / "manifest.json", lambda data: data["config"]["dataset"].pop("judge_max_chars"))
    scripted_run(run, monkeypatch, 2)  # not refused: the option's default is what the run had
    with pytest.raises(AgoraError, match=r"another config \(differing: dataset.judge_max_chars\)"):
        scripted_run(run, monkeypatch, 2, 0, "dataset.judge_max_chars=5000")
