"""Engine vs one generate call per turn, on the same questions and config.

(a) the engine: every frontier turn of every tree in one batched call per level;
(b) sequential: the same trees, the same requests and seeds, but each turn sent as its own
    generate call, the way the PBT reference code walks its trees.
The benchmark prints the tokens/s of each and their ratio, and how many trees came out identical.
In float32 (`backend.dtype=float32`) a completion depends only on its seed and prompt, so both
sides generate the same turns. In bfloat16, the default on CPUs that compute in it natively, a
batched matmul rounds differently from a single row's, so the two sides' trees drift apart: they
answer the same questions under the same config, with token counts within a few percent.

`--baseline hf-generate` (transformers backend only) makes (b) call transformers'
`model.generate()` once per turn instead of Agora's own loop with one request: a baseline
closer to the usual research script, but its sampling differs, so its trees (and lengths) do too.

    python benchmarks/simulate_throughput.py [--trees 16] [--baseline same-loop|hf-generate] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hydra import compose, initialize_config_module

from dialogue.core.judge import Judge
from dialogue.core.questions import judge_kind, load_questions
from dialogue.core.tree import DialogueTree
from dialogue.protocols import make_protocol
from dialogue.running.cache import GenerationCache
from dialogue.running.config import load_persona, validate
from dialogue.running.engine import Engine
from dialogue.running.simulate import build_agents


class OneCallPerTurn:
    """The baseline: a backend that is only ever asked for one completion at a time."""

    def __init__(self, backend):
        self.backend = backend
        self.model_id = backend.model_id

    def generate(self, requests):
        return [self.backend.generate([r])[0] for r in requests]

    def close(self):
        self.backend.close()


class GeneratePerTurn:
    """The baseline as a plain script writes it: `model.generate()` for each turn on its own."""

    def __init__(self, backend):
        self.backend = backend
        self.model_id = backend.model_id

    def generate(self, requests):
        import torch

        from agents.requests import Completion

        out = []
        for r in requests:
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
            out.append(
                Completion(text, ids.shape[1], len(new), "stop" if stopped else "length", time.perf_counter() - started)
            )
        return out

    def close(self):
        self.backend.close()


def run(config, agents, backends, label):
    questions = load_questions(config.dataset).questions
    kind = judge_kind(config.dataset, questions)
    protocol = make_protocol(config.protocol)
    engine = Engine(
        protocol, agents, backends, Judge(kind), config.prompts.answer_format[kind], seed=config.seed, progress=True
    )
    trees = [DialogueTree.new(q.question_id, q, protocol.name, {}) for q in questions]
    done = []
    stats = engine.run(trees, done.append)
    print(
        f"{label:>10}: {stats.turns} turns, {stats.generated_tokens} tokens in {stats.seconds:.1f}s "
        f"= {stats.tokens_per_s:.1f} tokens/s",
        flush=True,
    )
    return stats, done


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=16)
    parser.add_argument("--baseline", choices=["same-loop", "hf-generate"], default="same-loop")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/simulate.yaml")
    args = parser.parse_args()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="simulate", overrides=[f"dataset.limit={args.trees}", "out=unused", *args.overrides])
    config = validate(cfg)
    personas = {n: load_persona(a.persona) for n, a in config.agents.items()}
    with tempfile.TemporaryDirectory() as tmp:
        # Models load once, outside the timed part; the cache is bypassed so every turn is generated.
        agents, cached = build_agents(config, personas, GenerationCache(os.path.join(tmp, "unused.sqlite")), {})
    backends = {key: b.backend for key, b in cached.items()}
    for backend in backends.values():
        print(f"{backend.model_id}: {getattr(getattr(backend, 'model', None), 'dtype', 'served elsewhere')}")
    engine_stats, engine_trees = run(config, agents, backends, "engine")
    wrapper = GeneratePerTurn if args.baseline == "hf-generate" else OneCallPerTurn
    sequential = {key: wrapper(b) for key, b in backends.items()}
    seq_stats, seq_trees = run(config, agents, sequential, "sequential")

    def texts(trees):
        return {t.tree_id: [(u.id, u.text) for u in t.turns()] for t in trees}

    engine_texts, seq_texts = texts(engine_trees), texts(seq_trees)
    same = sum(engine_texts[k] == seq_texts.get(k) for k in engine_texts)
    print(f"identical trees: {same}/{len(engine_trees)}")
    print(f"ratio engine/sequential tokens/s: {engine_stats.tokens_per_s / seq_stats.tokens_per_s:.2f}")


if __name__ == "__main__":
    main()
