"""Two LoRA adapters of one base in one transformers backend, against the alternatives.

The same requests (half for each adapter: the prompts of a persuader and a persuadee) are served
three ways, in one process, on the embedded SmolLM2-135M:

- shared: one backend holding the base once and both adapters unmerged; the requests of both
  share its batches (what `agora simulate` and `agora iterate` do for adapters of one base);
- merged: one backend per adapter, the adapter merged into its own copy of the base, each given
  its half of the requests in turn (what happens without sharing: two copies of the base);
- base: the base model alone given all the requests (the limit: no LoRA cost at all).

The adapters are random (weights drawn small, so replies stay text), made here; the
requests are greedy, so each way generates the same number of tokens per request up to rounding.

    python benchmarks/adapters_throughput.py [--requests 32] [--max-tokens 64]

Prints generated tokens per second of each way, the ratios shared/merged and shared/base, and
the parameters each way holds in memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.backends.transformers_backend import TransformersBackend  # noqa: E402
from agents.config import TransformersBackendConfig  # noqa: E402
from agents.models import resolve_model  # noqa: E402
from agents.requests import ChatRequest, Sampling  # noqa: E402
from dialogue.core.questions import DatasetConfig, load_questions, show_question  # noqa: E402
from tests.test_adapters import write_adapter  # noqa: E402


def timed(backend, requests) -> tuple[float, int]:
    started = time.perf_counter()
    done = backend.generate(requests)
    return time.perf_counter() - started, sum(c.completion_tokens for c in done)


def parameters(*backends) -> int:
    return sum(p.numel() for b in backends for p in b.model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=32, help="requests in all, half per adapter")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    base = resolve_model("smollm2-135m")
    config = TransformersBackendConfig(batch_size=args.requests, dtype="float32")
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens)
    questions = load_questions(DatasetConfig(split="train", limit=args.requests)).questions
    with tempfile.TemporaryDirectory() as tmp:
        # small weights: replies stay text, and the LoRA terms cost what trained ones do
        adapters = [write_adapter(base, Path(tmp) / n, seed, std=0.002, r=16) for seed, n in enumerate("ab")]
        halves = {
            adapter: [
                ChatRequest((("user", show_question(q)),), greedy, 0, adapter=adapter)
                for q in questions[i :: len(adapters)]
            ]
            for i, adapter in enumerate(adapters)
        }
        mixed = [r for pair in zip(*halves.values(), strict=True) for r in pair]

        shared = TransformersBackend(base, config, adapters=tuple(adapters))
        timed(shared, mixed[:2])  # warm up
        shared_s, shared_tokens = timed(shared, mixed)

        merged = {adapter: TransformersBackend(adapter, config) for adapter in adapters}
        merged_s, merged_tokens = 0.0, 0
        for adapter, backend in merged.items():
            seconds, tokens = timed(backend, [ChatRequest(r.messages, r.sampling, r.seed) for r in halves[adapter]])
            merged_s, merged_tokens = merged_s + seconds, merged_tokens + tokens

        alone = TransformersBackend(base, config)
        base_s, base_tokens = timed(alone, [ChatRequest(r.messages, r.sampling, r.seed) for r in mixed])

    rates = {
        "shared": shared_tokens / shared_s,
        "merged": merged_tokens / merged_s,
        "base": base_tokens / base_s,
    }
    held = {"shared": parameters(shared), "merged": parameters(*merged.values()), "base": parameters(alone)}
    for way, rate in rates.items():
        print(f"{way:7s} {rate:7.1f} tokens/s   {held[way] / 1e6:6.1f}M parameters held")
    print(f"shared/merged {rates['shared'] / rates['merged']:.2f}   shared/base {rates['shared'] / rates['base']:.2f}")


if __name__ == "__main__":
    main()
