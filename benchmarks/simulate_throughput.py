"""The engine against its backend's limit and against one generate call per turn, on the same
questions and config.

(a) engine: the trees grown as `agora simulate` grows them, each turn's children sent as soon
    as it is read, every request streaming through one backend;
(b) limit: the very requests the engine made, given to the same backend at once as one flat
    batch, with nothing waiting on anything: what the backend can do with that work;
(c) sequential: the same trees, the same requests and seeds, but each turn sent as its own
    generate call, the way the PBT reference code walks its trees.
The benchmark prints the tokens/s of each, engine/limit and engine/sequential, and how many
trees (a) and (c) grew identically.

Prefix reuse: the share of (a)'s prompt tokens that the backend read from KV it had already
computed (vLLM's prefix cache; the transformers backend's sibling groups, whose shared prompt
runs once), beside the ideal: the share that is a prefix of what was computed before it, the
prompts and replies of earlier requests and the prompts of siblings sent before it in the same
call, counted in tokens and in the backend's cache blocks (vLLM reuses whole blocks only;
`backend.engine_kwargs.block_size=32` makes them smaller on CPU, where the default is 128).
In float32 (`backend.dtype=float32`) a completion depends only on its seed and prompt, so both
sides generate the same turns. In bfloat16, the default on CPUs that compute in it natively, a
batched matmul rounds differently from a single row's, so the two sides' trees drift apart: they
answer the same questions under the same config, with token counts within a few percent.

`--baseline hf-generate` (transformers backend only) makes (b) call transformers'
`model.generate()` once per turn instead of Agora's own loop with one request: a baseline
closer to the usual research script, but its sampling differs, so its trees (and lengths) do too.

    python benchmarks/simulate_throughput.py [--trees 16] [--backend transformers|vllm]
        [--baseline same-loop|hf-generate] [--sequential-trees N] [--no-sequential] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections import deque

from hydra import compose, initialize_config_module

from agents.requests import Completion, Streaming
from dialogue.core.judge import Judge
from dialogue.core.questions import judge_kind, load_questions
from dialogue.core.tree import DialogueTree
from dialogue.protocols import make_protocol
from dialogue.running.cache import GenerationCache
from dialogue.running.config import load_persona, validate
from dialogue.running.engine import Engine
from dialogue.running.simulate import build_agents


class Recorder:
    """The engine's backend, passed through, keeping every request the engine submits (in the
    calls it made) and every completion."""

    def __init__(self, backend):
        self.backend = backend
        self.model_id = backend.model_id
        self.calls = []  # the tickets of each submit call
        self.tickets = {}  # ticket -> ChatRequest, in the order submitted
        self.completions = {}  # ticket -> Completion

    def submit(self, requests):
        tickets = self.backend.submit(requests)
        self.calls.append(tickets)
        self.tickets.update(zip(tickets, requests, strict=True))
        return tickets

    def step(self, wait=True):
        done = self.backend.step(wait)
        self.completions.update(done)
        return done

    def busy(self):
        return self.backend.busy()


class OneCallPerTurn(Streaming):
    """The baseline: a backend that is only ever asked for one completion at a time."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend
        self.model_id = backend.model_id
        self._queue = deque()

    def _start(self, tickets, requests):
        self._queue.extend(zip(tickets, requests, strict=True))

    def _working(self):
        return bool(self._queue)

    def _advance(self, wait):
        ticket, request = self._queue.popleft()
        return [(ticket, self.one(request))]

    def one(self, request):
        return self.backend.generate([request])[0]


class GeneratePerTurn(OneCallPerTurn):
    """The baseline as a plain script writes it: `model.generate()` for each turn on its own."""

    def one(self, r):
        import torch

        b = self.backend
        ids = torch.tensor([b.prompt_ids(r)], device=b.device)
        torch.manual_seed(r.seed)
        sample = r.sampling.temperature > 0
        extra = {"temperature": r.sampling.temperature, "top_p": r.sampling.top_p} if sample else {}
        started = time.perf_counter()
        with torch.inference_mode():
            tokens = b.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=sample,
                max_new_tokens=r.sampling.max_tokens,
                pad_token_id=b.pad_id,
                **extra,
            )
        new = tokens[0, ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] in b.eos_ids
        text = b.tokenizer.decode(new, skip_special_tokens=True).strip()
        return Completion(text, ids.shape[1], len(new), "stop" if stopped else "length", time.perf_counter() - started)


def run(config, agents, backends, label, trees=None):
    questions = load_questions(config.dataset).questions[:trees]
    kind = judge_kind(config.dataset, questions)
    protocol = make_protocol(config.protocol)
    engine = Engine(
        protocol, agents, backends, Judge(kind), config.prompts.answer_format[kind], seed=config.seed, progress=True
    )
    trees = [DialogueTree.new(q.question_id, q, protocol.name, {}) for q in questions]
    done = []
    stats = engine.run(trees, done.append)
    report(label, stats.generated_tokens, stats.seconds, f"{stats.turns} turns, ")
    return stats, done


def report(label, tokens, seconds, extra=""):
    print(f"{label:>10}: {extra}{tokens} tokens in {seconds:.1f}s = {tokens / seconds:.1f} tokens/s", flush=True)


def flat_batch(recorders):
    """The limit: every request the engine made, given to its backend at once as one batch."""
    tokens, started = 0, time.perf_counter()
    for recorder in recorders.values():
        tokens += sum(c.completion_tokens for c in recorder.backend.generate(list(recorder.tickets.values())))
    seconds = time.perf_counter() - started
    report("limit", tokens, seconds, f"{sum(len(r.tickets) for r in recorders.values())} requests, ")
    return tokens / seconds


def ideal_prefix_reuse(recorder, prompt_ids, tokenize, blocks: list[int]) -> tuple[float, dict[int, float]]:
    """(in tokens, {block size: in whole blocks of that size}) the share of the recorded prompts' tokens that a
    backend with an unbounded prefix cache could have read instead of computing: for each
    request in the order sent, the longest prefix of its prompt that was computed before it
    (the prompt and reply of an earlier request, or the prompt of a sibling sent earlier in the
    same call). Prefixes are kept as a set of rolling hashes, one per token."""
    computed: set[int] = set()

    def prefix_hashes(ids):
        h, out = 0, []
        for token in ids:
            h = hash((h, token))
            out.append(h)
        return out

    hit = total = 0
    hit_blocks = dict.fromkeys(blocks, 0)
    for tickets in recorder.calls:
        prompts = [prompt_ids(recorder.tickets[t]) for t in tickets]
        for prompt in prompts:
            hashes = prefix_hashes(prompt)
            shared = 0
            while shared < len(hashes) and hashes[shared] in computed:
                shared += 1
            shared = min(shared, len(prompt) - 1)  # the last prompt token always runs, for the first logits
            hit, total = hit + shared, total + len(prompt)
            for block in blocks:
                hit_blocks[block] += shared // block * block
            computed.update(hashes)
        for t, prompt in zip(tickets, prompts, strict=True):  # the replies, once generated
            if t in recorder.completions:
                computed.update(prefix_hashes(prompt + tokenize(recorder.completions[t].text)))
    return hit / total, {block: n / total for block, n in hit_blocks.items()}


def report_prefix_reuse(stats, recorders, backends):
    for key, recorder in recorders.items():
        backend = backends[key]
        if hasattr(backend, "prompt_ids"):
            prompt_ids, tokenizer = backend.prompt_ids, backend.tokenizer
        else:  # Ray workers: the model's tokenizer, here
            from agents.backends.chat import chat_prompt_ids, template_takes_system
            from agents.models import load_tokenizer

            tokenizer = load_tokenizer(recorder.model_id)
            fold = not template_takes_system(tokenizer)
            prompt_ids = lambda r, tokenizer=tokenizer, fold=fold: chat_prompt_ids(tokenizer, r, fold)  # noqa: E731
        block = getattr(backend, "block_size", 1)  # vLLM reuses whole blocks; the transformers backend, tokens
        tokenize = lambda text, tokenizer=tokenizer: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        # a GPU's vLLM pages KV in blocks of 16 by default; CPU kernels take multiples of 32 only
        gpu = [16] if block > 16 else []
        ideal, ideal_blocks = ideal_prefix_reuse(recorder, prompt_ids, tokenize, [block, *gpu])
        achieved, in_blocks = stats.prefix_hit_rate, ideal_blocks[block]
        print(
            f"prefix reuse: achieved {achieved:.3f} of {stats.prompt_tokens} prompt tokens; ideal {ideal:.3f} "
            f"in tokens, {in_blocks:.3f} in blocks of {block}; achieved/ideal {achieved / ideal:.2f} "
            f"(in blocks {achieved / in_blocks if in_blocks else float('nan'):.2f})"
        )
        for size in gpu:
            print(
                f"  in blocks of {size} (vLLM's default on a GPU) the ideal would be {ideal_blocks[size]:.3f}, "
                f"{ideal_blocks[size] / ideal:.2f} of the ideal in tokens"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=16)
    parser.add_argument("--baseline", choices=["same-loop", "hf-generate"], default="same-loop")
    parser.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument(
        "--sequential-trees",
        type=int,
        default=None,
        help="grow only the first N trees one call per turn (its tokens/s does not depend on how many trees)",
    )
    parser.add_argument("--no-sequential", action="store_true", help="leave out (c), one call per turn")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/simulate.yaml")
    args = parser.parse_args()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        overrides = [f"dataset.limit={args.trees}", f"backend={args.backend}", "out=unused", *args.overrides]
        cfg = compose(config_name="simulate", overrides=overrides)
    config = validate(cfg)
    personas = {n: load_persona(a.persona) for n, a in config.agents.items()}
    with tempfile.TemporaryDirectory() as tmp:
        # Models load once, outside the timed part; the cache is bypassed so every turn is generated.
        agents, cached = build_agents(config, personas, GenerationCache(os.path.join(tmp, "unused.sqlite")), {})
    backends = {key: b.backend for key, b in cached.items()}
    for backend in backends.values():
        print(f"{backend.model_id}: {getattr(getattr(backend, 'model', None), 'dtype', 'served elsewhere')}")
    recorders = {key: Recorder(b) for key, b in backends.items()}
    engine_stats, engine_trees = run(config, agents, recorders, "engine")
    report_prefix_reuse(engine_stats, recorders, backends)
    for backend in backends.values():  # the limit starts from a cold cache, as the engine did
        if reset := getattr(getattr(backend, "llm", None), "reset_prefix_cache", None):
            reset()
    limit = flat_batch(recorders)
    print(f"ratio engine/limit tokens/s: {engine_stats.tokens_per_s / limit:.2f}")
    if args.no_sequential:
        for backend in backends.values():
            backend.close()
        return
    wrapper = GeneratePerTurn if args.baseline == "hf-generate" else OneCallPerTurn
    sequential = {key: wrapper(b) for key, b in backends.items()}
    seq_stats, seq_trees = run(config, agents, sequential, "sequential", args.sequential_trees)

    def texts(trees):
        return {t.tree_id: [(u.id, u.text) for u in t.turns()] for t in trees}

    engine_texts, seq_texts = texts(engine_trees), texts(seq_trees)
    same = sum(engine_texts[k] == seq_texts[k] for k in seq_texts)
    print(f"identical trees: {same}/{len(seq_trees)}")
    print(f"ratio engine/sequential tokens/s: {engine_stats.tokens_per_s / seq_stats.tokens_per_s:.2f}")
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
