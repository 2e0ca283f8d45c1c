"""Alignment fine-tuning (AFT, Wang et al. 2023): SFT on correct answers plus a constraint
alignment loss that ranks every correct answer above every wrong one.

Reads an `agora mine miner=aft` export: `prompt` (chat messages), `positives`, `negatives` and
`ranked` (lists of answer texts). Each answer is scored by its mean token log-probability given
the prompt under the model being trained; there is no reference model. Groups of any size share
a batch: the collator flattens them into sequences and remembers which group and side each is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import Trainer, TrainingArguments

from agents.scoring import answer_sequence, padded, prompt_ids, sequence_scores
from trainers.losses import aft_loss, aft_ranking_loss
from trainers.stage import LogsLossParts, Stage

REQUIRED_COLUMNS = ("prompt", "positives", "negatives")


@dataclass
class AFTConfig(TrainingArguments):
    constraint: Literal["boundary", "detached", "none"] = field(
        default="boundary", metadata={"help": "how negatives are held: at the boundary B, detached, or not at all"}
    )
    beta: float = field(default=0.1, metadata={"help": "B = min positive score - beta"})
    ranking: bool = field(default=False, metadata={"help": "use the `ranked` column: every ordered pair counts"})
    sft_weight: float = field(default=1.0, metadata={"help": "weight of the SFT loss on positives"})
    max_length: int = field(default=1024, metadata={"help": "prompt + answer tokens; longer prompts lose their start"})
    remove_unused_columns: bool = False  # the collator reads the raw columns


class AFTCollator:
    """Rows -> one padded batch of (prompt + answer) sequences, with per-sequence group index,
    side (1 positive, 0 negative) and rank, and labels only on answer tokens."""

    def __init__(self, tokenizer, max_length: int = 1024, ranking: bool = False):
        self.tokenizer, self.max_length, self.ranking = tokenizer, max_length, ranking

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        sequences, labels, group, positive, rank = [], [], [], [], []
        for g, row in enumerate(rows):
            prompt = prompt_ids(self.tokenizer, row["prompt"])
            if self.ranking:
                good = set(row["positives"])
                answers = [(text, text in good, k) for k, text in enumerate(row["ranked"])]
            else:
                answers = [(text, True, 0) for text in row["positives"]]
                answers += [(text, False, 1) for text in row["negatives"]]
            for text, is_positive, k in answers:
                ids, answer_labels = answer_sequence(self.tokenizer, prompt, text, self.max_length)
                sequences.append(ids)
                labels.append(answer_labels)
                group.append(g)
                positive.append(is_positive)
                rank.append(k)
        return padded(self.tokenizer, sequences, labels) | {
            "group": torch.tensor(group),
            "positive": torch.tensor(positive),
            "rank": torch.tensor(rank),
        }


def by_group(values: torch.Tensor, group: torch.Tensor, select: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter the selected per-sequence values into a [groups, most per group] tensor and mask."""
    groups = int(group.max()) + 1
    idx = group[select]
    slot = torch.zeros_like(idx)
    for g in range(groups):  # position of each selected sequence within its group
        here = idx == g
        slot[here] = torch.arange(int(here.sum()), device=idx.device)
    width = max(int(slot.max()) + 1 if len(slot) else 1, 1)
    out = values.new_zeros((groups, width))
    mask = torch.zeros((groups, width), dtype=torch.bool, device=values.device)
    out[idx, slot] = values[select]
    mask[idx, slot] = True
    return out, mask


class AFTTrainer(LogsLossParts, Trainer):
    # compute_loss returns a batch mean, not a sum over num_items_in_batch: the Trainer must
    # divide it by the gradient accumulation steps (transformers >= 5.19 reads this)
    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.aft: AFTConfig = self.args
        for column in REQUIRED_COLUMNS + (("ranked",) if self.aft.ranking else ()):
            if self.train_dataset is not None and column not in self.train_dataset.column_names:
                raise ValueError(
                    f"trainer aft needs a '{column}' column (from `agora mine miner=aft`); "
                    f"the dataset has {', '.join(self.train_dataset.column_names)}"
                )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        group, positive, rank = inputs.pop("group"), inputs.pop("positive"), inputs.pop("rank")
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        scores, counts = sequence_scores(outputs.logits, labels)
        # SFT on the positives: token-level negative log-likelihood
        sft = -(scores[positive] * counts[positive]).sum() / counts[positive].sum().clamp(min=1)
        a = self.aft
        if a.ranking:
            ranked, mask = by_group(scores, group, torch.ones_like(positive))
            ranks, _ = by_group(rank.to(scores.dtype), group, torch.ones_like(positive))
            align = aft_ranking_loss(ranked, ranks, mask, a.constraint, a.beta)
        else:
            pos, pos_mask = by_group(scores, group, positive)
            neg, neg_mask = by_group(scores, group, ~positive)
            align = aft_loss(pos, neg, pos_mask, neg_mask, a.constraint, a.beta)
            boundary = pos.masked_fill(~pos_mask, float("inf")).min(dim=1).values - a.beta
        loss = a.sft_weight * sft + align
        if self.model.training:
            with torch.no_grad():
                pos_scores, neg_scores = scores[positive], scores[~positive]
                self._metrics = {
                    "sft_loss": sft.item(),
                    "align_loss": align.item(),
                    "score_positive": pos_scores.mean().item() if len(pos_scores) else float("nan"),
                    "score_negative": neg_scores.mean().item() if len(neg_scores) else float("nan"),
                }
                if not a.ranking:
                    self._metrics["boundary"] = boundary[boundary.isfinite()].mean().item()
        return (loss, outputs) if return_outputs else loss


STAGES = {
    "aft": Stage(
        AFTConfig,
        AFTTrainer,
        REQUIRED_COLUMNS,
        miner="aft",
        collator=lambda tokenizer, args: AFTCollator(tokenizer, args.max_length, args.ranking),
    ),
}
