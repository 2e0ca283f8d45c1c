"""How well a model assesses answers: the mean log-probability it gives each candidate reply.

A reply is scored as the assistant's answer to the prompt under the model's chat template: the
mean log-probability of the reply's tokens given everything before them. The mean, not the sum,
so that a short answer is not preferred for being short (AFT scores answers the same way).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def mean_logprobs(model, tokenizer, prompt: list[dict], replies: list[str], batch_size: int = 8) -> list[float]:
    prefix = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    scores = []
    for start in range(0, len(replies), batch_size):
        batch = [
            tokenizer(r, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
            for r in replies[start : start + batch_size]
        ]
        width = len(prefix_ids) + max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        reply_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, ids in enumerate(batch):
            sequence = prefix_ids + ids
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
            attention[row, : len(sequence)] = 1
            reply_mask[row, len(prefix_ids) : len(sequence)] = True
        device = next(model.parameters()).device
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float().cpu()
        # The token at position t is predicted by the logits at t - 1.
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        mask = reply_mask[:, 1:]
        scores.extend(((logp * mask).sum(-1) / mask.sum(-1)).tolist())
    return scores
