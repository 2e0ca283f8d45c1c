"""Contrastive rationale distillation in the manner of QCRD (Wang et al. 2024, "Quality-guided
Contrastive Rationale Distillation for Large Language Models"): the student learns the right
rationales of a question, each against all of its wrong ones at once, weighted by an online
discriminator's judgement of each rationale.

The paper's abstract gives the parts: positive rationales learnt by likelihood, negative ones
(including the student's own earlier wrong ones) in a many-to-one contrastive loss, and an
online-updated discriminator that scores the rationales and weights them. Its exact loss was not
available where this was written, so the form below is Agora's own, said in full (docs/design.md):
for a question with right rationales p and wrong ones n, scored s (mean token log-probability),

    L = sft_weight * (NLL of the right rationales, each token weighted by its rationale's w_p)
        + mean over p of  w_p * log(1 + sum_n w_n * exp(s_n - s_p))

The discriminator is a linear head over the student's mean last hidden state of each rationale
(trainers/heads.py), learnt with binary cross-entropy to tell right from wrong. Its probability q
that a rationale is right gives w_p = q for a right one and w_n = 1 - q for a wrong one: the
rationales it finds typical of their side count most, one it would place on the other side (a
noisy label) counts least. With `discriminator=false` every weight is 1.

Reads an `agora mine miner=stepwise` export: the rows of a question (from every run mined
together, so a run of the student's own solutions gives its earlier wrong ones) are grouped into
its right and wrong rationales; a question without both is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from agents.scoring import masked_mean, sequence_scores
from trainers.aft import AFTCollator, by_group
from trainers.heads import OnlineHead
from trainers.losses import qcrd_loss
from trainers.stage import LogsLossParts, Stage

REQUIRED_COLUMNS = ("prompt", "completions", "correct", "question_id")


@dataclass
class QCRDConfig(TrainingArguments):
    sft_weight: float = field(default=1.0, metadata={"help": "weight of the likelihood of the right rationales"})
    discriminator: bool = field(default=True, metadata={"help": "weight rationales by an online discriminator"})
    discriminator_learning_rate: float = field(default=1e-4, metadata={"help": "the discriminator head's rate"})
    max_length: int = field(default=1024, metadata={"help": "prompt + rationale tokens; long prompts lose their start"})
    remove_unused_columns: bool = False  # the collator reads the raw columns


def as_groups(data: Dataset) -> Dataset:
    """One row per question: its right and its wrong rationales (a question needs both)."""
    groups: dict[str, dict] = {}
    for row in data.to_list():
        group = groups.setdefault(
            row["question_id"],
            {"prompt": [{"role": "user", "content": row["prompt"]}], "positives": [], "negatives": []},
        )
        group["positives" if row["correct"] is True else "negatives"].append("\n".join(row["completions"]))
    kept = [
        {
            "question_id": qid,
            **g,
            "positives": list(dict.fromkeys(g["positives"])),
            "negatives": list(dict.fromkeys(g["negatives"])),
        }
        for qid, g in groups.items()
        if g["positives"] and g["negatives"]
    ]
    return Dataset.from_list(kept) if kept else data.select([])


class QCRDTrainer(LogsLossParts, Trainer):
    # the loss is a mean over tokens and positives: the Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qcrd: QCRDConfig = self.args
        rate = self.qcrd.discriminator_learning_rate
        self.discriminator = OnlineHead(self.model, rate, "qcrd", "discriminator") if self.qcrd.discriminator else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        group, positive = inputs.pop("group"), inputs.pop("positive")
        inputs.pop("rank")
        labels = inputs.pop("labels")
        outputs = model(**inputs, output_hidden_states=self.discriminator is not None)
        scores, counts = sequence_scores(outputs.logits, labels)
        weights = torch.ones_like(scores)
        parts = {}
        if self.discriminator is not None:
            pooled, _ = masked_mean(outputs.hidden_states[-1].transpose(1, 2), (labels != -100)[:, None, :])
            quality = self.discriminator(pooled)
            judged = F.binary_cross_entropy_with_logits(quality, positive.to(quality.dtype))
            if model.training:
                self.discriminator.learn(judged)
            with torch.no_grad():
                right = torch.sigmoid(quality)
                weights = torch.where(positive, right, 1 - right)
            parts["discriminator_loss"] = judged.item()
        pos, pos_mask = by_group(scores, group, positive)
        neg, neg_mask = by_group(scores, group, ~positive)
        pos_w, _ = by_group(weights, group, positive)
        neg_w, _ = by_group(weights, group, ~positive)
        token_weights = weights[positive] * counts[positive]
        sft = -(scores[positive] * token_weights).sum() / counts[positive].sum().clamp(min=1)
        contrast = qcrd_loss(pos, neg, pos_mask, neg_mask, pos_w, neg_w)
        loss = self.qcrd.sft_weight * sft + contrast
        if model.training:
            self._metrics = {"sft_loss": sft.item(), "contrast_loss": contrast.item(), **parts}
        return (loss, outputs) if return_outputs else loss


STAGES = {
    "qcrd": Stage(
        QCRDConfig,
        QCRDTrainer,
        REQUIRED_COLUMNS,
        miner="stepwise",
        prepare=as_groups,
        collator=lambda tokenizer, args: AFTCollator(tokenizer, args.max_length),
    ),
}
