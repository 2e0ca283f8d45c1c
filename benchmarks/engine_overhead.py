"""Agora's own cost per turn: `agora simulate` in process against a backend that answers at once.

On a GPU a small model serves thousands of turns a second, so whatever the engine, the judge,
prompt rendering, the run directory and the generation cache spend per turn is what stands
between a user and the GPU's speed. This runs the real `simulate()` (the default pbt_tree
protocol, arithmetic problems, the real cache and run directory) with an instant backend whose
replies are made from each request's seed, and prints:

1. turns/s end to end (the whole `simulate()` call: questions, trees, manifest, summary);
2. where the time goes, by stage: the backend itself, the generation cache, the judge, prompt
   rendering, the run directory (appending trees, finishing the run), the run's summary, and
   the engine (what is left);
3. the top of a profile, by own time.

    python benchmarks/engine_overhead.py [--questions 2000] [--profile-rows 15] [key=value ...]
    python benchmarks/engine_overhead.py --dataset general_knowledge   # the multiple-choice judge

The key=value arguments are Hydra overrides of conf/simulate.yaml. `--dataset general_knowledge`
grows every bundled question (417; `--questions` is for generated arithmetic problems).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hydra import compose, initialize_config_module

import dialogue.running.engine as engine_module
from agents.requests import Completion, Streaming
from dialogue.core.judge import Judge
from dialogue.running import rundir
from dialogue.running import simulate as simulate_module
from dialogue.running.cache import CachedBackend
from dialogue.running.config import validate
from dialogue.running.summary import Summarizer

NUMBERS = ["12", "15", "18", "21"]
LETTERS = ["A", "B", "C", "D"]


class InstantBackend(Streaming):
    """Answers every request as it is submitted. The reply, about the length of a SmolLM2 turn,
    names one of four answers chosen by the request's seed, so branches agree and stop about as
    often as they do with a model."""

    model_id = "instant"

    def __init__(self, answers: list[str]):
        super().__init__()
        self.replies = [  # made once: the backend's own cost is not Agora's
            "Let me work through this one step at a time. The first amount is added to the second, "
            f"then the rate is applied, which leaves {answer}. Answer: {answer}"
            for answer in answers
        ]

    def _start(self, tickets, requests):
        for ticket, request in zip(tickets, requests, strict=True):
            reply = self.replies[request.seed % len(self.replies)]
            self._ready.append((ticket, Completion(reply, 100 * len(request.messages), 32, "stop", 0.0)))

    def _working(self):
        return False

    def close(self):
        pass


class StageClock:
    """Seconds spent inside chosen functions, patched in place for one run; a stage's time
    excludes the stages it calls (the cache's time excludes the backend's)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._stack: list[str] = []

    def wrap(self, owner, name: str, stage: str):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            self._stack.append(stage)
            try:
                return original(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - started
                self.seconds[stage] += spent
                if self._stack:  # the caller's stage did not spend this
                    self.seconds[self._stack[-1]] -= spent

        setattr(owner, name, timed)
        return original


@contextmanager
def stages(clock: StageClock):
    patched = [
        (InstantBackend, "_start", "backend"),
        (CachedBackend, "_start", "cache"),
        (CachedBackend, "_advance", "cache"),
        (Judge, "read_batch", "judge"),
        (engine_module, "turn_messages", "rendering"),
        (rundir.RunDir, "append", "run directory"),
        (rundir.RunDir, "finish", "run directory"),
        (rundir.RunDir, "trees", "run directory"),
        (Summarizer, "add", "summary"),
    ]
    originals = [(owner, name, clock.wrap(owner, name, stage)) for owner, name, stage in patched]
    try:
        yield clock
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def one_run(config, answers: list[str]) -> tuple[int, float]:
    """(turns, seconds) of one whole `simulate()` into a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        key = simulate_module.backend_key(config.agents["A"].model, config.backend)
        pool = {key: InstantBackend(answers)}
        started = time.perf_counter()
        result = simulate_module.simulate(config, tmp, pool=pool)
        seconds = time.perf_counter() - started
    return result.stats.turns, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--dataset", choices=["arithmetic", "general_knowledge"], default="arithmetic")
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/simulate.yaml")
    args = parser.parse_args()
    base = [f"dataset={args.dataset}", "dataset.limit=null"]
    if args.dataset == "arithmetic":
        base.append(f"dataset.count={args.questions}")
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="simulate", overrides=[*base, "progress=false", "out=unused", *args.overrides])
    config = validate(cfg)
    answers = LETTERS if config.dataset.name != "arithmetic" else NUMBERS

    one_run(config, answers)  # warm: imports, regex compilation, the question generator
    turns, seconds = one_run(config, answers)
    print(f"end to end: {turns} turns in {seconds:.2f} s = {turns / seconds:,.0f} turns/s, "
          f"{seconds / turns * 1e3:.3f} ms per turn")  # fmt: skip

    clock = StageClock()
    with stages(clock):
        _, timed_seconds = one_run(config, answers)
    engine = timed_seconds - sum(clock.seconds.values())
    print(f"\nby stage (a run with stage timers, {timed_seconds:.2f} s; per turn):")
    for stage, spent in sorted({**clock.seconds, "engine (the rest)": engine}.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<18} {spent / turns * 1e6:8.1f} us  {spent / timed_seconds:6.1%}")

    profile = cProfile.Profile()
    profile.enable()
    one_run(config, answers)
    profile.disable()
    print(f"\nprofile, top {args.profile_rows} by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile_rows)


if __name__ == "__main__":
    main()
