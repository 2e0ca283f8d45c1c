"""Weighted SFT: supervised fine-tuning where each row's tokens count by the row's `weight`.

Reads the `weighted/` rows of `agora mine miner=steps`: a prompt (the question and the steps
before), one step as the completion, and the step's advantage as its weight (Setlur et al.
2024: a step is reinforced by how much it raised the chance of reaching the right answer).
Weights below `min_weight` are raised to it, so by default a step that lowered the chance is
not learnt from at all; a negative `min_weight` pushes such steps down, with no bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments

from agents.scoring import answer_sequence, padded, prompt_ids, sequence_scores
from trainers.losses import weighted_sft_loss
from trainers.stage import Stage

REQUIRED_COLUMNS = ("prompt", "completion", "weight")


@dataclass
class WeightedSFTConfig(TrainingArguments):
    min_weight: float = field(default=0.0, metadata={"help": "weights below this are raised to it"})
    max_length: int = field(
        default=1024, metadata={"help": "prompt + completion tokens; long prompts lose their start"}
    )
    remove_unused_columns: bool = False  # the collator reads the raw columns


class WeightedCollator:
    """Rows -> a padded batch of prompt + completion sequences, labels on the completion only,
    and each row's weight."""

    def __init__(self, tokenizer, max_length: int = 1024):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        ids, labels = zip(
            *(
                answer_sequence(
                    self.tokenizer, prompt_ids(self.tokenizer, row["prompt"]), _text(row["completion"]), self.max_length
                )
                for row in rows
            ),
            strict=True,
        )
        return padded(self.tokenizer, list(ids), list(labels)) | {
            "weight": torch.tensor([float(row["weight"]) for row in rows]),
        }


def _text(completion) -> str:
    """A conversational completion (one assistant message) or a plain string."""
    return completion if isinstance(completion, str) else "".join(m["content"] for m in completion)


class WeightedSFTTrainer(Trainer):
    # compute_loss is a mean over the batch's tokens: the Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = inputs.pop("weight").clamp(min=self.args.min_weight)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        scores, counts = sequence_scores(outputs.logits, labels)
        loss = weighted_sft_loss(scores, counts, weight.to(scores.dtype))
        return (loss, outputs) if return_outputs else loss


STAGES = {
    "sft_weighted": Stage(
        WeightedSFTConfig,
        WeightedSFTTrainer,
        REQUIRED_COLUMNS,
        miner="steps",
        subset="weighted",
        collator=lambda tokenizer, args: WeightedCollator(tokenizer, args.max_length),
    ),
}
