"""In-process generation with Hugging Face transformers: the embedded default, CPU or GPU.

The backend runs its own loop over the model instead of `generate()`, for two savings that
matter most where compute is scarce:
- Siblings (requests whose messages differ only in the last one) share a prompt prefix; it is
  run through the model once per group and its KV cache is copied to each sibling, which then
  only runs its own suffix. On a CPU, where reading the prompt costs more than writing the
  reply, this is most of the work.
- A row that has finished leaves the batch, so one long reply does not keep every finished row
  computing until it ends.
Each row samples with its own generator, so a completion depends only on its seed and prompt,
not on which other requests shared its batch.
"""

from __future__ import annotations

import time
from itertools import groupby

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from agents.backends.chat import merge_system, template_takes_system
from agents.config import TransformersBackendConfig
from agents.models import resolve_model
from agents.requests import ChatRequest, Completion, Sampling


def nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest set of most probable tokens whose mass reaches top_p, per row: (probabilities
    with the tokens outside the set zeroed, their token ids), most probable first.

    The set is a prefix of the sorted order, so `topk` with a k that grows until the prefix
    holds top_p of the mass finds exactly it, without sorting the whole vocabulary every step.
    """
    vocab = probs.shape[-1]
    if top_p >= 1.0:
        return probs, torch.arange(vocab, device=probs.device).expand_as(probs)
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1)
        if k == vocab or bool((top.sum(dim=-1) >= top_p).all()):
            break
        k = min(k * 4, vocab)
    outside = top.cumsum(dim=-1) - top > top_p
    return top.masked_fill(outside, 0.0), ids


def sample_next(logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else a nucleus draw with the row's generator."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    candidates, token_ids = nucleus(probs, sampling.top_p)
    # Inverse-CDF draw: one uniform number per row from that row's own generator.
    u = torch.cat([torch.rand(1, generator=g, device=logits.device) for g in generators])
    cdf = candidates.cumsum(dim=-1)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    return token_ids.gather(-1, pick).squeeze(-1)


class TransformersBackend:
    def __init__(self, model: str, config: TransformersBackendConfig | None = None):
        config = config or TransformersBackendConfig()
        self.model_id = model
        self.batch_size = config.batch_size
        path = resolve_model(model)
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.device = device
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.eos_ids = set(_eos_ids(self.model, self.tokenizer))
        self.merge_system = not template_takes_system(self.tokenizer)

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        chat = merge_system(request.chat()) if self.merge_system else request.chat()
        text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        prompts = [self.prompt_ids(r) for r in requests]
        by_sampling = sorted(range(len(requests)), key=lambda i: _sampling_key(requests[i]))
        for _, same_sampling in groupby(by_sampling, key=lambda i: _sampling_key(requests[i])):
            for batch in self._batches(list(same_sampling), requests, prompts):
                outs = self._generate_batch([prompts[i] for i in batch], [requests[i] for i in batch])
                for i, completion in zip(batch, outs):
                    results[i] = completion
        return results  # type: ignore[return-value]

    def _batches(self, rows: list[int], requests: list[ChatRequest], prompts: list[list[int]]) -> list[list[int]]:
        """Sibling groups kept whole, shortest first so that padding stays small."""
        groups: dict[tuple, list[int]] = {}
        for i in rows:
            groups.setdefault(requests[i].messages[:-1], []).append(i)
        ordered = sorted(groups.values(), key=lambda g: max(len(prompts[i]) for i in g))
        batches: list[list[int]] = [[]]
        for group in ordered:
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                if len(batches[-1]) + len(chunk) > self.batch_size:
                    batches.append([])
                batches[-1].extend(chunk)
        return [b for b in batches if b]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], requests: list[ChatRequest]) -> list[Completion]:
        started = time.perf_counter()
        sampling = requests[0].sampling
        cache, mask, logits = self._prefill(prompts, requests)
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in requests]
        tokens: list[list[int]] = [[] for _ in prompts]
        stopped = [False] * len(prompts)
        active = list(range(len(prompts)))
        positions = mask.sum(dim=-1) - 1
        while True:
            picks = sample_next(logits, sampling, [generators[i] for i in active]).tolist()
            keep = []
            for slot, (row, token) in enumerate(zip(active, picks)):
                if token in self.eos_ids:
                    stopped[row] = True
                    continue
                tokens[row].append(token)
                if len(tokens[row]) < sampling.max_tokens:
                    keep.append(slot)
            if not keep:
                break
            if len(keep) < len(active):  # finished rows leave the batch and its cache
                index = torch.tensor(keep, device=self.device)
                cache.reorder_cache(index)
                mask, positions = mask[index], positions[index]
            active = [active[k] for k in keep]
            next_ids = torch.tensor([[tokens[row][-1]] for row in active], device=self.device)
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            positions = positions + 1
            out = self.model(input_ids=next_ids, attention_mask=mask, position_ids=positions[:, None],
                             past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1]
        latency = time.perf_counter() - started
        return [
            Completion(
                text=self.tokenizer.decode(tokens[row], skip_special_tokens=True).strip(),
                prompt_tokens=len(prompts[row]),
                completion_tokens=len(tokens[row]) + stopped[row],
                finish_reason="stop" if stopped[row] else "length",
                latency_s=latency,
            )
            for row in range(len(prompts))
        ]

    def _prefill(self, prompts: list[list[int]], requests: list[ChatRequest]):
        """Run the prompts through the model, each sibling group's shared prefix only once.

        Returns the KV cache (one row per prompt), the attention mask over what it holds, and
        the logits for each prompt's first new token.
        """
        groups: dict[tuple, list[int]] = {}
        for row, request in enumerate(requests):
            groups.setdefault(request.messages[:-1], []).append(row)
        group_of = [0] * len(prompts)
        prefixes = []
        for g, rows in enumerate(groups.values()):
            # every row keeps at least its last token to run, which yields its first logits
            shared = min(_common_prefix([prompts[r] for r in rows]), min(len(prompts[r]) for r in rows) - 1)
            prefixes.append(prompts[rows[0]][:shared])
            for r in rows:
                group_of[r] = g
        cache = DynamicCache()
        prefix_ids, prefix_mask = self._left_pad(prefixes)
        if prefix_ids.shape[1] > 0:
            self.model(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=_positions(prefix_mask),
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
            index = torch.tensor(group_of, device=self.device)
            cache.reorder_cache(index)  # one copy of its group's prefix per row
            prefix_mask = prefix_mask[index]
        else:
            prefix_mask = prefix_mask.new_zeros((len(prompts), 0))
        suffixes = [prompts[r][len(prefixes[group_of[r]]):] for r in range(len(prompts))]
        suffix_ids, suffix_mask = self._left_pad(suffixes)
        mask = torch.cat([prefix_mask, suffix_mask], dim=-1)
        out = self.model(input_ids=suffix_ids, attention_mask=mask,
                         position_ids=_positions(mask)[:, -suffix_ids.shape[1]:],
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache, mask, out.logits[:, -1]

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row):] = torch.tensor(row)
                mask[i, width - len(row):] = 1
        return ids.to(self.device), mask.to(self.device)

    def close(self) -> None:
        del self.model


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding, wherever it sits in the row."""
    return (mask.cumsum(dim=-1) - 1).clamp(min=0)


def _common_prefix(rows: list[list[int]]) -> int:
    first = rows[0]
    length = len(first)
    for row in rows[1:]:
        length = min(length, len(row))
        for k in range(length):
            if row[k] != first[k]:
                length = k
                break
    return length


def _sampling_key(request: ChatRequest) -> tuple:
    s = request.sampling
    return (s.temperature, s.top_p, s.max_tokens)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
