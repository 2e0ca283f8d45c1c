"""`agora tune-prompt`: the search finds a planted phrase on the validation split, and the test
report measures it on questions the search never saw, against no phrase."""

import json

import pytest

from agents.errors import AgoraError
from dialogue.core.questions import load_questions
from dialogue.evaluation.tune import TuneConfig, splice, tune_prompt
from dialogue.running.config import validate
from tests.conftest import agora
from tests.test_eval import scripted_models

PLANTED = "Give the answer you would be proud to stand behind."  # conf/stimulus/positive.yaml: proud


def tune_config(out, *overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(
            config_name="tune-prompt",
            overrides=[f"out={out}", "model=m", "progress=false", "resamples=100", "dataset.limit=6", *overrides],
        )
    return validate(cfg, TuneConfig)


def test_the_search_finds_a_planted_phrase_and_measures_it_on_unseen_questions(tmp_path, monkeypatch):
    config = tune_config(tmp_path / "tune", "tune.population=3", "tune.generations=2")
    everything = config.dataset.model_copy(update={"split": "all", "limit": None})
    questions = {q.question: q for q in load_questions(everything).questions}

    def rule(request):
        asked = next(text for role, text in request.messages if role == "user")
        if asked.startswith("Say the following sentence in other words"):
            return "In other words: " + asked.rsplit("\n", 1)[-1]
        question = next(q for text, q in questions.items() if asked.startswith(text))
        system = next((text for role, text in request.messages if role == "system"), "")
        wrong = next(letter for letter in "ABCD" if letter != question.gold)
        return f"Answer: {question.gold if PLANTED in system else wrong}"

    scripted_models(monkeypatch, {"m": rule})
    result = tune_prompt(config, log=lambda *a, **k: None)
    assert result["finalists"][0]["phrase"] == PLANTED
    assert result["finalists"][0]["test"]["value"] == 1.0 and result["none"]["value"] == 0.0
    assert result["finalists"][0]["minus_none"]["value"] == 1.0
    searched, tested = set(result["searched_questions"]), set(result["test_questions"])
    assert searched and tested and not searched & tested
    lines = (tmp_path / "tune" / "search.jsonl").read_text().splitlines()
    origins = {json.loads(line)["origin"] for line in lines}
    assert {"set", "rewrite"} <= origins and len(lines) == result["phrases_scored"]
    report = (tmp_path / "tune" / "report.md").read_text()
    assert f"| {PLANTED} | 1.000" in report and "none of them searched on" in report

    # the same command again scores nothing anew: every phrase's result is read back
    again = tune_prompt(config, log=lambda *a, **k: None)
    assert again["finalists"] == result["finalists"]
    assert (tmp_path / "tune" / "search.jsonl").read_text().splitlines() == lines


def test_a_splice_joins_the_first_sentence_of_one_phrase_and_the_last_of_another():
    assert splice("Stay calm. Think it through.", "Others did it. You can too!") == "Stay calm. You can too!"


def test_tune_prompt_refuses_what_it_cannot_measure(tmp_path):
    with pytest.raises(AgoraError, match="tune.search_split and tune.test_split must differ"):
        tune_config(tmp_path, "tune.test_split=validation")
    with pytest.raises(AgoraError, match="tune-prompt scores one suite"):
        tune_config(tmp_path, "suite=all")
    done = agora("tune-prompt", "model=smollm2-135m", "tune.sets=[nope]", f"out={tmp_path / 'x'}")
    assert done.returncode == 2 and "tune.sets: no stimulus set 'nope'" in done.stderr, done.stderr


def test_agora_tune_prompt_runs_on_a_model_and_writes_its_report(tmp_path, tiny_model):
    out = tmp_path / "tune"
    args = ["tune-prompt", f"model={tiny_model}", "dataset.limit=2", "tune.sets=[positive]", "tune.generations=1"]
    done = agora(*args, "tune.population=2", "max_tokens=8", "resamples=20", "progress=false", f"out={out}")
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "tune.json").read_text())
    assert len(result["finalists"]) == 2 and result["phrases_scored"] >= 4  # the 4 phrases of the set, then children
    assert f"out={out}" in done.stdout and (out / "report.md").is_file()
