"""Constrained DPO: TRL's DPO loss plus AFT's boundary term on the rejected answer's score,
log(1 + exp(T - s_rejected)) with T = s_chosen - 2 * beta_c held constant, where s is the mean
token log-probability under the model being trained. Plain DPO can lower both answers' scores
as long as their gap grows; the term stops the rejected score from falling far below the chosen.

The scores come from the policy forward pass DPO already makes (captured with a forward hook),
so the term costs no extra pass through the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trl
from trl import DPOConfig, DPOTrainer

from agents.scoring import masked_mean
from trainers.losses import dpo_boundary_term
from trainers.stage import Stage


@dataclass
class DPOConstrainedConfig(DPOConfig):
    beta_c: float = field(default=0.1, metadata={"help": "the boundary sits at s_chosen - 2 * beta_c"})
    boundary_weight: float = field(default=1.0, metadata={"help": "weight of the boundary term"})


class DPOConstrainedTrainer(DPOTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forwards = []
        hook = model.register_forward_hook(lambda module, args, output: forwards.append(output))
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            hook.remove()
        loss = result[0] if return_outputs else result
        # DPO's first forward is the policy's on [chosen..., rejected...]; later ones are the reference's
        mask = inputs["completion_mask"][:, 1:]
        log_probs = getattr(forwards[0], "log_probs", None) if forwards else None
        if log_probs is None or log_probs.shape[0] != mask.shape[0] or log_probs.shape[1] < mask.shape[1]:
            raise RuntimeError(
                f"dpo_constrained reads the policy's token log-probabilities from TRL's DPO forward pass (an output "
                f"with `log_probs`, one row per chosen and rejected sequence); TRL {trl.__version__} gave "
                f"{type(forwards[0]).__name__ if forwards else 'no forward'} instead. trainers/dpo_constrained.py "
                "must follow TRL's DPOTrainer.compute_loss"
            )
        scores, _ = masked_mean(log_probs[:, -mask.size(1) :], mask)
        chosen, rejected = scores.chunk(2)
        term = dpo_boundary_term(chosen, rejected, self.args.beta_c).mean()
        loss = loss + self.args.boundary_weight * term
        metrics = self._metrics["train" if self.model.training else "eval"]
        metrics["boundary/term"].append(self.accelerator.gather(term.detach()).mean().item())
        metrics["boundary/T"].append(self.accelerator.gather(chosen.detach() - 2 * self.args.beta_c).mean().item())
        metrics["scores/chosen"].append(self.accelerator.gather(chosen.detach()).mean().item())
        metrics["scores/rejected"].append(self.accelerator.gather(rejected.detach()).mean().item())
        return (loss, result[1]) if return_outputs else loss


STAGES = {
    "dpo_constrained": Stage(
        DPOConstrainedConfig, DPOConstrainedTrainer, ("prompt", "chosen", "rejected"), miner="pbt"
    ),
}
