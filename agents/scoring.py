"""How likely a model finds an answer: the mean log-probability of its tokens after a prompt.

One definition for training and for evaluation: AFT (trainers/aft.py) learns from these scores
and the assessment suite measures with them, so an answer is tokenized the same way in both
(the prompt under the chat template, then the answer and the tokenizer's end-of-text token) and
scored the same way (the mean, not the sum, so that a short answer is not preferred for being
short). A prompt too long for `max_length` loses its start, never the answer.
"""

from __future__ import annotations

import torch

from agents.config import BAD_TOKEN, GOOD_TOKEN, STEP_SEPARATOR


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


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each labelled token's log-probability and the mask of labelled tokens, both [B, T - 1]: the
    token at position t is predicted by the logits at t - 1."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return logps, labels != -100


def sequence_scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: (mean log-probability of its labelled tokens, how many there are)."""
    return masked_mean(*token_logps(logits, labels))


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-padded to the longest row."""
    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def padded(tokenizer, ids: list[list[int]], labels: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """A batch of sequences: input ids padded with the tokenizer's pad token (its end-of-text
    token where it has none), the attention mask, and the labels padded with -100, if given."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = {"input_ids": pad(ids, pad_id), "attention_mask": pad([[1] * len(s) for s in ids], 0)}
    return batch | ({"labels": pad(labels, -100)} if labels is not None else {})


@torch.no_grad()
def mean_logprobs(
    model, tokenizer, prompt: list[dict], answers: list[str], batch_size: int = 8, max_length: int = 1024
) -> list[float]:
    """The score of each answer to the same prompt."""
    prefix = prompt_ids(tokenizer, prompt)
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(answers), batch_size):
        ids, labels = zip(
            *(answer_sequence(tokenizer, prefix, a, max_length) for a in answers[start : start + batch_size]),
            strict=True,
        )
        batch = padded(tokenizer, list(ids), list(labels))
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        scores.extend(sequence_scores(logits.float().cpu(), batch["labels"])[0].tolist())
    return scores


# --- a process verifier's score of each step -------------------------------------------------
#
# Math-Shepherd's form: the solution's steps follow the prompt, each ending in a separator, and at
# each step's last token the model's next-token logits for a "good" and a "bad" token give the
# step's logit, z = logit(good) - logit(bad); sigmoid(z) is the chance that the step is right.
# One causal LM serves, so a verifier is saved, loaded and served like any other model.


def verdict_ids(tokenizer, good: str, bad: str) -> tuple[int, int]:
    """The token ids of the good and bad verdicts; each must be one token of the tokenizer."""
    ids = []
    for name, token in (("good_token", good), ("bad_token", bad)):
        found = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(found) != 1:
            raise ValueError(
                f"{name}={token!r} is {len(found)} tokens for {tokenizer.name_or_path}'s tokenizer; choose one token"
            )
        ids.append(found[0])
    if ids[0] == ids[1]:
        raise ValueError(f"good_token={good!r} and bad_token={bad!r} are the same token")
    return ids[0], ids[1]


def step_sequence(
    tokenizer, prompt: list[int], steps: list[str], separator: str, max_length: int
) -> tuple[list[int], list[int]]:
    """(input ids, the position of each step's last token): the prompt, then each step followed by
    the separator. A prompt too long loses its start; steps that do not fit are left out."""
    chunks = [tokenizer(step + separator, add_special_tokens=False)["input_ids"] for step in steps]
    budget = max_length - 1
    kept = []
    for chunk in chunks:
        if sum(map(len, kept)) + len(chunk) > budget:
            break
        kept.append(chunk)
    room = max_length - sum(map(len, kept))
    ids = prompt[-room:] if room > 0 else []
    ends = []
    for chunk in kept:
        ids = ids + chunk
        ends.append(len(ids) - 1)
    return ids, ends


def step_logits(logits: torch.Tensor, ends: torch.Tensor, good: int, bad: int) -> torch.Tensor:
    """[B, S] step logits from [B, T, V] logits at `ends` [B, S] (padding: -1, its logit is 0)."""
    picked = logits.float().gather(1, ends.clamp(min=0)[..., None].expand(-1, -1, logits.shape[-1]))
    return (picked[..., good] - picked[..., bad]).masked_fill(ends < 0, 0.0)


@torch.no_grad()
def step_scores(
    model,
    tokenizer,
    prompt: list[dict],
    solutions: list[list[str]],
    separator: str = STEP_SEPARATOR,
    good: str = GOOD_TOKEN,
    bad: str = BAD_TOKEN,
    batch_size: int = 8,
    max_length: int = 1024,
) -> list[list[float]]:
    """Each solution's steps' chances of being right, sigmoid(z), for the solutions to one prompt
    (a step that did not fit in `max_length` gets none)."""
    good_id, bad_id = verdict_ids(tokenizer, good, bad)
    prefix = prompt_ids(tokenizer, prompt)
    device = next(model.parameters()).device
    found: list[list[float]] = []
    for start in range(0, len(solutions), batch_size):
        ids, ends = zip(
            *(
                step_sequence(tokenizer, prefix, s, separator, max_length)
                for s in solutions[start : start + batch_size]
            ),
            strict=True,
        )
        batch = padded(tokenizer, list(ids))
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        z = step_logits(logits.cpu(), pad([list(e) for e in ends], -1), good_id, bad_id)
        found.extend([torch.sigmoid(row[: len(e)]).tolist() for row, e in zip(z, ends, strict=True)])
    return found
