"""Time per optimizer step of `aft` and `dpo_constrained` against plain TRL `dpo`, on the same batch.

The data is `--batch` preference rows built from the bundled questions (a neutral prompt, a
reply ending in the right answer, one ending in a wrong answer); the dataset is exactly one
batch, so every step of every trainer sees the same sequences. AFT gets each pair as a group
with one positive and one negative. All three run with the same model, optimizer, precision
and gradient checkpointing setting; DPO's step includes its reference forward pass, AFT has
no reference model. The first `--warmup` steps are not timed.

    python benchmarks/train_step.py [--model smollm2-135m] [--batch 4] [--steps 8] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from agents.models import load_causal_lm
from dialogue.core.questions import LETTERS, load_questions, show_question
from dialogue.running.config import DatasetConfig
from trainers.aft import AFTCollator, AFTConfig, AFTTrainer
from trainers.dpo_constrained import DPOConstrainedConfig, DPOConstrainedTrainer

REASONING = (
    "Let me go through the options one at a time. The question asks for a single fact, so I "
    "compare each choice with what I know and rule out the ones that do not fit. "
)


def preference_rows(n: int) -> list[dict]:
    questions = load_questions(DatasetConfig(name="general_knowledge", limit=n)).questions
    rows = []
    for q in questions:
        wrong = next(letter for letter in LETTERS[: len(q.choices)] if letter != q.gold)
        rows.append(
            {
                "prompt": [
                    {"role": "user", "content": show_question(q) + "\n\nExplain briefly, then give your answer."}
                ],
                "chosen": [{"role": "assistant", "content": REASONING * 2 + f"Answer: {q.gold}"}],
                "rejected": [{"role": "assistant", "content": REASONING * 2 + f"Answer: {wrong}"}],
            }
        )
    return rows


class StepTimer(transformers.TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.started)


def time_trainer(name: str, rows: list[dict], opts: argparse.Namespace, out: str) -> float:
    transformers.set_seed(0)
    model, tokenizer = load_causal_lm(opts.model)
    common = dict(
        output_dir=os.path.join(out, name),
        max_steps=opts.warmup + opts.steps,
        per_device_train_batch_size=opts.batch,
        learning_rate=1e-6,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        gradient_checkpointing=opts.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        seed=0,
        disable_tqdm=True,
    )
    timer = StepTimer()
    if name == "aft":
        data = Dataset.from_list(
            [
                {
                    "prompt": r["prompt"],
                    "positives": [r["chosen"][0]["content"]],
                    "negatives": [r["rejected"][0]["content"]],
                    "ranked": [],
                }
                for r in rows
            ]
        )
        args = AFTConfig(**common)
        trainer = AFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            data_collator=AFTCollator(tokenizer, args.max_length),
            callbacks=[timer],
        )
    else:
        config_class, trainer_class = {
            "dpo": (DPOConfig, DPOTrainer),
            "dpo_constrained": (DPOConstrainedConfig, DPOConstrainedTrainer),
        }[name]
        trainer = trainer_class(
            model=model,
            args=config_class(**common),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[timer],
        )
    trainer.train()
    return statistics.median(timer.times[opts.warmup :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    opts = parser.parse_args()
    rows = preference_rows(opts.batch)
    print(
        f"model={opts.model} batch={opts.batch} pairs  steps={opts.steps} (after {opts.warmup} untimed)  "
        f"gradient_checkpointing={opts.gradient_checkpointing}  torch threads={torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory() as out:
        seconds = {name: time_trainer(name, rows, opts, out) for name in ("dpo", "dpo_constrained", "aft")}
    print(f"{'trainer':<16} {'s/step':>8} {'vs dpo':>8}")
    for name, s in seconds.items():
        print(f"{name:<16} {s:8.3f} {s / seconds['dpo']:8.2f}")
    print("target: dpo_constrained and aft at most 1.15x dpo")


if __name__ == "__main__":
    main()
