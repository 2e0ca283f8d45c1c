"""Nothing lost, nothing doubled, nothing leaked: runs against a scripted OpenAI-compatible server
on 127.0.0.1 (tests/chat_server.py) that fails as told, killed runs, and two writers at once."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialogue.rundir import RunDir
from dialogue.simulate import simulate
from tests.chat_server import ChatServer, hashed_letter
from tests.conftest import REPO, agora, simulate_config

SECRET = "sk-agora-test-0123456789abcdef"


@pytest.fixture
def server():
    s = ChatServer(reply=hashed_letter)
    yield s
    s.close()


def served(server, out, *extra) -> list[str]:
    """Overrides for a default pbt_tree run whose agents are served by `server`."""
    return ["backend=openai", f"backend.base_url={server.url}", "backend.api_key_env=AGORA_TEST_KEY",
            "backend.max_retries=0", "backend.backoff_s=0.01", "agents.A.model=served", "agents.B.model=served",
            "dataset.limit=4", "progress=false", f"out={out}", *extra]


def turns_of(out) -> dict:
    """Tree id -> turn id -> what was said and read, without timings: what must not change."""
    return {t.tree_id: {u.id: (u.speaker, u.instruction, u.text, u.answer, u.gen.error if u.gen else None)
                        for u in t.turns()} for t in RunDir(out).trees()}


def test_failed_turns_make_an_incomplete_run_that_the_same_command_regrows(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    reference = tmp_path / "reference"
    simulate(simulate_config(served(server, reference)), reference)
    requests_whole_run = len(server.seen)

    out = tmp_path / "run"
    # every persuasion turn by A (its instruction tells it the other is wrong) fails
    server.fail_when = lambda body: "The other participant's answer is wrong" in body["messages"][-1]["content"]
    first = simulate(simulate_config(served(server, out)), out)
    assert first.summary.failed_turns > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["counts"]["failed_turns"] == first.summary.failed_turns
    after_first = turns_of(out)
    failed = {(tree, turn) for tree, turns in after_first.items() for turn, said in turns.items() if said[4]}
    assert len(failed) == first.summary.failed_turns and all(turn.count(".") == 2 for _, turn in failed)
    good = sum(1 for turns in after_first.values() for said in turns.values() if not said[4])

    server.fail_when = lambda body: False
    server.seen.clear()
    second = simulate(simulate_config(served(server, out)), out)
    assert second.summary.failed_turns == 0 and json.loads((out / "manifest.json").read_text())["status"] == "complete"
    # exactly the failed branches were asked again: each failed turn and what grew below it
    final = sum(len(turns) for turns in turns_of(out).values())
    assert len(server.seen) == final - good and requests_whole_run == final
    assert turns_of(out) == turns_of(reference)  # the good turns were kept as they were
    lines = (out / "trees.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len({json.loads(line)["graph"]["tree_id"] for line in lines}) == 4


def test_an_http_200_that_is_not_a_chat_completion_is_a_failed_turn(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    for bad in ("not json", "no choices", "no message"):
        out = tmp_path / bad.replace(" ", "-")
        server.bad_body = bad
        result = simulate(simulate_config(served(server, out, "dataset.limit=1")), out)
        tree = next(RunDir(out).trees())
        root = tree.turn("0")
        assert result.summary.failed_turns == 1 and len(tree) == 1
        assert root.gen.error.startswith("HTTP 200 with a body that is not a chat completion"), root.gen.error
        server.bad_body = None
        assert simulate(simulate_config(served(server, out, "dataset.limit=1")), out).summary.failed_turns == 0


def test_the_key_is_redacted_from_error_bodies_that_echo_it(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    server.echo_auth = True
    server.fail_when = lambda body: True
    out = tmp_path / "run"
    done = agora("simulate", *served(server, out, "dataset.limit=1"), env={"AGORA_TEST_KEY": SECRET})
    assert done.returncode == 3, done.stderr  # incomplete: its one request failed
    error = next(RunDir(out).trees()).turn("0").gen.error
    assert "Bearer [redacted]" in error and SECRET not in error
    assert server.auth[-1] == f"Bearer {SECRET}"  # it was sent, and echoed back
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in done.stdout + done.stderr


def test_two_writers_into_one_run_directory(server, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "agora", "simulate", *served(server, out, "dataset.limit=6")]
    env = {**os.environ, "AGORA_TEST_KEY": SECRET}
    server.gate.clear()  # the first run waits on its first requests, inside the run, holding the lock
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not server.seen:
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    server.gate.set()
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 2
    assert f"{out}: another agora process (pid {first.pid}) is writing this run directory" in second.stderr
    ids = [json.loads(line)["graph"]["tree_id"] for line in (out / "trees.jsonl").read_text().splitlines()]
    assert len(ids) == 6 == len(set(ids))


def test_mining_the_same_run_twice_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    out = tmp_path / "run"
    simulate(simulate_config(served(server, out, "dataset.limit=1")), out)
    done = agora("mine", f"run={out}", f"run={out}/../run", f"out={tmp_path / 'data'}")
    assert done.returncode == 2 and "names the same run twice" in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_killed_at_random_moments_and_rerun_it_ends_as_an_uninterrupted_run(tmp_path):
    """SIGKILL `agora simulate` at 10 random moments of a run against a server that fails one
    request in five, rerunning after each kill; then run it until it is complete. A moment is a
    random number of requests into the run plus a random fraction of a request's time, so the
    kills land while requests are in flight and while trees are being written."""
    steady = ChatServer(reply=hashed_letter)
    flaky = ChatServer(reply=hashed_letter, delay_s=0.02)
    flaky.fail_fraction, flaky.rng = 0.2, random.Random(7)
    env = {**os.environ, "AGORA_TEST_KEY": SECRET}
    questions = "dataset.limit=16"
    try:
        reference = tmp_path / "reference"
        assert agora("simulate", *served(steady, reference, questions), env=env).returncode == 0
        out = tmp_path / "run"
        command = [sys.executable, "-m", "agora", "simulate", *served(flaky, out, questions)]
        rng = random.Random(2026)
        killed_mid_run = 0
        for _ in range(10):
            start = len(flaky.seen)
            target = start + rng.randint(1, 40)
            run = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while len(flaky.seen) < target and run.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.03))
            killed_mid_run += run.poll() is None
            run.send_signal(signal.SIGKILL)
            run.wait()
        assert killed_mid_run >= 5  # most kills landed inside a run, not after it ended
        for _ in range(20):
            if subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0:
                break
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["counts"]["failed_turns"] == 0
        ids = [json.loads(line)["graph"]["tree_id"] for line in (out / "trees.jsonl").read_text().splitlines()]
        assert len(ids) == 16 == len(set(ids))
        assert turns_of(out) == turns_of(reference)
    finally:
        steady.close()
        flaky.close()
