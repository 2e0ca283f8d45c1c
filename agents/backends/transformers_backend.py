"""In-process generation with Hugging Face transformers: the embedded default, CPU or GPU."""

from __future__ import annotations

import time
from itertools import groupby

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor

from agents.backends.chat import merge_system, template_takes_system
from agents.config import TransformersBackendConfig
from agents.models import resolve_model
from agents.requests import ChatRequest, Completion, Sampling


class SeededSampler(LogitsProcessor):
    """Samples each row with its own generator, so a completion depends only on its own seed
    and prompt, not on which other requests happened to share its batch.

    It leaves a single finite logit per row; generate() then runs greedy and picks that token.
    """

    def __init__(self, seeds: list[int], sampling: Sampling):
        self.seeds = seeds
        self.sampling = sampling
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores.float() / self.sampling.temperature, dim=-1)
        candidates, token_ids = nucleus(probs, self.sampling.top_p)
        # Inverse-CDF draw: one uniform number per row from that row's own generator.
        u = torch.cat([torch.rand(1, generator=g, device=scores.device) for g in self.generators])
        cdf = candidates.cumsum(dim=-1)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, token_ids.gather(-1, pick), 0.0)


def nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest set of most probable tokens whose mass reaches top_p, per row: (probabilities
    with the tokens outside the set zeroed, their token ids), most probable first.

    The set is a prefix of the sorted order, so `topk` with a k that grows until the prefix
    holds top_p of the mass finds exactly it, without sorting the whole vocabulary every step.
    """
    vocab = probs.shape[-1]
    if top_p >= 1.0:
        ids = torch.arange(vocab, device=probs.device).expand_as(probs)
        return probs, ids
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1)
        if k == vocab or bool((top.sum(dim=-1) >= top_p).all()):
            break
        k = min(k * 4, vocab)
    outside = top.cumsum(dim=-1) - top > top_p
    return top.masked_fill(outside, 0.0), ids


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
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.merge_system = not template_takes_system(self.tokenizer)

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        chat = merge_system(request.chat()) if self.merge_system else request.chat()
        text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        prompts = [self.prompt_ids(r) for r in requests]
        # One generate() call takes one set of sampling parameters; within a set, batch by
        # length so that padding stays small.
        by_sampling = sorted(range(len(requests)), key=lambda i: _sampling_key(requests[i]))
        for _, group in groupby(by_sampling, key=lambda i: _sampling_key(requests[i])):
            ordered = sorted(group, key=lambda i: len(prompts[i]))
            for start in range(0, len(ordered), self.batch_size):
                batch = ordered[start : start + self.batch_size]
                outs = self._generate_batch([prompts[i] for i in batch], [requests[i] for i in batch])
                for i, completion in zip(batch, outs):
                    results[i] = completion
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], requests: list[ChatRequest]) -> list[Completion]:
        sampling = requests[0].sampling
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        processors = []
        if sampling.temperature > 0:
            processors.append(SeededSampler([r.seed for r in requests], sampling))
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=sampling.max_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
        )
        started = time.perf_counter()
        out = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            generation_config=config,
            logits_processor=processors,
        )
        latency = time.perf_counter() - started
        completions = []
        for row, prompt in enumerate(prompts):
            new = out[row, width:].tolist()
            stop = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
            tokens = new if stop is None else new[:stop]
            completions.append(
                Completion(
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(tokens) + (stop is not None),
                    finish_reason="length" if stop is None else "stop",
                    latency_s=latency,
                )
            )
        return completions

    def close(self) -> None:
        del self.model


def _sampling_key(request: ChatRequest) -> tuple:
    s = request.sampling
    return (s.temperature, s.top_p, s.max_tokens)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids

