"""`agora iterate`: rounds of simulate -> mine -> train -> eval (trainers/iterate.py).

The scripted tests train real adapters of a tiny model; what the models say comes from a rule
that knows which round's adapter speaks, so each round's metrics are known in advance."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agents.errors import AgoraError
from agora.cli import stage_overrides
from dialogue.core.questions import DatasetConfig, load_questions
from dialogue.records import LoopState
from dialogue.running.config import validate
from tests.conftest import REPO, ScriptedBackend, cached_completions
from trainers.iterate import IterateConfig, composed, iterate

QUESTIONS = load_questions(DatasetConfig(split="all")).questions
ROUNDS = 3


def round_of(model: str) -> int:
    """The round whose training made `model`; -1 for the base."""
    found = re.search(r"round-(\d+)[/\\]models", model)
    return int(found.group(1)) if found else -1


def caves(question_id: str, model: str) -> bool:
    """Whether this model gives up a right answer when asked "are you sure?": the base always,
    each round's model on a third fewer of the questions, round 2's never."""
    bucket = int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % ROUNDS
    return bucket > round_of(model)


def wrong(gold: str) -> str:
    return "ABCD"[("ABCD".index(gold) + 1) % 4]


def rule(request, model: str) -> str:
    """pbt_tree: every answer is right, except the persuadee's under `accept` (so the persuader
    argues it back to the right one, which gives accept pairs). are_you_sure: right first; after the
    challenge, wrong where the model caves."""
    asked = next(text for role, text in request.messages if role == "user")
    question = next(q for q in QUESTIONS if q.question in asked)
    last = request.messages[-1][1]
    if "once more and give your final answer" in last:
        return f"Final answer: {wrong(question.gold) if caves(question.question_id, model) else question.gold}"
    if "keep an open mind" in last:
        return f"Maybe. Answer: {wrong(question.gold)}"
    return f"Let me think. Answer: {question.gold}"


def scripted(monkeypatch, delay_s: float = 0.0) -> None:
    """Every backend answers by `rule`, as the model (or adapter) a request is for."""

    def make(model, *args, adapters=(), **kwargs):
        def answer(request):
            time.sleep(delay_s)
            return rule(request, request.adapter or model)

        return ScriptedBackend(answer, model)

    monkeypatch.setattr("dialogue.running.simulate.make_backend", make)


def arguments(base: str, out, rounds: int = ROUNDS) -> list[str]:
    return [
        f"out={out}",
        f"rounds={rounds}",
        "questions_per_round=6",
        f"base={base}",
        "suites=[are_you_sure]",
        "progress=false",
        "eval.dataset.limit=12",
        "eval.resamples=50",
        "train.trainer.args.max_steps=1",
        "train.trainer.args.per_device_train_batch_size=2",
    ]


def loop_config(*args: str) -> IterateConfig:
    return validate(composed("iterate", stage_overrides(list(args))), IterateConfig)


def changed_by_round(out) -> list[float]:
    names = ["base/eval", *(f"round-{r}/eval" for r in range(ROUNDS))]
    found = [json.loads((out / n / "metrics.json").read_text()) for n in names]
    return [m["suites"]["are_you_sure"]["metrics"]["answer_changed"]["value"] for m in found]


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("loop") / "reference"
    with pytest.MonkeyPatch.context() as monkeypatch:
        scripted(monkeypatch)
        state = iterate(loop_config(*arguments(tiny_model, out)), log=lambda *a, **k: None)
    return out, state


def test_each_round_argues_with_the_last_rounds_models_and_its_metrics_move_as_planted(reference, tiny_model):
    out, state = reference
    assert state.status == "complete" and len(state.rounds) == ROUNDS
    for r, record in enumerate(state.rounds):
        assert record.offset == 6 * r and record.questions == 6  # fresh train questions each round
        assert record.models_before == (dict.fromkeys("BA", tiny_model) if r == 0 else state.rounds[r - 1].models_after)
        assert record.models_after == {a: str(out / f"round-{r}" / "models" / a) for a in "BA"}
        assert record.rows["B"] > 0 and record.rows["A"] > 0 and not record.not_trained
        run = json.loads((out / f"round-{r}" / "run" / "manifest.json").read_text())
        assert run["config"]["dataset"]["split"] == "train" and run["models"] == record.models_before
        adapter = json.loads((out / f"round-{r}" / "models" / "B" / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == tiny_model  # every round's model is an adapter of the base
    # the planted answer changes: all on the base, then a third fewer each round
    tested = [q.question_id for q in load_questions(DatasetConfig(split="test", limit=12)).questions]
    models = ["base", *(f"round-{r}/models" for r in range(ROUNDS))]
    expected = [sum(caves(q, m) for q in tested) / len(tested) for m in models]
    assert changed_by_round(out) == pytest.approx(expected)
    assert expected[0] == 1.0 and expected[-1] == 0.0 and expected[1] > expected[2]
    report = (out / "report.md").read_text()
    assert "| suite | metric | base | round 0 | round 1 | round 2 | round 0 - base |" in report
    row = next(line for line in report.splitlines() if line.startswith("| are_you_sure | answer_changed |"))
    assert row.count("[") == 7  # each value and each difference with its interval
    assert "| 2 | 6 (from 12) |" in report  # what each round simulated and mined
    assert "round 2" in (out / "report.html").read_text()


DRIVER = """
import sys
sys.path.insert(0, {repo!r})
import pytest
from tests import test_iterate
from agora.cli import main

with pytest.MonkeyPatch.context() as monkeypatch:
    test_iterate.scripted(monkeypatch, delay_s=float(sys.argv[1]))
    main(["iterate", *sys.argv[2:]])
"""


def test_a_loop_killed_in_round_2_and_run_again_ends_as_the_uninterrupted_loop(reference, tiny_model, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER.format(repo=str(REPO))))
    out = tmp_path / "loop"
    command = [sys.executable, str(driver), "0.01", *arguments(tiny_model, out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    loop = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cache = out / "round-2" / "run" / "gen_cache.sqlite"  # the kill lands inside round 2's simulation
    deadline = time.time() + 600
    while loop.poll() is None and time.time() < deadline and cached_completions(cache) < 10:
        time.sleep(0.05)
    assert loop.poll() is None, loop.stderr.read().decode()[-3000:]
    loop.send_signal(signal.SIGKILL)
    loop.wait()
    killed = LoopState.read(out / "iterate.json")
    assert killed.status == "running" and len(killed.rounds) == ROUNDS and killed.rounds[2].finished_at is None
    assert not (out / "report.md").exists()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 rounds done" in done.stdout
    state = LoopState.read(out / "iterate.json")
    assert state.status == "complete"
    reference_out, reference_state = reference
    strip = lambda s: [r.model_dump(exclude={"finished_at", "models_before", "models_after"}) for r in s.rounds]  # noqa: E731
    assert strip(state) == strip(reference_state)
    assert changed_by_round(out) == changed_by_round(reference_out)
    # the rounds before the kill were not run again; round 2's simulation was resumed
    assert state.rounds[0].finished_at == killed.rounds[0].finished_at
    manifests = [json.loads((out / f"round-{r}" / "run" / "manifest.json").read_text()) for r in range(ROUNDS)]
    assert [len(m.get("resumed_at", [])) for m in manifests] == [0, 0, 1]


def test_a_rerun_with_another_config_is_refused_and_more_rounds_continue(reference, tiny_model, tmp_path):
    out, _ = reference
    with pytest.raises(AgoraError, match="another config \\(differing: questions_per_round\\)"):
        iterate(loop_config(*arguments(tiny_model, out), "questions_per_round=5"))
    with pytest.raises(AgoraError, match="the loop sets dataset.split itself"):
        loop_config(*arguments(tiny_model, tmp_path / "x"), "simulate.dataset.split=test")
    with pytest.raises(AgoraError, match="evaluate: 'C' is not a trained agent"):
        loop_config(*arguments(tiny_model, tmp_path / "x"), "evaluate=C")


def test_an_agent_without_train_rows_keeps_its_model_and_an_unchanged_round_reuses_the_evaluation(
    tiny_model, tmp_path, monkeypatch
):
    scripted(monkeypatch)
    out = tmp_path / "loop"
    # the scripted persuader only ever argues for the right answer, and no reply is at level 9
    untrained = ["trained.A.mine.miner.toward=misleading", "trained.B.mine.miner.levels=[9]"]
    state = iterate(loop_config(*arguments(tiny_model, out, rounds=1), *untrained), log=lambda *a, **k: None)
    (record,) = state.rounds
    assert record.rows == {"B": 0, "A": 0} and record.models_after == record.models_before
    assert set(record.not_trained) == {"A", "B"} and "miner=persuader gave no train rows" in record.not_trained["A"]
    assert record.evaluation == "base/eval" and not (out / "round-0" / "eval").exists()
    assert not (out / "round-0" / "models").exists()
    rounds = (out / "report.md").read_text().split("## Rounds")[1]
    assert "| 0 | 6 (from 0) | 0 | 0 | B: miner=pbt gave no train rows" in rounds
