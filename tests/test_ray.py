"""Data parallelism on a local Ray instance: `scale.workers=2` puts a copy of the backend in each
of two Ray actors; the driver alone writes the run directory."""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray

from dialogue.running.simulate import simulate
from tests.chat_server import ChatServer, hashed_letter
from tests.conftest import REPO, simulate_config, tiny_overrides


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def trees(out) -> dict[str, list]:
    lines = [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]
    assert len(lines) == len({line["graph"]["tree_id"] for line in lines}), "a tree written twice"
    return {
        line["graph"]["tree_id"]: [
            (n["id"], n["text"], n["answer"], (n["gen"] or {}).get("error")) for n in line["nodes"]
        ]
        for line in lines
    }


def served(server, out, *extra):
    return [
        "backend=openai",
        f"backend.base_url={server.url}",
        "backend.api_key_env=null",
        "backend.backoff_s=0.01",
        "agents.A.model=served",
        "agents.B.model=served",
        "dataset.limit=12",
        "progress=false",
        f"out={out}",
        *extra,
    ]


def test_two_workers_grow_the_trees_one_process_grows_in_float32(tiny_model, tmp_path):
    """...and read as much of their prompts from shared prefixes: a tree's requests all go to
    one actor, so its siblings are still admitted together there. (Not to the token: one
    process admits more rows at once, and rows of two calls whose contexts happen to be the
    same, as a tiny model's repeated texts make them, then share a prefill too.)"""
    runs, prefix_reads = {}, {}
    for name, workers in [("here", 1), ("ray", 2)]:
        out = tmp_path / name
        extra = ("backend.dtype=float32", "dataset.limit=4", f"scale.workers={workers}")
        result = simulate(simulate_config(tiny_overrides(tiny_model, out, *extra)), out)
        assert result.run.manifest().status == "complete"
        runs[name] = trees(out)
        prefix_reads[name] = (result.stats.prefix_hit_tokens, result.stats.prompt_tokens)
    assert runs["ray"] == runs["here"] and len(runs["ray"]) == 4
    (ray_hits, ray_prompt), (hits, prompt) = prefix_reads["ray"], prefix_reads["here"]
    assert ray_prompt == prompt and hits > 0.2 * prompt
    assert abs(ray_hits - hits) <= 0.03 * hits


def test_a_killed_worker_loses_no_tree(tmp_path):
    server = ChatServer(reply=hashed_letter, delay_s=0.02)
    try:
        simulate(simulate_config(served(server, tmp_path / "alone")), tmp_path / "alone")
        expected = trees(tmp_path / "alone")
        pool, out = {}, tmp_path / "ray"
        grown = threading.Thread(
            target=simulate, args=(simulate_config(served(server, out, "scale.workers=2")), out, None, pool)
        )
        asked = len(server.seen)
        grown.start()
        while len(server.seen) < asked + 40 and grown.is_alive():  # well into the run
            time.sleep(0.01)
        (backend,) = pool.values()
        ray.kill(backend.actors[0])
        grown.join(timeout=120)
        assert not grown.is_alive()
        assert len(backend._alive) == 1  # the run went on without the killed worker
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
        assert trees(out) == expected
    finally:
        for backend in pool.values():
            backend.close()
        server.close()


def test_a_killed_driver_resumes_and_writes_each_tree_once(tmp_path):
    """The command joins the running cluster (scale.address), as on a real one; killing the
    driver leaves the cluster up, and the same command again finishes the run."""
    server = ChatServer(reply=hashed_letter, delay_s=0.02)
    out = tmp_path / "run"
    address = ray.get_runtime_context().gcs_address
    command = [
        sys.executable,
        "-m",
        "agora",
        "simulate",
        *served(server, out, "scale.workers=2", f"scale.address={address}"),
    ]
    try:
        first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and not ((out / "trees.jsonl").exists() and (out / "trees.jsonl").read_text()):
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
        again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
        assert len(trees(out)) == 12
    finally:
        server.close()
