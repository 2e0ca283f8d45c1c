"""A process verifier (PRM): the model learns to say, at the end of each step of a solution,
whether the step is right (Math-Shepherd, Wang et al. 2024; URSA's process supervision).

Reads `agora mine miner=stepwise` rows: the question, the solution's steps, a label per step.
Each step is followed by `step_separator`; at its last token the model's next-token logits for
`good_token` and `bad_token` give the step's logit (agents/scoring.py), and the loss is binary
cross-entropy on those positions only. The result is a causal LM like any other, which
`agora eval suite=verifier` scores solutions with. TRL removed its PRMTrainer; this is that
trainer on transformers' Trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments

from agents.config import BAD_TOKEN, GOOD_TOKEN, STEP_SEPARATOR
from agents.errors import AgoraError
from agents.scoring import (
    pad,
    padded,
    prompt_ids,
    step_logits,
    step_sequence,
    verdict_ids,
)
from trainers.losses import step_bce_loss
from trainers.stage import Stage

REQUIRED_COLUMNS = ("prompt", "completions", "labels")


@dataclass
class PRMConfig(TrainingArguments):
    step_separator: str = field(default=STEP_SEPARATOR, metadata={"help": "written after each step"})
    good_token: str = field(default=GOOD_TOKEN, metadata={"help": "the verdict token of a right step"})
    bad_token: str = field(default=BAD_TOKEN, metadata={"help": "the verdict token of a wrong step"})
    max_length: int = field(default=1024, metadata={"help": "prompt + steps; later steps that do not fit are left out"})
    remove_unused_columns: bool = False  # the collator reads the raw columns
    label_names: list[str] | None = field(default_factory=lambda: ["step_labels"])  # for the validation loss


class StepCollator:
    """Rows -> a padded batch: the sequences, each step's last position (-1: padding) and its label
    (-100: padding)."""

    def __init__(self, tokenizer, args: PRMConfig):
        self.tokenizer, self.separator, self.max_length = tokenizer, args.step_separator, args.max_length
        try:
            self.verdicts = verdict_ids(tokenizer, args.good_token, args.bad_token)
        except ValueError as e:
            raise AgoraError(f"trainer prm: trainer.stage.prm.{e}") from None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        ids, ends, labels = [], [], []
        for row in rows:
            prompt = prompt_ids(self.tokenizer, [{"role": "user", "content": row["prompt"]}])
            sequence, row_ends = step_sequence(
                self.tokenizer, prompt, row["completions"], self.separator, self.max_length
            )
            ids.append(sequence)
            ends.append(row_ends)
            labels.append([int(label) for label in row["labels"][: len(row_ends)]])
        return padded(self.tokenizer, ids) | {
            "step_ends": pad(ends, -1),
            "step_labels": pad(labels, -100),
        }


class PRMTrainer(Trainer):
    # compute_loss is a mean over the batch's steps: the Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ends, labels = inputs.pop("step_ends"), inputs.pop("step_labels")
        outputs = model(**inputs)
        loss = step_bce_loss(step_logits(outputs.logits, ends, *self.data_collator.verdicts), labels)
        return (loss, outputs) if return_outputs else loss


STAGES = {
    "prm": Stage(
        PRMConfig,
        PRMTrainer,
        REQUIRED_COLUMNS,
        miner="stepwise",
        collator=StepCollator,
    ),
}
