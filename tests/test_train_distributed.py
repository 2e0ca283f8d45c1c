"""`agora train` under `accelerate launch`: two CPU processes train as one (DDP over gloo) and
only the main one writes the output directory."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.models import load_causal_lm
from tests.conftest import REPO, agora, free_port, scripted_export


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return scripted_export(tmp_path_factory.mktemp("sft-export"), "sft")


def overrides(export, model, out, batch):
    return [
        "train",
        "trainer=sft",
        f"data={export}",
        f"model={model}",
        f"out={out}",
        "trainer.args.max_steps=2",
        f"trainer.args.per_device_train_batch_size={batch}",
        "trainer.args.warmup_steps=0",
        "trainer.args.save_steps=1",
    ]


def launch(processes, *args):
    """`accelerate launch --multi_gpu --num_processes N -m agora ...`, as a user runs it on a node.
    `--multi_gpu` is accelerate's torchrun launcher: on a machine without GPUs its processes run
    on the CPU over gloo. (`--cpu` with N processes starts one process: accelerate leaves
    multi-CPU runs to mpirun.)"""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(free_port())]  # not the last launch's, which may still be closing
    command += ["-m", "agora", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def first_losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]


def test_two_processes_train_as_one_on_the_same_global_batch(export, tiny_model, tmp_path):
    single = agora(*overrides(export, tiny_model, tmp_path / "single", batch=4))
    assert single.returncode == 0, single.stderr[-2000:]
    both = launch(2, *overrides(export, tiny_model, tmp_path / "ddp", batch=2))
    assert both.returncode == 0, both.stderr[-3000:]

    ddp = tmp_path / "ddp"
    summary = json.loads((ddp / "train.json").read_text())
    assert summary["processes"] == 2 and summary["stages"]["sft"]["global_step"] == 2
    # the main process alone wrote: one log line per step, one model, one final summary
    assert len(first_losses(ddp)) == 2 and both.stdout.count("out=") == 1
    load_causal_lm(str(ddp))
    # 2 processes x 2 rows see the 4 rows one process sees in a batch of 4: the same first loss,
    # and, after the same averaged gradient step, the same second one
    single_losses, ddp_losses = first_losses(tmp_path / "single"), first_losses(ddp)
    for one, two in zip(single_losses, ddp_losses, strict=True):
        assert math.isclose(one, two, rel_tol=1e-4), (single_losses, ddp_losses)


def test_an_error_on_the_main_process_stops_every_process_with_its_message(export, tiny_model, tmp_path):
    out = tmp_path / "ddp"
    first = launch(2, *overrides(export, tiny_model, out, batch=2))
    assert first.returncode == 0, first.stderr[-3000:]
    again = launch(2, *overrides(export, tiny_model, out, batch=2))  # a finished run is there
    assert again.returncode != 0
    # both processes stop with the message (the second is not left waiting for the first); the
    # launcher then reports its failed children in a traceback of its own
    assert again.stderr.count("a finished training run is there; overwrite=true replaces it") == 2
