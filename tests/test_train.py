"""`agora train`: every trainer on data that `agora mine` writes in the test, with a tiny model."""

import json
import math

import pytest
import torch
from datasets import load_dataset

from agents.errors import AgoraError
from agents.files import current_umask
from agents.models import check_model_name, load_causal_lm
from dialogue.mining.export import MineConfig, mine
from tests.conftest import agora, scripted_critique_run, scripted_rollouts_run, scripted_run
from trainers.config import TrainConfig
from trainers.run import TRAINERS, JsonlLog, load_data, train


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """miner name -> export directory, from one scripted run each of pbt, critique and rollouts."""
    root = tmp_path_factory.mktemp("exports")
    with pytest.MonkeyPatch.context() as mp:
        pbt_run = scripted_run(root / "run", mp)
        critique_run = scripted_critique_run(root / "critique-run", mp)
        rollouts_run = scripted_rollouts_run(root / "rollouts-run", mp)
    runs = {"critique": critique_run, "steps": rollouts_run, "stepwise": rollouts_run}
    out = {}
    for miner in ("pbt", "aft", "kto", "sft", "critique", "steps", "stepwise"):
        out[miner] = root / miner
        mine(MineConfig(run=[str(runs.get(miner, pbt_run))], out=str(out[miner]), miner={"name": miner}))
    return out


def config(name, data, model, out, lora=False, stage=None, **args) -> TrainConfig:
    """The trainer's own YAML defaults, as `agora train` composes them, with test-sized overrides."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[f"trainer={name}", f"data.path={data}", f"model={model}", f"out={out}"]
        )
    from omegaconf import OmegaConf

    from dialogue.running.config import validate

    raw = OmegaConf.to_container(cfg)
    raw["trainer"]["args"].update(
        {
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "warmup_steps": 0,
            "save_steps": 1,
            **args,
        }
    )
    raw["trainer"]["lora"]["enabled"] = lora
    for key, value in (stage or {}).items():
        raw["trainer"]["stage"].setdefault(key, {}).update(value)
    return validate(raw, TrainConfig)


MINER_OF = {
    "pbt": "pbt",
    "aft": "aft",
    "dpo_constrained": "pbt",
    "self_correction": "critique",
    "sft": "sft",
    "dpo": "pbt",
    "kto": "kto",
    "sft_weighted": "steps",
    "prm": "stepwise",
    "oreal": "stepwise",
    "qcrd": "stepwise",
}


@pytest.mark.parametrize("name", list(TRAINERS))
def test_each_trainer_trains_two_steps_and_writes_a_loadable_model(name, exports, tiny_model, tmp_path):
    out = tmp_path / "out"
    summary = train(config(name, exports[MINER_OF[name]], tiny_model, out))
    assert list(summary.stages) == list(TRAINERS[name])
    for result in summary.stages.values():
        assert result["global_step"] == 2 and math.isfinite(result["train_loss"])
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for stage in TRAINERS[name]:
        steps = [r for r in logged if r["stage"] == stage and "loss" in r]
        assert len(steps) == 2 and all(math.isfinite(r["loss"]) and "learning_rate" in r for r in steps)
    assert (out / "train.json").exists() and summary.saved == "weights"
    model, _ = load_causal_lm(str(out))
    assert not hasattr(model, "peft_config")


def test_oreal_rewards_each_solution_against_the_other_solutions_of_its_question():
    from datasets import Dataset

    from trainers.oreal import with_advantages

    rows = [("q1", True), ("q1", False), ("q1", False), ("q2", True), ("q3", None), ("q3", True)]
    data = Dataset.from_list([{"question_id": q, "correct": c, "run": "r"} for q, c in rows])
    got = [(r["question_id"], r["reward"], r["advantage"]) for r in with_advantages(data)]
    # q2 has no other solution to compare with; an unread answer (None) is not correct
    assert got == [("q1", 1.0, 1.0), ("q1", 0.0, -0.5), ("q1", 0.0, -0.5), ("q3", 0.0, -1.0), ("q3", 1.0, 1.0)]


def test_qcrd_groups_each_questions_right_and_wrong_rationales():
    from datasets import Dataset

    from trainers.qcrd import as_groups

    rows = [("q1", True, "a"), ("q1", False, "b"), ("q1", False, "b"), ("q2", True, "c"), ("q3", None, "d")]
    data = Dataset.from_list([{"question_id": q, "correct": c, "prompt": q, "completions": [t]} for q, c, t in rows])
    # q2 has no wrong rationale and q3 no right one (an unread answer is not right): both are left out
    assert [(r["question_id"], r["positives"], r["negatives"]) for r in as_groups(data)] == [("q1", ["a"], ["b"])]


def test_training_logs_what_each_loss_is_made_of(exports, tiny_model, tmp_path):
    train(config("dpo_constrained", exports["pbt"], tiny_model, tmp_path / "dc"))
    train(config("aft", exports["aft"], tiny_model, tmp_path / "aft"))
    dc = json.loads((tmp_path / "dc" / "log.jsonl").read_text().splitlines()[0])
    assert {"rewards/margins", "boundary/T", "boundary/term", "scores/chosen", "scores/rejected"} <= set(dc)
    # the boundary term at the first step, by hand: softplus(s_chosen - 2 beta_c - s_rejected)
    expected = math.log1p(math.exp(dc["scores/chosen"] - 0.2 - dc["scores/rejected"]))
    assert dc["boundary/T"] == pytest.approx(dc["scores/chosen"] - 0.2)
    assert dc["boundary/term"] == pytest.approx(expected, rel=0.2)  # a batch mean of the same
    aft = json.loads((tmp_path / "aft" / "log.jsonl").read_text().splitlines()[0])
    assert {"sft_loss", "align_loss", "score_positive", "score_negative", "boundary", "learning_rate"} <= set(aft)
    train(config("oreal", exports["stepwise"], tiny_model, tmp_path / "oreal"))
    oreal = json.loads((tmp_path / "oreal" / "log.jsonl").read_text().splitlines()[0])
    assert {"positive_loss", "negative_loss", "token_rm_loss"} <= set(oreal)
    train(config("qcrd", exports["stepwise"], tiny_model, tmp_path / "qcrd"))
    qcrd = json.loads((tmp_path / "qcrd" / "log.jsonl").read_text().splitlines()[0])
    assert {"sft_loss", "contrast_loss", "discriminator_loss"} <= set(qcrd)


def test_pbt_with_lora_saves_an_adapter_that_loads_as_a_model_and_changes_it(exports, tiny_model, tmp_path):
    out = tmp_path / "pbt"
    summary = train(
        config(
            "pbt",
            exports["pbt"],
            tiny_model,
            out,
            lora=True,
            stage={"sft": {"learning_rate": 1e-2}, "dpo": {"learning_rate": 4e-3}},
        )
    )
    assert summary.saved == "adapter"
    # each stage's own rate, on pbt's cosine schedule: the peak at step 1 of 2, half of it at step 2
    rates = {
        (r["stage"], r["step"]): r["learning_rate"]
        for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
        if "loss" in r
    }
    assert rates == pytest.approx({("sft", 1): 1e-2, ("sft", 2): 5e-3, ("dpo", 1): 4e-3, ("dpo", 2): 2e-3})
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == tiny_model and adapter["r"] == 16
    assert not (out / "ref").exists()  # DPO's frozen reference is not part of the result
    trained, tokenizer = load_causal_lm(str(out))
    base, _ = load_causal_lm(tiny_model)
    ids = tokenizer("Answer: A. I agree.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(trained(ids).logits, base(ids).logits, atol=1e-4)


def test_an_adapter_whose_base_is_gone_fails_naming_both(exports, tiny_model, tmp_path):
    out = tmp_path / "pbt"
    train(config("pbt", exports["pbt"], tiny_model, out, lora=True, stage={"sft": {"max_steps": 1}}, max_steps=1))
    check_model_name(str(out))
    adapter = json.loads((out / "adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = str(tmp_path / "gone")
    (out / "adapter_config.json").write_text(json.dumps(adapter))
    with pytest.raises(AgoraError, match=f"adapter '{out}'.*{tmp_path / 'gone'}"):
        check_model_name(str(out))


def test_a_missing_column_fails_before_anything_is_written_naming_column_and_trainer(exports, tiny_model, tmp_path):
    out = tmp_path / "out"
    result = agora("train", "trainer=dpo", f"data={exports['kto']}", f"model={tiny_model}", f"out={out}")
    assert result.returncode == 2
    assert "trainer dpo" in result.stderr and "'chosen' column" in result.stderr and "miner=pbt" in result.stderr
    assert not out.exists()


def test_a_missing_export_or_model_is_named_and_leaves_no_folder(exports, tiny_model, tmp_path):
    out, nowhere = tmp_path / "out", tmp_path / "nowhere"
    done = agora("train", "trainer=dpo", f"data={nowhere}", f"model={tiny_model}", f"out={out}")
    assert done.returncode == 2 and f"looked for {nowhere / 'train.parquet'}" in done.stderr
    assert "does not exist" in done.stderr and not out.exists()
    done = agora("train", "trainer=dpo", f"data={exports['critique']}", f"model={tiny_model}", f"out={out}")
    assert done.returncode == 2 and "an export of `agora mine miner=critique`, not of miner=pbt" in done.stderr
    (tmp_path / "models").mkdir()
    done = agora("train", "trainer=dpo", f"data={exports['pbt']}", f"model={tmp_path / 'models' / 'pb'}", f"out={out}")
    assert done.returncode == 2 and "no such local path" in done.stderr and not out.exists()


def test_an_option_that_no_stage_has_is_named(exports, tiny_model, tmp_path):
    result = agora(
        "train",
        "trainer=pbt",
        f"data={exports['pbt']}",
        f"model={tiny_model}",
        f"out={tmp_path / 'o'}",
        "trainer.args.lerning_rate=1e-4",
    )
    assert result.returncode == 2 and "trainer.args.lerning_rate" in result.stderr
    result = agora(
        "train",
        "trainer=pbt",
        f"data={exports['pbt']}",
        f"model={tiny_model}",
        f"out={tmp_path / 'o'}",
        "trainer.stage.sft.beta=0.3",
    )
    assert result.returncode == 2 and "trainer.stage.sft.beta: not an option of SFTConfig" in result.stderr


def test_a_label_filter_keeps_only_those_rows(exports, tiny_model, tmp_path):
    pbt_train = load_dataset("parquet", data_files=str(exports["pbt"] / "train.parquet"), split="train")
    accepts = pbt_train["label"].count("accept")
    assert 0 < accepts < len(pbt_train)
    for name, miner in (("dpo", "pbt"), ("kto", "kto")):
        c = config(name, exports[miner], tiny_model, tmp_path / name)
        c.data.labels = ["accept"]
        train_split, _ = load_data(c, name, TRAINERS[name][name])
        labels = train_split["pbt_label" if miner == "kto" else "label"]
        assert set(labels) == {"accept"}
        assert len(labels) == accepts * (2 if miner == "kto" else 1)  # kto: a chosen and a rejected row per pair


def test_an_interrupted_run_never_looks_finished_and_resumes_from_its_checkpoint(
    exports, tiny_model, tmp_path, monkeypatch
):
    out = tmp_path / "pbt"
    settings = config("pbt", exports["pbt"], tiny_model, out, lora=True, max_steps=3)

    def killed(self, args, state, control, **kwargs):
        if self.stage == "dpo" and state.global_step == 2:  # checkpoint-1 of the dpo stage is on disk
            raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(JsonlLog, "on_step_end", killed, raising=False)
        with pytest.raises(KeyboardInterrupt):
            train(settings)
    assert not (out / "train.json").exists() and not (out / "adapter_config.json").exists()
    stage = out / "stages" / "dpo"
    assert [p.name for p in stage.glob("checkpoint-*")] == ["checkpoint-1"]
    wanted = 0o666 & ~current_umask()  # a checkpoint a kill leaves behind is as readable as the umask says
    assert all(p.stat().st_mode & 0o777 == wanted for p in stage.rglob("*") if p.is_file())
    # a kill in the middle of saving step 2, after step 2 was logged: half a checkpoint and a log line
    (stage / "checkpoint-2").mkdir()
    (stage / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    with (out / "log.jsonl").open("a") as f:
        f.write(json.dumps({"stage": "dpo", "step": 2, "loss": 0.5}) + "\n")
    with pytest.raises(AgoraError, match="unfinished.*resume=true"):
        train(settings)
    resumed = train(settings.model_copy(update={"resume": True}))
    assert resumed.stages["dpo"]["global_step"] == 3 and resumed.stages["sft"]["global_step"] == 3
    dpo_steps = [
        json.loads(line)["step"]
        for line in (out / "log.jsonl").read_text().splitlines()
        if json.loads(line)["stage"] == "dpo" and "loss" in json.loads(line)
    ]
    assert dpo_steps == [1, 2, 3]  # 1 before the kill; 2 and 3 after resuming from checkpoint-1
    with pytest.raises(AgoraError, match="finished.*overwrite=true"):
        train(settings)


def test_a_short_stage_logs_every_step_validation_loss_and_a_learning_curve(exports, tiny_model, tmp_path):
    out = tmp_path / "dpo"
    train(config("dpo", exports["pbt"], tiny_model, out, logging_steps=10))  # 2 steps: fewer than 100
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2]
    assert load_dataset("parquet", data_files=str(exports["pbt"] / "validation.parquet"), split="train").num_rows
    assert [r["step"] for r in logged if "eval_loss" in r] == [1, 2] and all(
        math.isfinite(r["eval_loss"]) for r in logged if "eval_loss" in r
    )
    assert (out / "curve_dpo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warm_up_is_a_fraction_of_each_stage(exports, tiny_model, tmp_path):
    from trainers.run import _stage_args

    settings = config("pbt", exports["pbt"], tiny_model, tmp_path / "o")
    settings.trainer.args.pop("warmup_steps")  # the YAML's warmup_ratio: 0.1 applies
    args = _stage_args(settings, "sft", TRAINERS["pbt"]["sft"], tmp_path / "o", validation=True)
    assert args.get_warmup_steps(2) == 1 and args.get_warmup_steps(1000) == 100
    assert args.eval_strategy == "steps"
    settings.trainer.args["warmup_steps"] = 7  # a count given explicitly wins
    assert _stage_args(settings, "sft", TRAINERS["pbt"]["sft"], tmp_path / "o", validation=False).warmup_steps == 7


def test_a_label_filter_that_empties_validation_trains_without_an_eval_set(exports, tiny_model, tmp_path, capsys):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    shutil.copytree(exports["pbt"], data)
    validation = pq.read_table(data / "validation.parquet")
    kept = validation.column("label")[0].as_py()  # validation keeps one label; training asks for the other
    wanted = {"accept": "resist", "resist": "accept"}[kept]
    pq.write_table(validation.filter(pa.compute.equal(validation.column("label"), kept)), data / "validation.parquet")
    settings = config("dpo", data, tiny_model, tmp_path / "accept-only")
    settings.data.labels = [wanted]
    summary = train(settings)
    assert summary.stages["dpo"]["global_step"] == 2
    assert (
        f"has no validation rows with data.labels=['{wanted}']; it trains without an eval set"
        in capsys.readouterr().out
    )
    logged = (tmp_path / "accept-only" / "log.jsonl").read_text()
    assert "eval_loss" not in logged


def test_resuming_with_changed_options_is_refused_naming_them(exports, tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "dpo"
    settings = config("dpo", exports["pbt"], tiny_model, out, max_steps=3)

    def killed(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(JsonlLog, "on_step_end", killed, raising=False)
        with pytest.raises(KeyboardInterrupt):
            train(settings)
    changed = settings.model_copy(update={"resume": True}, deep=True)
    changed.trainer.args["learning_rate"] = 0.5
    changed.trainer.stage.setdefault("dpo", {})["beta"] = 0.3
    with pytest.raises(
        AgoraError,
        match=r"another config \(differing: trainer\.args\.learning_rate, "
        r"trainer\.stage\.dpo\.beta\)",
    ):
        train(changed)
    assert train(settings.model_copy(update={"resume": True})).stages["dpo"]["global_step"] == 3


def test_constrained_dpo_scores_are_those_of_an_independent_forward_pass(exports, tiny_model, tmp_path):
    """The boundary term reads the policy's scores out of TRL's own forward pass; an independent
    forward over the same batch must give the same scores, or TRL's internals have moved."""
    from agents.scoring import sequence_scores
    from trainers.run import _stage_args

    settings = config("dpo_constrained", exports["pbt"], tiny_model, tmp_path / "dc")
    spec = TRAINERS["dpo_constrained"]["dpo_constrained"]
    train_split, _ = load_data(settings, "dpo_constrained", spec)
    model, tokenizer = load_causal_lm(tiny_model, trainable=True)
    args = _stage_args(settings, "dpo_constrained", spec, tmp_path / "dc", validation=False)
    trainer = spec.trainer_class(model=model, args=args, train_dataset=train_split, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    trainer.compute_loss(model, batch)
    logged = trainer._metrics["train"]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    chosen, rejected = sequence_scores(logits, labels)[0].chunk(2)
    assert logged["scores/chosen"][-1] == pytest.approx(chosen.mean().item(), abs=1e-4)
    assert logged["scores/rejected"][-1] == pytest.approx(rejected.mean().item(), abs=1e-4)
    expected = torch.nn.functional.softplus(chosen - 2 * args.beta_c - rejected).mean().item()
    assert logged["boundary/term"][-1] == pytest.approx(expected, abs=1e-4)
