"""The OpenAI-compatible backend against a scripted server on 127.0.0.1 (tests/chat_server.py)
that fails as told: errors, time-outs, broken bodies, an error body that echoes the key."""

import json
from pathlib import Path

import pytest

from agents.backends.openai_backend import OpenAIBackend
from agents.config import OpenAIBackendConfig
from agents.requests import ChatRequest, Sampling
from dialogue.running.simulate import simulate
from tests.chat_server import ChatServer
from tests.conftest import simulate_config

SECRET = "sk-agora-test-0123456789abcdef"


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


def backend(server, **kw):
    return OpenAIBackend("served-model", OpenAIBackendConfig(base_url=server.url, backoff_s=0.01, **kw))


REQUEST = ChatRequest((("user", "hi"),), Sampling(0.7, 0.9, 8), seed=3)


def test_retries_429_and_5xx_then_succeeds(server):
    server.plan = [(429, 0), (503, 0), (500, 0)]
    (done,) = backend(server, max_retries=3).generate([REQUEST])
    assert done.error is None and done.text == "Answer: A" and done.completion_tokens == 3
    assert len(server.seen) == 4
    assert server.seen[-1]["seed"] == 3 and server.seen[-1]["model"] == "served-model"


def test_gives_up_after_max_retries_and_reports_instead_of_raising(server):
    server.plan = [(500, 0)] * 10
    (done,) = backend(server, max_retries=2).generate([REQUEST])
    assert done.finish_reason == "error" and "HTTP 500" in done.error and "3 attempts" in done.error
    assert len(server.seen) == 3


def test_timeout_is_retried(server):
    server.plan = [(200, 1.0)]
    (done,) = backend(server, max_retries=1, timeout_s=0.3).generate([REQUEST])
    assert done.error is None and len(server.seen) == 2


def test_bad_request_is_not_retried(server):
    server.plan = [(400, 0)]
    (done,) = backend(server, max_retries=5).generate([REQUEST])
    assert "HTTP 400" in done.error and len(server.seen) == 1


def test_unreachable_server_is_an_error_on_the_completion():
    b = OpenAIBackend("m", OpenAIBackendConfig(base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01))
    (done,) = b.generate([REQUEST])
    assert done.finish_reason == "error" and "connection failed" in done.error


def test_failed_requests_are_recorded_on_turns_and_the_key_is_never_written(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    # A's persuasion turns (A is not the skeptic; it has seen B's answer) all fail
    server.fail_when = lambda body: "skeptic" not in body["messages"][0]["content"] and len(body["messages"]) > 2
    out = tmp_path / "run"
    cfg = simulate_config(
        [
            "backend=openai",
            f"backend.base_url={server.url}",
            "backend.api_key_env=AGORA_TEST_KEY",
            "backend.max_retries=1",
            "backend.backoff_s=0.01",
            "agents.A.model=served",
            "agents.B.model=served",
            "agents.B.persona=skeptic",
            "dataset.limit=2",
            "progress=false",
            f"out={out}",
        ]
    )
    result = simulate(cfg, out)
    assert result.summary.trees == 2 and result.summary.failed_turns > 0
    turns = [n for line in (out / "trees.jsonl").read_text().splitlines() for n in json.loads(line)["nodes"]]
    failed = [t for t in turns if t["gen"]["error"]]
    assert len(failed) == 2 * 2 * 3  # trees x B's first answers x persuasion styles
    assert all(t["speaker"] == "A" and t["depth"] == 2 and t["text"] == "" for t in failed)
    assert all(server_auth == f"Bearer {SECRET}" for server_auth in server.auth)
    for path in Path(out).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
