"""OREAL (Lyu et al. 2025, "Exploring the Limit of Outcome Reward for Learning Mathematical
Reasoning"): learning from sampled solutions whose only feedback is whether the final answer is
right.

Reads an `agora mine miner=stepwise` export: each row one solution sampled from a question (its
steps, joined, are the completion), with `correct`. The rows of a question are its best-of-N
group. Per solution, the reward r is 1 when it is correct, else 0 (an answer that could not be
read is not correct), and the advantage is r minus the mean reward of the question's other
solutions (the RLOO baseline OREAL reshapes the negatives' reward with); a question with one
solution has no baseline and is left out. The loss (trainers/losses.py: `oreal_loss`) clones the
right solutions and pushes the wrong ones down by their advantage.

With `token_rm=true` a token-level reward model is trained beside the policy, and weights each
token of the loss: a linear head over the policy's last hidden states (detached, so it does not
train the policy), learnt with binary cross-entropy of its mean token score against the outcome
and its own optimizer (trainers/heads.py). A token's weight is the running mean of the scores up to it, as a
probability: sigmoid, then `threshold_rescale` (for a right solution the probability of right,
for a wrong one of wrong). For `token_rm_warmup_steps` steps only the head learns, as OREAL
freezes the policy while its reward model starts.

Simplified from the paper, and said where it is documented (docs/design.md): training is offline
over one set of samples (OREAL samples anew from the policy every step, so here the ratio to the
sampling policy is taken as 1); there is no KL penalty to a reference model; the token-level
reward model is a head on the policy's features instead of a second full model, it is not saved,
and it trains in one process only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from agents.scoring import answer_sequence, masked_mean, padded, prompt_ids, token_logps
from trainers.heads import OnlineHead
from trainers.losses import oreal_loss, threshold_rescale
from trainers.stage import LogsLossParts, Stage

REQUIRED_COLUMNS = ("prompt", "completions", "correct", "question_id")


@dataclass
class OREALConfig(TrainingArguments):
    positive_factor: float = field(default=1.0, metadata={"help": "weight of the behaviour cloning on right solutions"})
    negative_factor: float = field(default=0.5, metadata={"help": "weight of the term on wrong solutions"})
    token_rm: bool = field(default=True, metadata={"help": "weight tokens by a token-level reward model"})
    # a new linear head learns far faster than OREAL's full reward model (2e-6) could
    token_rm_learning_rate: float = field(default=1e-4, metadata={"help": "the token-level reward model's rate"})
    token_rm_warmup_steps: int = field(default=10, metadata={"help": "steps in which only the reward model learns"})
    right_threshold: float = field(default=0.5, metadata={"help": "token weights of right solutions start above"})
    wrong_threshold: float = field(default=0.5, metadata={"help": "token weights of wrong solutions start above"})
    max_length: int = field(default=1024, metadata={"help": "prompt + solution tokens; long prompts lose their start"})
    remove_unused_columns: bool = False  # the collator reads the raw columns


def with_advantages(data: Dataset) -> Dataset:
    """Each solution's reward and its advantage over the other solutions of its question (a question
    needs two solutions or more)."""
    rows = data.to_list()
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("run", ""), row["question_id"]), []).append(row)
    kept = []
    for group in groups.values():
        if len(group) < 2:
            continue
        total = sum(row["correct"] is True for row in group)
        for row in group:
            reward = float(row["correct"] is True)
            kept.append({**row, "reward": reward, "advantage": reward - (total - reward) / (len(group) - 1)})
    return Dataset.from_list(kept) if kept else data.select([])


class OutcomeCollator:
    """Rows -> padded (prompt + solution) sequences, labels on the solution, reward and advantage."""

    def __init__(self, tokenizer, args: OREALConfig):
        self.tokenizer, self.max_length = tokenizer, args.max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        ids, labels = zip(
            *(
                answer_sequence(
                    self.tokenizer,
                    prompt_ids(self.tokenizer, [{"role": "user", "content": row["prompt"]}]),
                    "\n".join(row["completions"]),
                    self.max_length,
                )
                for row in rows
            ),
            strict=True,
        )
        return padded(self.tokenizer, list(ids), list(labels)) | {
            "reward": torch.tensor([row["reward"] for row in rows]),
            "advantage": torch.tensor([row["advantage"] for row in rows]),
        }


class OREALTrainer(LogsLossParts, Trainer):
    # every part of the loss is a mean over tokens: the Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.oreal: OREALConfig = self.args
        self.token_rm = (
            OnlineHead(self.model, self.oreal.token_rm_learning_rate, "oreal", "token_rm")
            if self.oreal.token_rm
            else None
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        reward, advantage, labels = inputs.pop("reward"), inputs.pop("advantage"), inputs.pop("labels")
        outputs = model(**inputs, output_hidden_states=self.token_rm is not None)
        logps, mask = token_logps(outputs.logits, labels)  # each solution token's, where it is predicted
        right_w = wrong_w = None
        parts = {}
        if self.token_rm is not None:
            scores = self.token_rm(outputs.hidden_states[-1][:, :-1])
            mean, _ = masked_mean(scores, mask)
            rm_loss = F.binary_cross_entropy_with_logits(mean, reward.to(mean.dtype))
            if model.training:
                self.token_rm.learn(rm_loss)
            with torch.no_grad():
                counted = mask.to(scores.dtype)
                running = (scores * counted).cumsum(-1) / counted.cumsum(-1).clamp(min=1)
                right_p = torch.sigmoid(running)
                right_w = threshold_rescale(right_p, self.oreal.right_threshold)
                wrong_w = threshold_rescale(1 - right_p, self.oreal.wrong_threshold)
            parts["token_rm_loss"] = rm_loss.item()
        loss, positive, negative = oreal_loss(
            logps,
            mask,
            reward,
            advantage,
            right_w,
            wrong_w,
            self.oreal.positive_factor,
            self.oreal.negative_factor,
        )
        if self.state.global_step < self.oreal.token_rm_warmup_steps:
            loss = loss * 0.0  # the policy waits while the reward model starts
        if model.training:
            self._metrics = {"positive_loss": positive.item(), "negative_loss": negative.item(), **parts}
        return (loss, outputs) if return_outputs else loss


STAGES = {
    "oreal": Stage(
        OREALConfig,
        OREALTrainer,
        REQUIRED_COLUMNS,
        miner="stepwise",
        prepare=with_advantages,
        collator=OutcomeCollator,
    ),
}
