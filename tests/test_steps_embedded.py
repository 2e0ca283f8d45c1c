"""Rollouts on the embedded SmolLM2, mined into per-step pairs that DPO trains on and stepwise
rows that `datasets` loads.

SmolLM2-135M answers none of the three-step arithmetic problems from scratch (0 of 8 sampled
solutions on two problems, 1 in 16 on one-step problems), so the values of its own steps are
all 0 and no two steps differ. The run therefore starts from planted worked solutions
(`protocol.planted=true`): the model's continuations from their prefixes are what the values are
made of, and the right prefixes it fails to finish give pairs."""

import json

import pytest
from datasets import load_dataset

from tests.conftest import agora

pytestmark = pytest.mark.slow


def test_rollouts_mine_into_pairs_dpo_trains_on_and_stepwise_rows(tmp_path):
    run, steps, stepwise, model = (tmp_path / name for name in ("run", "steps", "stepwise", "model"))
    done = agora(
        "simulate",
        "protocol=rollouts",
        "protocol.planted=true",
        "dataset=arithmetic",
        "dataset.limit=2",
        "dataset.split=train",
        "progress=false",
        f"out={run}",
    )
    assert done.returncode == 0, done.stderr
    done = agora("mine", f"run={run}", "miner=steps", f"out={steps}")
    assert done.returncode == 0, done.stderr
    card = json.loads((steps / "card.json").read_text())
    assert card["counts"]["split"]["train"] > 0, card["counts"]
    done = agora(
        "train",
        "trainer=dpo",
        f"data={steps}",
        "model=smollm2-135m",
        f"out={model}",
        "trainer.args.max_steps=1",
        "trainer.args.per_device_train_batch_size=2",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((model / "train.json").read_text())["stages"]["dpo"]["global_step"] == 1

    done = agora("mine", f"run={run}", "miner=stepwise", f"out={stepwise}")
    assert done.returncode == 0, done.stderr
    rows = load_dataset("parquet", data_files=str(stepwise / "train.parquet"), split="train")
    assert len(rows) == 8  # four planted solutions for each of the two problems
    assert all(len(r["labels"]) == len(r["completions"]) == 3 for r in rows)
