"""The whole loop on the embedded SmolLM2, as a user runs it: simulate -> mine -> train pbt with
LoRA -> simulate with the trained adapter as the persuadee -> evaluate the base model and the
adapter with every suite on held-out questions -> compare them.

Read by an honest judge, SmolLM2-135M's trees give few preference pairs (it mostly names one
choice's letter with another's text): 8 questions gave none with `judge_conflict=none`, 2 with
`text`. So the export also holds a scripted run over train and test questions, whose pairs are
known to exist: training always has rows, and the balanced and assessment suites have held-out
rows to read."""

import json
import re

import pytest

from tests.conftest import SUITE_ORDER, agora, scripted_run

pytestmark = pytest.mark.slow


def test_simulate_mine_train_pbt_lora_and_simulate_with_the_adapter(tmp_path, monkeypatch):
    run, scripted, data, model, after = (tmp_path / name for name in ("run", "scripted", "data", "model", "after"))
    done = agora(
        "simulate",
        f"out={run}",
        "dataset.split=train",
        "dataset.limit=16",
        "dataset.judge_conflict=text",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr
    assert "answers the judge could not read:" in done.stdout
    scripted_run(scripted, monkeypatch, 40)
    monkeypatch.undo()
    done = agora("mine", f"run={run}", f"run={scripted}", "miner=pbt", f"out={data}")
    assert done.returncode == 0, done.stderr
    card = json.loads((data / "card.json").read_text())
    assert card["counts"]["split"]["train"] > 0 and card["counts"]["split"]["test"] > 0
    assert [s["trees"] for s in card["sources"]] == [16, 40]

    done = agora(
        "train",
        "trainer=pbt",
        f"data={data}",
        "model=smollm2-135m",
        f"out={model}",
        "trainer.args.max_steps=2",
        "trainer.args.per_device_train_batch_size=2",
    )
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

    evaluate_base_and_adapter(tmp_path, [run, scripted], data, model)


def evaluate_base_and_adapter(tmp_path, runs, pbt, adapter):
    aft = tmp_path / "aft"
    done = agora("mine", *(f"run={r}" for r in runs), "miner=aft", f"out={aft}")
    assert done.returncode == 0, done.stderr
    # the adapter's own training questions are refused
    done = agora(
        "eval",
        "suite=all",
        f"model={adapter}",
        f"data={pbt}",
        f"data={aft}",
        "dataset.split=train",
        f"out={tmp_path / 'leaked'}",
    )
    assert done.returncode == 2 and "was trained on questions this evaluation would score" in done.stderr
    # a small slice of held-out questions
    for name, model in (("base", "smollm2-135m"), ("pbt", str(adapter))):
        done = agora(
            "eval",
            "suite=all",
            f"model={model}",
            f"data={pbt}",
            f"data={aft}",
            "dataset.split=test",
            "dataset.limit=4",
            "critique.count=40",
            "protocols.misinformation.turns=2",
            "max_tokens=64",
            "resamples=200",
            "progress=false",
            f"out={tmp_path / name}",
        )
        assert done.returncode == 0, done.stderr
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert list(metrics["suites"]) == [s for s in SUITE_ORDER if s != "verifier"]  # no stepwise export given
        assert metrics["model"] == model
        report = (tmp_path / name / "report.md").read_text()
        for suite, result in metrics["suites"].items():
            assert f"## {suite}" in report
            defined = [e for e in result["metrics"].values() if e["value"] is not None]
            assert defined, f"{suite}: no metric is defined on this slice"
            assert all(e["low"] <= e["value"] <= e["high"] for e in defined)
            assert re.search(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", report.split(f"## {suite}")[1])
            for plot in result["plots"]:
                assert (tmp_path / name / "plots" / plot).read_bytes()[:4] == b"\x89PNG"

    done = agora("eval", "compare", str(tmp_path / "base"), str(tmp_path / "pbt"), f"out={tmp_path / 'compare.md'}")
    assert done.returncode == 0, done.stderr
    assert "| suite | metric | base | pbt | pbt - base |" in done.stdout  # paired: both saw the same questions
    for suite in metrics["suites"]:
        assert f"| {suite} |" in done.stdout
