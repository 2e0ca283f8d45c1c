"""The whole loop on the embedded SmolLM2, as a user runs it: simulate -> mine -> train pbt with
LoRA -> simulate with the trained adapter as the persuadee."""

import json

import pytest

from tests.conftest import agora

pytestmark = pytest.mark.slow


def test_simulate_mine_train_pbt_lora_and_simulate_with_the_adapter(tmp_path):
    run, data, model, after = (tmp_path / name for name in ("run", "data", "model", "after"))
    done = agora("simulate", f"out={run}", "progress=false")
    assert done.returncode == 0, done.stderr
    done = agora("mine", f"run={run}", "miner=pbt", f"out={data}")
    assert done.returncode == 0, done.stderr
    assert json.loads((data / "card.json").read_text())["counts"]["split"]["train"] > 0

    done = agora("train", "trainer=pbt", f"data={data}", "model=smollm2-135m", f"out={model}",
                 "trainer.args.max_steps=2", "trainer.args.per_device_train_batch_size=2")
    assert done.returncode == 0, done.stderr
    assert "saved adapter (base smollm2-135m)" in done.stdout
    assert json.loads((model / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    stages = json.loads((model / "train.json").read_text())["stages"]
    assert [s["global_step"] for s in stages.values()] == [2, 2]

    done = agora("simulate", f"out={after}", "dataset.limit=2", f"agents.B.model={model}", "progress=false")
    assert done.returncode == 0, done.stderr
    turns = [node for line in (after / "trees.jsonl").read_text().splitlines() for node in json.loads(line)["nodes"]]
    persuadee = [t for t in turns if t["speaker"] == "B"]
    assert persuadee and all(t["gen"]["model"] == str(model) and t["text"] for t in persuadee)
