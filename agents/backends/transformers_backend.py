"""In-process generation with Hugging Face transformers: the embedded default, CPU or GPU.

The backend runs its own loop over the model instead of `generate()`, for three savings that
matter most where compute is scarce:
- Continuous batching: a row that finishes leaves the batch at once and a waiting request takes
  its place, so the batch stays full instead of waiting on its one longest reply.
- Siblings (requests whose messages differ only in the last one) are admitted together; their
  shared prompt prefix runs through the model once and its KV cache is copied to each of them.
  On a CPU, where reading the prompt costs more than writing the reply, this saves most of it.
- Every row carries its own sampling parameters, so requests of different agents share a batch.
Each row samples with its own generator. In float32 a completion then depends only on its seed
and prompt, not on which other requests shared its batch. In bfloat16 (the default where the
hardware computes in it, as on vLLM) a batched matmul rounds differently from a single row's, so
a completion can drift with its batch-mates; a run is still reproducible from its seed and config.
On a CPU the model attends with `grouped_attention`, which keeps padded batches cheap to decode.

Given `adapters` (LoRA directories of the one base model it loads), the backend holds them side
by side, unmerged, and each request names its own (`ChatRequest.adapter`): rows of different
adapters share a batch, each decoded through its own adapter (PEFT's mixed-adapter forward), and
only rows of the same adapter share a prompt prefix, since their KV differ.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from agents.backends.chat import chat_prompt_ids, template_takes_system
from agents.backends.grouped_attention import use_grouped_attention
from agents.config import TransformersBackendConfig
from agents.models import BASE_ADAPTER, load_causal_lm, load_with_adapters
from agents.requests import ChatRequest, Completion, Sampling, Streaming, too_long


def nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the smallest set of most probable tokens whose mass reaches that row's top_p:
    (probabilities with the tokens outside the set zeroed, their token ids), most probable first.

    The set is a prefix of the sorted order, so `topk` with a k that grows until the prefix
    holds top_p of the mass finds exactly it, without sorting the whole vocabulary every step.
    """
    vocab = probs.shape[-1]
    if bool((top_p >= 1.0).all()):
        return probs, torch.arange(vocab, device=probs.device).expand_as(probs)
    k = min(64, vocab)
    while True:
        top, ids = probs.topk(k, dim=-1)
        if k == vocab or bool((top.sum(dim=-1) >= top_p).all()):
            break
        k = min(k * 4, vocab)
    outside = top.cumsum(dim=-1) - top > top_p[:, None]
    return top.masked_fill(outside, 0.0), ids


def sample_next(logits: torch.Tensor, sampling: list[Sampling], generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row: greedy where the row's temperature is 0, else a nucleus draw with the
    row's own generator."""
    greedy = logits.argmax(dim=-1)
    temperature = torch.tensor([s.temperature for s in sampling], device=logits.device)
    if bool((temperature == 0).all()):
        return greedy
    top_p = torch.tensor([s.top_p for s in sampling], device=logits.device)
    probs = torch.softmax(logits.float() / temperature.clamp(min=1e-5)[:, None], dim=-1)
    candidates, token_ids = nucleus(probs, top_p)
    # Inverse-CDF draw: one uniform number per row from that row's own generator.
    u = torch.cat([torch.rand(1, generator=g, device=logits.device) for g in generators])
    cdf = candidates.cumsum(dim=-1)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    sampled = token_ids.gather(-1, pick).squeeze(-1)
    return torch.where(temperature == 0, greedy, sampled)


@dataclass
class Running:
    """The rows being decoded together: their KV cache, the attention mask over it (rows are
    left-padded to a common width), each row's last position, and the logits of its next token."""

    rows: list[int]
    cache: DynamicCache
    mask: torch.Tensor
    positions: torch.Tensor
    logits: torch.Tensor
    tokens: list[list[int]] = field(default_factory=list)

    def keep(self, slots: list[int]) -> None:
        index = torch.tensor(slots, device=self.mask.device)
        self.cache.reorder_cache(index)
        self.rows = [self.rows[s] for s in slots]
        self.tokens = [self.tokens[s] for s in slots]
        self.mask, self.positions, self.logits = self.mask[index], self.positions[index], self.logits[index]
        # Columns that are padding in every remaining row hold nothing; drop them.
        start = int(self.mask.any(dim=0).int().argmax())
        if start > 0:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., start:, :], layer.values[..., start:, :]
            self.mask = self.mask[:, start:]

    def extend(self, other: Running) -> None:
        """Take in newly prefilled rows, left-padding whichever cache is narrower."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)])
        self.rows += other.rows
        self.tokens += other.tokens
        self.positions = torch.cat([self.positions, other.positions])
        self.logits = torch.cat([self.logits, other.logits])


@dataclass
class _Request:
    request: ChatRequest
    prompt: list[int]
    generator: torch.Generator
    started: float
    prefix_hit: int = 0  # prompt tokens it took from its sibling group's shared prefix


class TransformersBackend(Streaming):
    def __init__(self, model: str, config: TransformersBackendConfig | None = None, adapters: tuple[str, ...] = ()):
        super().__init__()
        config = config or TransformersBackendConfig()
        self.model_id = model
        self.batch_size = config.batch_size
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = auto_dtype(device) if config.dtype == "auto" else config.dtype
        self.adapters: dict[str, str] = {}  # adapter directory -> its name in the model
        if adapters:
            self.model, self.tokenizer, self.adapters = load_with_adapters(model, list(adapters), getattr(torch, dtype))
        else:
            self.model, self.tokenizer = load_causal_lm(model, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        if device == "cpu":
            use_grouped_attention(self.model.get_base_model() if adapters else self.model)
        self.device = device
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_ids = set(_eos_ids(self.model, self.tokenizer))
        self.merge_system = not template_takes_system(self.tokenizer)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self._requests: dict[int, _Request] = {}  # by ticket, until finished
        self._waiting: deque[list[int]] = deque()  # sibling groups of tickets, in order of arrival
        self._running: Running | None = None  # rows are tickets

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        return chat_prompt_ids(self.tokenizer, request, self.merge_system)

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        started = time.perf_counter()
        fitting: list[int] = []
        for ticket, request in zip(tickets, requests, strict=True):
            if request.adapter and request.adapter not in self.adapters:
                raise ValueError(f"{self.model_id}: the backend holds no adapter {request.adapter}")
            prompt = self.prompt_ids(request)
            # a request that cannot fit the context fails at once, on its own turn
            if failed := too_long(len(prompt), request.sampling.max_tokens, self.context_length):
                self._ready.append((ticket, failed))
                continue
            generator = torch.Generator(device=self.device).manual_seed(request.seed)
            self._requests[ticket] = _Request(request, prompt, generator, started)
            fitting.append(ticket)
        self._waiting.extend(self.sibling_groups(fitting))

    def _working(self) -> bool:
        return bool(self._waiting) or self._running is not None

    @torch.inference_mode()
    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        """One decoding step of every running row, after admitting waiting requests into free
        slots; returns the completions that ended with it."""
        running, waiting = self._running, self._waiting
        room = self.batch_size - (len(running.rows) if running else 0)
        # Admit in chunks of a quarter batch or more, so each prefill call is worth making.
        if waiting and len(waiting[0]) <= room and (running is None or room >= max(1, self.batch_size // 4)):
            admitted: list[int] = []
            while waiting and len(admitted) + len(waiting[0]) <= room:
                admitted += waiting.popleft()
            new = self._prefill(admitted)
            if running is None:
                running = new
            else:
                running.extend(new)
        rows = [self._requests[t] for t in running.rows]
        picks = sample_next(running.logits, [r.request.sampling for r in rows], [r.generator for r in rows]).tolist()
        finished, keep = [], []
        for slot, (ticket, row, token) in enumerate(zip(running.rows, rows, picks, strict=True)):
            tokens = running.tokens[slot]
            stopped = token in self.eos_ids
            if not stopped:
                tokens.append(token)
            if stopped or len(tokens) >= row.request.sampling.max_tokens:
                finished.append((ticket, self._completion(tokens, stopped, row)))
                del self._requests[ticket]
            else:
                keep.append(slot)
        if not keep:
            running = None
        else:
            if len(keep) < len(running.rows):
                running.keep(keep)
            self._step(running)
        self._running = running
        return finished

    def sibling_groups(self, tickets: list[int]) -> list[list[int]]:
        """Tickets of requests that share all messages but the last, at most a batch each,
        shortest first so that rows admitted together need little padding."""
        groups = siblings([self._conversation(t) for t in tickets])
        chunks = [
            [tickets[i] for i in g[k : k + self.batch_size]] for g in groups for k in range(0, len(g), self.batch_size)
        ]
        return sorted(chunks, key=lambda g: max(len(self._requests[t].prompt) for t in g))

    def _conversation(self, ticket: int) -> tuple:
        """What makes two requests siblings: their adapter and every message but the last."""
        request = self._requests[ticket].request
        return (request.adapter, *request.messages)

    def _adapter_names(self, tickets: list[int]) -> dict:
        """The forward pass's per-row adapters, when the backend holds adapters."""
        if not self.adapters:
            return {}
        return {"adapter_names": [self.adapters.get(self._requests[t].request.adapter, BASE_ADAPTER) for t in tickets]}

    def _step(self, running: Running) -> None:
        next_ids = torch.tensor([[tokens[-1]] for tokens in running.tokens], device=self.device)
        running.mask = torch.cat([running.mask, running.mask.new_ones((len(running.rows), 1))], dim=-1)
        running.positions = running.positions + 1
        out = self.model(
            input_ids=next_ids,
            attention_mask=running.mask,
            position_ids=running.positions[:, None],
            past_key_values=running.cache,
            use_cache=True,
            **self._adapter_names(running.rows),
        )
        running.logits = out.logits[:, -1]

    def _prefill(self, rows: list[int]) -> Running:
        """Run the prompts of `rows` (tickets) through the model, each sibling group's shared
        prefix once."""
        prompts = [self._requests[t].prompt for t in rows]
        group_of = [0] * len(rows)
        prefixes, leaders = [], []
        for g, slots in enumerate(siblings([self._conversation(t) for t in rows])):
            group = [prompts[s] for s in slots]
            # every row keeps at least its last token to run, which yields its first logits
            prefixes.append(group[0][: min(_common_prefix(group), min(map(len, group)) - 1)])
            leaders.append(rows[slots[0]])
            for s in slots:
                group_of[s] = g
            for s in slots[1:]:  # the first row of a group computes the prefix; the others read it
                self._requests[rows[s]].prefix_hit = len(prefixes[-1])
        cache = DynamicCache()
        prefix_ids, prefix_mask = self._left_pad(prefixes)
        if prefix_ids.shape[1] > 0:
            self.model(
                input_ids=prefix_ids,
                attention_mask=prefix_mask,
                position_ids=_positions(prefix_mask),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
                **self._adapter_names(leaders),
            )
            index = torch.tensor(group_of, device=self.device)
            cache.reorder_cache(index)  # one copy of its group's prefix per row
            prefix_mask = prefix_mask[index]
        else:
            prefix_mask = prefix_mask.new_zeros((len(rows), 0))
        suffixes = [prompt[len(prefixes[group_of[s]]) :] for s, prompt in enumerate(prompts)]
        suffix_ids, suffix_mask = self._left_pad(suffixes)
        mask = torch.cat([prefix_mask, suffix_mask], dim=-1)
        positions = _positions(mask)
        out = self.model(
            input_ids=suffix_ids,
            attention_mask=mask,
            position_ids=positions[:, -suffix_ids.shape[1] :],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **self._adapter_names(rows),
        )
        return Running(list(rows), cache, mask, positions[:, -1], out.logits[:, -1], [[] for _ in rows])

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _completion(self, tokens: list[int], stopped: bool, row: _Request) -> Completion:
        return Completion(
            text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
            prompt_tokens=len(row.prompt),
            completion_tokens=len(tokens) + stopped,
            finish_reason="stop" if stopped else "length",
            latency_s=time.perf_counter() - row.started,
            prefix_hit_tokens=row.prefix_hit,
        )

    def close(self) -> None:
        del self.model


def auto_dtype(device: str) -> str:
    """bfloat16 where the hardware computes in it natively (GPUs; CPUs with AVX512-BF16 or AMX,
    where it reads prompts several times faster than float32), float32 elsewhere: emulated
    bfloat16 is slower than float32."""
    if device.startswith("cuda"):
        return "bfloat16"
    # torch has no public query for these; its private one is guarded in case it moves
    native = [getattr(torch.cpu, f"_is_{name}_supported", lambda: False) for name in ("avx512_bf16", "amx_tile")]
    return "bfloat16" if device == "cpu" and any(check() for check in native) else "float32"


def siblings(conversations: list[tuple]) -> list[list[int]]:
    """Indices grouped by everything but the last message, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, messages in enumerate(conversations):
        groups.setdefault(messages[:-1], []).append(i)
    return list(groups.values())


def _pad_left(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros before the sequence axis (the last of a mask, the second last of keys and values)."""
    axis = -1 if x.dim() == 2 else -2
    missing = width - x.shape[axis]
    if missing == 0:
        return x
    return F.pad(x, (missing, 0) if axis == -1 else (0, 0, missing, 0))


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


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
