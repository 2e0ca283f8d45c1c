"""A small model learnt beside the one being trained: a linear head over that model's last hidden
states, detached (so it never trains the model), with its own optimizer. OREAL's token-level
reward model and QCRD's quality discriminator are such heads here, where the papers use a second
full model. A head is not saved with the model, its optimizer state is not kept across
`resume=true`, and it learns in one process only (under `accelerate launch` each process would
learn a different one)."""

from __future__ import annotations

import torch

from agents.errors import AgoraError


class OnlineHead:
    def __init__(self, model, learning_rate: float, trainer: str, option: str):
        from accelerate import PartialState

        if PartialState().num_processes > 1:
            raise AgoraError(
                f"trainer {trainer}: its {option} head learns in one process only; set "
                f"trainer.stage.{trainer}.{option}=false to train in several"
            )
        self.linear = torch.nn.Linear(model.config.hidden_size, 1).to(model.device)
        self.optimizer = torch.optim.AdamW(self.linear.parameters(), lr=learning_rate)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """One logit per position: [..., hidden] -> [...]."""
        return self.linear(hidden.detach().float()).squeeze(-1)

    def learn(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
