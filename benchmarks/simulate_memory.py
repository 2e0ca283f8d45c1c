"""Peak memory of `agora simulate` over many questions, against a served model that answers at once.

The run is the real command (`agora simulate backend=openai ...`) against the scripted
OpenAI-compatible server of the test suite on 127.0.0.1, so no model's memory is counted:
what is measured is what the engine, the run directory and the cache hold. Trees enter through
the window of `engine.max_active_trees` and leave as they are written; compare the peak at two
numbers of questions to see what grows with them. The server's answers are numbers drawn from a hash of the
request, so trees stop at different depths, as real ones do.

    python benchmarks/simulate_memory.py [--questions 20000] [--window 256]

Prints the peak resident memory of the command (the maximum RSS its process reached), the
trees written and the run's status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dialogue.running.rundir import RunDir  # noqa: E402
from tests.chat_server import ChatServer  # noqa: E402


def hashed_number(body: dict) -> str:
    """A number from 0 to 3, drawn from the request: agents agree often enough for trees to end
    at every depth."""
    key = json.dumps([body["messages"], body.get("seed")], sort_keys=True).encode()
    return f"I worked it out. Answer: {hashlib.sha256(key).digest()[0] % 4}"


def served_simulation(url: str, questions: int, out: Path) -> list[str]:
    """`agora simulate` of `questions` arithmetic problems against the scripted server at `url`."""
    return [
        "simulate",
        "backend=openai",
        f"backend.base_url={url}",
        "backend.api_key_env=null",
        "backend.max_concurrency=64",
        "agents.A.model=served",
        "agents.B.model=served",
        "dataset=arithmetic",
        f"dataset.count={questions}",
        f"dataset.limit={questions}",
        "progress=false",
        f"out={out}",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20000)
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args()
    server = ChatServer(reply=hashed_number)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [
            sys.executable,
            "-m",
            "agora",
            *served_simulation(server.url, args.questions, out),
            f"engine.max_active_trees={args.window}",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        server.close()
        if done.returncode != 0:
            sys.exit(f"agora simulate failed ({done.returncode}):\n{done.stderr[-2000:]}")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        lines = sum(1 for _ in (out / "trees.jsonl").open())
        manifest = RunDir(out).manifest()
        print(
            f"{args.questions} questions, engine.max_active_trees={args.window}: {lines} trees, "
            f"{manifest.counts['turns']} turns in {seconds:.0f}s, status {manifest.status}"
        )
        print(f"peak RSS of agora simulate: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
