"""`agora train`: run a trainer's stages over an `agora mine` export and write a model directory
that `agora simulate` accepts as a model.

Everything a user can get wrong (stage names, TRL options, missing columns, an `out` that holds
another run) is checked before the model loads. The output directory:

    out/train_config.json     the validated config
    out/log.jsonl             every logged step: stage, step, loss, rewards or scores, learning rate,
                              validation loss (when the export has a validation split)
    out/curve_NAME.png        each stage's learning curve: loss, reward margin or scores, learning rate
    out/stages/NAME/          TRL checkpoints (every save_steps) and, once the stage is done, model/
    out/adapter_config.json   the trained LoRA adapter naming its base (or config.json: full weights)
    out/train.json            written last: the run is finished only when it exists

`resume=true` skips finished stages, starts from the last one's model/, and continues the
unfinished stage from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import transformers
from accelerate import PartialState
from accelerate.utils import DistributedType, broadcast_object_list
from datasets import Dataset, load_dataset
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from agents.errors import AgoraError
from agents.files import make_readable
from agents.models import adapter_base, check_model_name, load_causal_lm
from dialogue.records import Card, TrainData, TrainSummary
from dialogue.running.rundir import differing_keys, one_writer
from trainers import aft, baselines, dpo_constrained, oreal, pbt, prm, qcrd, self_correction, sft_weighted
from trainers.config import TrainConfig
from trainers.curves import learning_curve
from trainers.stage import Stage

TRAINERS: dict[str, dict[str, Stage]] = {
    "pbt": pbt.STAGES,
    "aft": aft.STAGES,
    "dpo_constrained": dpo_constrained.STAGES,
    "self_correction": self_correction.STAGES,
    "sft_weighted": sft_weighted.STAGES,
    "prm": prm.STAGES,
    "oreal": oreal.STAGES,
    "qcrd": qcrd.STAGES,
    **baselines.TRAINERS,
}
LORA_ABOVE = 1_000_000_000  # parameters; `lora.enabled=auto` uses LoRA for models larger than this
SHORT_STAGE = 100  # steps; a stage shorter than this logs every step
# Under these, no process holds the whole model: its weights are gathered before the main one saves.
SHARDED = {DistributedType.FSDP, DistributedType.DEEPSPEED}


def train(config: TrainConfig) -> TrainSummary:
    """Train in this process, or in each of the processes `accelerate launch` started: they train
    together (DDP, FSDP or DeepSpeed, as its config says) and only the main one writes `out`."""
    state = PartialState()
    if state.distributed_type in SHARDED and config.trainer.save == "merged":
        raise AgoraError(
            f"trainer.save=merged: a model sharded by {state.distributed_type.value} cannot be merged in place; "
            "save the adapter (trainer.save=adapter) and merge it in one process"
        )
    stages = _stages(config)
    data = {stage: load_data(config, stage, spec) for stage, spec in stages.items()}
    check_model_name(config.model)  # before `out` is claimed: a mistyped model leaves no folder behind
    out = Path(config.out)
    args = {
        stage: _stage_args(config, stage, spec, out / "stages" / stage, data[stage][1] is not None)
        for stage, spec in stages.items()
    }
    with contextlib.ExitStack() as held:

        def claim() -> None:
            held.enter_context(one_writer(out))
            _claim_out(config, out)

        on_main(state, claim)
        return _train(config, out, stages, data, args, state)


def on_main(state: PartialState, task: Callable[[], object]):
    """Run `task` on the main process while the others wait, and give every process its result;
    if it fails with an error for the user, every process stops with it (instead of the others
    waiting for it forever)."""
    error = result = None
    if state.is_main_process:
        try:
            result = task()
        except AgoraError as e:
            error = str(e)
    if state.num_processes > 1:
        box = [error, result]
        broadcast_object_list(box)  # from the main process to the rest; a barrier too
        error, result = box
    if error is not None:
        raise AgoraError(error)
    return result


def _train(
    config: TrainConfig, out: Path, stages: dict[str, Stage], data: dict, args: dict, state: PartialState
) -> TrainSummary:
    name = config.trainer.name

    # Stages an interrupted run finished come first; training starts from the last one's model.
    finished = [stage for stage in stages if (out / "stages" / stage / "model").exists()]
    start = str(out / "stages" / finished[-1] / "model") if finished else config.model
    transformers.set_seed(config.seed)  # LoRA's initial weights come from the global generator
    model, tokenizer = load_causal_lm(start, trainable=True)
    model = _maybe_lora(config, model)
    log = out / "log.jsonl"
    results = {}
    weights = None  # the gathered state dict of a sharded run's last stage
    for number, (stage, spec) in enumerate(stages.items(), start=1):
        stage_dir = out / "stages" / stage
        if stage in finished:
            results[stage] = json.loads((stage_dir / "result.json").read_text())
            print(f"stage {stage}: done before ({stage_dir / 'model'})")
            continue
        train_split, eval_split = data[stage]
        extra = {"data_collator": spec.collator(tokenizer, args[stage])} if spec.collator else {}
        try:
            trainer = spec.trainer_class(
                model=model,
                args=args[stage],
                train_dataset=train_split,
                eval_dataset=eval_split,
                processing_class=tokenizer,
                callbacks=[JsonlLog(log, stage), ShortStageLogging(), CompleteCheckpoints()],
                **extra,
            )
        except ValueError as e:
            raise AgoraError(f"trainer {name}, stage {stage}: {e}") from None
        checkpoint = None
        if config.resume and stage_dir.exists():  # chosen on the main process, for every process
            checkpoint = on_main(state, partial(resume_point, stage_dir, log, stage))
        if state.is_main_process:
            length = (
                f"{args[stage].max_steps} steps"
                if args[stage].max_steps > 0
                else f"{args[stage].num_train_epochs:g} epochs"
            )
            print(f"stage {number}/{len(stages)}: {stage}, {len(train_split)} rows, {length}", flush=True)
        if checkpoint:
            print(f"stage {stage}: resuming from {checkpoint}")
        result = trainer.train(resume_from_checkpoint=checkpoint)
        model = trainer.model
        if _is_peft(model) and "ref" in model.peft_config:
            model.delete_adapter("ref")  # DPO's frozen reference copy; the next stage makes its own
        results[stage] = {"global_step": result.global_step, **result.metrics}
        weights = (
            trainer.accelerator.get_state_dict(trainer.model_wrapped) if state.distributed_type in SHARDED else None
        )
        on_main(state, partial(_save_stage, model, tokenizer, config.model, out, stage, results[stage], weights))

    merged = config.trainer.save == "merged"
    summary = TrainSummary(
        trainer=name,
        stages=results,
        model=_start_name(config.model),
        # the export it learnt from, so that `agora eval` can tell which questions the model has seen
        data=TrainData(path=str(Path(config.data.path).resolve()), labels=config.data.labels),
        saved="adapter" if _is_peft(model) and not merged else "weights",
        processes=state.num_processes,
    )

    def save_final() -> None:
        _save_model(model, tokenizer, out / ".final", config.model, merged=merged, weights=weights)
        _publish(out / ".final", out)
        make_readable(out)
        summary.write(out / "train.json")

    on_main(state, save_final)
    return summary


def _save_stage(model, tokenizer, model_name: str, out: Path, stage: str, result: dict, weights: dict | None) -> None:
    stage_dir = out / "stages" / stage
    learning_curve(out / "log.jsonl", stage, out / f"curve_{stage}.png")
    _save_model(model, tokenizer, stage_dir / "model", model_name, merged=False, weights=weights)
    make_readable(stage_dir)  # its checkpoints too: safetensors writes its files 0600
    (stage_dir / "result.json").write_text(json.dumps(result, indent=2))


def _start_name(model: str) -> str:
    """The start model as `agora eval` can follow it: a local path made absolute (a trained
    model's chain of train.json files stays followable), an alias or Hub id as given."""
    start = Path(model).expanduser()
    return str(start.resolve()) if start.exists() else model


COMPLETE = "agora-complete"  # in a checkpoint folder: the Trainer finished writing it


class CompleteCheckpoints(transformers.TrainerCallback):
    """Marks each checkpoint complete once the Trainer has written all of it (on_save comes after
    its last file), and makes it as readable as the umask says: a kill mid-save leaves a folder
    without the mark, which resuming never reads."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            make_readable(folder)
            (folder / COMPLETE).touch()


def resume_point(stage_dir: Path, log: Path, stage: str) -> str | None:
    """The last complete checkpoint of a stage, or None. Checkpoints a kill left half written are
    removed, and the stage's log lines after the checkpoint are dropped: the steps they logged
    are trained again."""
    checkpoints = sorted(stage_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    complete = [p for p in checkpoints if (p / COMPLETE).exists()]
    for half in (p for p in checkpoints if p not in complete):
        print(f"stage {stage}: {half.name} was not written to the end; it is removed")
        shutil.rmtree(half)
    step = int(complete[-1].name.rsplit("-", 1)[1]) if complete else 0
    if log.exists():
        lines = log.read_text().splitlines(keepends=True)
        kept = [line for line in lines if (r := json.loads(line))["stage"] != stage or r["step"] <= step]
        if len(kept) < len(lines):
            tmp = log.with_suffix(".tmp")
            tmp.write_text("".join(kept))
            tmp.replace(log)
    return str(complete[-1]) if complete else None


class ShortStageLogging(transformers.TrainerCallback):
    """Logs every step of a stage shorter than 100 steps, where `logging_steps` would leave a
    curve of a few points or none."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps < SHORT_STAGE:
            control.should_log = True


class JsonlLog(transformers.TrainerCallback):
    """Appends each log line of the Trainer (loss, rewards or scores, learning rate) to log.jsonl."""

    def __init__(self, path: Path, stage: str):
        self.path, self.stage = path, stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"stage": self.stage, "step": state.global_step, **logs}) + "\n")


def _stages(config: TrainConfig) -> dict[str, Stage]:
    known = TRAINERS[config.trainer.name]
    unknown = [s for s in config.trainer.stages if s not in known]
    if unknown:
        raise AgoraError(
            f"trainer.stages: {config.trainer.name} has no stage {', '.join(unknown)} (it has {', '.join(known)})"
        )
    stages = {s: known[s] for s in config.trainer.stages}
    for stage in config.trainer.stage:
        if stage not in stages:
            raise AgoraError(f"trainer.stage.{stage}: not a stage of this run ({', '.join(stages)})")
    options = {f.name for spec in stages.values() for f in dataclasses.fields(spec.config_class) if f.init}
    options.add("warmup_ratio")
    unknown = sorted(set(config.trainer.args) - options)
    if unknown:
        raise AgoraError(
            f"trainer.args.{unknown[0]}: not an option of any stage's config "
            f"({', '.join(spec.config_class.__name__ for spec in stages.values())})"
        )
    return stages


def _stage_args(config: TrainConfig, stage: str, spec: Stage, output_dir: Path, validation: bool):
    fields = {f.name for f in dataclasses.fields(spec.config_class) if f.init} | {"warmup_ratio"}
    own = config.trainer.stage.get(stage, {})
    for key in own:
        if key not in fields:
            raise AgoraError(f"trainer.stage.{stage}.{key}: not an option of {spec.config_class.__name__}")
    if "output_dir" in own or "output_dir" in config.trainer.args:
        raise AgoraError("output_dir: set out=DIR instead")
    shared = {k: v for k, v in config.trainer.args.items() if k in fields}
    options = {"report_to": "none", "seed": config.seed, "data_seed": config.seed, **shared, **own}
    # transformers 5 reads a warm-up below 1 as a fraction of the steps; a warmup_steps given wins
    ratio = options.pop("warmup_ratio", None)
    if ratio is not None and "warmup_steps" not in options:
        if not 0 <= ratio < 1:
            raise AgoraError(f"trainer stage {stage}: warmup_ratio={ratio} must be in [0, 1)")
        options["warmup_steps"] = ratio
    if validation and "eval_strategy" not in options:  # a validation loss about ten times a stage
        options.update(eval_strategy="steps", eval_steps=options.get("eval_steps", 0.1))
        options.setdefault("prediction_loss_only", True)
    if not torch.cuda.is_available():  # TRL's configs otherwise ask for bf16 on a GPU
        options.setdefault("use_cpu", True)
    try:
        return spec.config_class(output_dir=str(output_dir), **options)
    except (TypeError, ValueError) as e:
        raise AgoraError(f"trainer {config.trainer.name}, stage {stage}: {spec.config_class.__name__}: {e}") from None


def missing_export(data: Path, train_file: Path, trainer: str, miner: str) -> str:
    """Why there is no train split to read: no export there at all, or one that `agora mine`
    wrote with 0 train rows (its card says what the persuasion turns lost)."""
    reads = f"trainer {trainer} reads `agora mine miner={miner}` output"
    card_file = data / "card.json"
    if not card_file.is_file():
        what = "does not exist" if not data.exists() else "holds no export of `agora mine` (no card.json)"
        return f"data={data}: looked for {train_file}; {data} {what} ({reads})"
    card = Card.read(card_file)
    if card.miner != miner:
        return f"data={data}: an export of `agora mine miner={card.miner}`, not of miner={miner} ({reads})"
    found = f"`agora mine miner={miner}` wrote this export with 0 train rows"
    if lost := (card.persuasions or {}).get("train"):
        reasons = ", ".join(f"{reason} {n}" for reason, n in lost.lost.items() if n) or "none"
        found += f" ({lost.turns} train persuasion turns, {lost.with_pairs} with pairs; lost: {reasons})"
    return f"data={data}: no {train_file}: {found}; see {card_file} ({reads})"


def load_data(config: TrainConfig, stage: str, spec: Stage) -> tuple[Dataset, Dataset | None]:
    """(train, validation or None) for one stage; fails naming the column a stage needs."""
    folder = Path(config.data.path) / spec.subset
    train_file = folder / "train.parquet"
    if not train_file.is_file():
        raise AgoraError(missing_export(Path(config.data.path), train_file, config.trainer.name, spec.miner))
    splits = [
        load_dataset("parquet", data_files=str(folder / f"{split}.parquet"), split="train")
        if (folder / f"{split}.parquet").is_file()
        else None
        for split in ("train", "validation")
    ]
    for column in spec.columns:
        if column not in splits[0].column_names:
            raise AgoraError(
                f"trainer {config.trainer.name} (stage {stage}) needs a '{column}' column, which "
                f"{train_file} does not have (it has {', '.join(splits[0].column_names)}); "
                f"`agora mine miner={spec.miner}` writes it"
            )
    if config.data.labels is not None:
        splits = [None if s is None else _keep_labels(s, config.data.labels, train_file) for s in splits]
    if len(splits[0]) == 0:
        raise AgoraError(f"data.labels={config.data.labels}: no rows of {train_file} are left")
    if splits[1] is None or len(splits[1]) == 0:
        why = (
            "has no validation rows"
            if splits[1] is None
            else f"has no validation rows with data.labels={config.data.labels}"
        )
        print(f"stage {stage}: {folder} {why}; it trains without an eval set (no validation loss)")
        splits[1] = None
    if spec.prepare:
        splits = [None if s is None else spec.prepare(s) for s in splits]
        if len(splits[0]) == 0:
            why = " ".join(spec.prepare.__doc__.split())
            raise AgoraError(f"trainer {config.trainer.name}, stage {stage}: no row of {train_file} is left ({why})")
        if splits[1] is not None and len(splits[1]) == 0:
            print(f"stage {stage}: no validation rows are left once prepared; it trains without an eval set")
            splits[1] = None
    return splits[0], splits[1]


def _keep_labels(data: Dataset, labels: list[str], source: Path) -> Dataset:
    # KTO rows carry the PBT label beside their own boolean `label`
    column = "pbt_label" if "pbt_label" in data.column_names else "label"
    if column not in data.column_names:
        raise AgoraError(f"data.labels: {source} has no label column to filter on")
    return data.filter(lambda row: row[column] in labels)


def _claim_out(config: TrainConfig, out: Path) -> None:
    """Refuse to mix runs: a finished run is replaced only with overwrite=true, an unfinished
    one is continued only with resume=true and the same config (trainer, its options, data,
    model, seed), or it would be two trainings under one name. `out` is locked by the caller."""
    record = config.model_dump(mode="json", exclude={"out", "resume", "overwrite"})
    if (out / "train.json").exists() and not config.overwrite:
        raise AgoraError(f"out={out}: a finished training run is there; overwrite=true replaces it")
    held = [entry for entry in out.iterdir() if entry.name != ".lock"]
    if held:
        if config.overwrite:
            for entry in held:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        elif not config.resume:
            raise AgoraError(
                f"out={out}: an unfinished training run is there; resume=true continues it, overwrite=true starts over"
            )
        else:
            saved = out / "train_config.json"
            before = json.loads(saved.read_text()).get("run", {}) if saved.exists() else {}
            changed = differing_keys(before, record)
            if changed:
                raise AgoraError(
                    f"resume=true: out={out} was started with another config (differing: "
                    f"{', '.join(changed)}); resume it with the config it was started with"
                )
    (out / "train_config.json").write_text(json.dumps({"run": record, "config": config.model_dump()}, indent=2))


def _maybe_lora(config: TrainConfig, model):
    lora = config.trainer.lora
    if _is_peft(model):  # training goes on in the adapter the model came with
        return model
    use = lora.enabled if lora.enabled != "auto" else model.num_parameters() > LORA_ABOVE
    if not use:
        return model
    from peft import LoraConfig, get_peft_model

    settings = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, settings)
    except ValueError as e:
        raise AgoraError(f"trainer.lora.target_modules={lora.target_modules}: model {config.model}: {e}") from None


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def _save_model(model, tokenizer, path: Path, model_name: str, merged: bool, weights: dict | None = None) -> None:
    """Write the model to `path` (through a temporary directory, so a kill leaves no half model).
    An adapter names its base the way a user would load it: the embedded alias or Hub id as
    given, a local path made absolute. `weights`: the full state dict, gathered from the
    processes of a sharded run (the model object itself holds only this process's shard)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if _is_peft(model) and merged:
        model = model.merge_and_unload()
    model.save_pretrained(tmp, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    make_readable(tmp)
    if _is_peft(model):
        config_file = tmp / "adapter_config.json"
        adapter = json.loads(config_file.read_text())
        adapter["base_model_name_or_path"] = _base_name(model_name)
        config_file.write_text(json.dumps(adapter, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def _base_name(model_name: str) -> str:
    base = adapter_base(model_name) or model_name
    local = Path(base).expanduser()
    return str(local.resolve()) if local.exists() else base


def _publish(saved: Path, out: Path) -> None:
    """Move the saved model's files into `out`, its config file last: until then `out` does not
    look like a model."""
    files = sorted(saved.iterdir(), key=lambda p: p.name in ("config.json", "adapter_config.json"))
    for f in files:
        target = out / f.name
        if target.is_dir():
            shutil.rmtree(target)
        f.rename(target)
    saved.rmdir()
