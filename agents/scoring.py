"""How likely a model finds an answer: the mean log-probability of its tokens after a prompt.

One definition for training and for evaluation: AFT (trainers/aft.py) learns from these scores
and the assessment suite measures with them, so an answer is tokenized the same way in both
(the prompt under the chat template, then the answer and the tokenizer's end-of-text token) and
scored the same way (the mean, not the sum, so that a short answer is not preferred for being
short). A prompt too long for `max_length` loses its start, never the answer.
"""

from __future__ import annotations

import torch


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_sequence(tokenizer, prompt: list[int], answer: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) of a prompt and an answer: labels -100 on the prompt, the ids on the answer."""
    answer_ids = tokenizer(answer + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids[: max_length - 1]
    kept = prompt[-(max_length - len(answer_ids)) :]
    return kept + answer_ids, [-100] * len(kept) + answer_ids


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the mean of `values` where `mask` is set, and how many there are."""
    mask = mask.to(values.dtype)
    counts = mask.sum(dim=-1)
    return (values * mask).sum(dim=-1) / counts.clamp(min=1), counts


def sequence_scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: (mean log-probability of its labelled tokens, how many there are). The token
    at position t is predicted by the logits at t - 1."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != -100
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return masked_mean(logps, mask)


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-padded to the longest row."""
    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


@torch.no_grad()
def mean_logprobs(
    model, tokenizer, prompt: list[dict], answers: list[str], batch_size: int = 8, max_length: int = 1024
) -> list[float]:
    """The score of each answer to the same prompt."""
    prefix = prompt_ids(tokenizer, prompt)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(answers), batch_size):
        ids, labels = zip(
            *(answer_sequence(tokenizer, prefix, a, max_length) for a in answers[start : start + batch_size]),
            strict=True,
        )
        logits = model(
            input_ids=pad(list(ids), pad_id).to(device), attention_mask=pad([[1] * len(s) for s in ids], 0).to(device)
        ).logits
        scores.extend(sequence_scores(logits.float().cpu(), pad(list(labels), -100))[0].tolist())
    return scores
