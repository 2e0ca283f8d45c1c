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

from dialogue.running.rundir import RunDir
from dialogue.running.simulate import simulate
from tests.chat_server import ChatServer, hashed_letter
from tests.conftest import REPO, agora, scripted_run, simulate_config

SECRET = "sk-agora-test-0123456789abcdef"


@pytest.fixture
def server():
    s = ChatServer(reply=hashed_letter)
    yield s
    s.close()


def served(server, out, *extra) -> list[str]:
    """Overrides for a default pbt_tree run whose agents are served by `server`."""
    return [
        "backend=openai",
        f"backend.base_url={server.url}",
        "backend.api_key_env=AGORA_TEST_KEY",
        "backend.max_retries=0",
        "backend.backoff_s=0.01",
        "agents.A.model=served",
        "agents.B.model=served",
        "dataset.limit=4",
        "progress=false",
        f"out={out}",
        *extra,
    ]


def turns_of(out) -> dict:
    """Tree id -> turn id -> what was said and read, without timings: what must not change."""
    return {
        t.tree_id: {
            u.id: (u.speaker, u.instruction, u.text, u.answer, u.gen.error if u.gen else None) for u in t.turns()
        }
        for t in RunDir(out).trees()
    }


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


def test_a_key_across_the_cut_of_an_error_text_leaves_none_of_its_characters(server, monkeypatch):
    """Error texts are kept to 300 characters; the key is taken out first, so a key that the cut
    would split is not half kept, wherever it falls."""
    from agents.backends.openai_backend import OpenAIBackend
    from agents.config import OpenAIBackendConfig
    from agents.requests import ChatRequest, Sampling

    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    config = OpenAIBackendConfig(base_url=server.url, api_key_env="AGORA_TEST_KEY", max_retries=0)
    backend = OpenAIBackend("served", config)
    server.fail_when = lambda body: True
    prefix = len("HTTP 500: ")
    try:
        for offset in range(300 - len(SECRET) - 2, 302):  # the key ends before, crosses, starts at the cut
            server.error_body = lambda auth, offset=offset: "x" * (offset - prefix) + auth.removeprefix("Bearer ")
            [done] = backend.generate([ChatRequest((("user", "hi"),), Sampling(0.0, 1.0, 4), 0)])
            assert done.error.startswith("HTTP 500: xxx"), done.error
            assert not any(SECRET[:n] in done.error for n in range(4, len(SECRET) + 1)), (offset, done.error)
    finally:
        backend.close()


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
    assert f"{out}: another agora process (pid {first.pid}) is writing this directory" in second.stderr
    ids = [json.loads(line)["graph"]["tree_id"] for line in (out / "trees.jsonl").read_text().splitlines()]
    assert len(ids) == 6 == len(set(ids))


def test_ctrl_c_stops_with_one_line_and_status_130_and_the_rerun_completes(server, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "agora", "simulate", *served(server, out, "dataset.limit=6")]
    env = {**os.environ, "AGORA_TEST_KEY": SECRET}
    server.gate.clear()  # the run waits inside its first requests
    run = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not server.seen:
        assert time.time() < deadline and run.poll() is None
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    server.gate.set()
    assert run.returncode == 130, err
    assert "agora simulate: interrupted: rerun the same command to continue" in err and "Traceback" not in err
    assert json.loads((out / "manifest.json").read_text())["status"] != "complete"
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["graph"]["tree_id"] for line in (out / "trees.jsonl").read_text().splitlines()]
    assert len(ids) == 6 == len(set(ids))


def test_a_refused_command_leaves_the_runs_saved_config_as_it_was(server, tmp_path):
    out = tmp_path / "run"
    env = {"AGORA_TEST_KEY": SECRET}
    assert agora("simulate", *served(server, out, "dataset.limit=2"), env=env).returncode == 0
    saved = {p.name: p.read_bytes() for p in (out / ".hydra").iterdir()}
    done = agora("simulate", *served(server, out, "dataset.limit=2", "seed=7"), env=env)
    assert done.returncode == 2 and "holds a run with another config (differing: seed)" in done.stderr
    assert {p.name: p.read_bytes() for p in (out / ".hydra").iterdir()} == saved


def test_a_full_disk_stops_simulate_with_one_message_and_the_rerun_completes(server, tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes writes past it fail as a full disk does (EFBIG;
    Python ignores SIGXFSZ): the run stops with one message, keeps what it wrote, and the same
    command, once there is room, ends as if nothing had happened."""
    import resource

    out = tmp_path / "run"
    command = [sys.executable, "-m", "agora", "simulate", *served(server, out, "dataset.limit=8")]
    env = {**os.environ, "AGORA_TEST_KEY": SECRET}

    def small_disk(limit: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def run(limit: int | None):
        return subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=None if limit is None else lambda: small_disk(limit),
        )

    def trees() -> list[str]:
        return [json.loads(line)["graph"]["tree_id"] for line in (out / "trees.jsonl").read_text().splitlines()]

    # full at the generation cache's first write, then full while trees.jsonl grows (the cache,
    # already holding every completion, is only read when the trees are grown again)
    for limit, where in ((20_000, "gen_cache.sqlite"), (40_000, "trees.jsonl")):
        full = run(limit)
        assert full.returncode == 2, full.stderr
        assert f"{out / where}: " in full.stderr and "Free some space and run the same command again" in full.stderr
        assert "Traceback" not in full.stderr
        assert run(None).returncode == 0
        assert len(trees()) == 8 == len(set(trees()))
        if where == "gen_cache.sqlite":
            (out / "trees.jsonl").unlink()


def test_a_full_disk_stops_mine_with_one_message_and_leaves_no_partial_export(tmp_path, monkeypatch):
    import resource

    run = scripted_run(tmp_path / "run", monkeypatch, 12)
    command = [sys.executable, "-m", "agora", "mine", f"run={run}", f"out={tmp_path / 'data'}"]

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000, resource.RLIM_INFINITY))

    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, preexec_fn=small_disk)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert f"{tmp_path / 'data'}: File too large" in full.stderr and "run the same command again" in full.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no export that looks complete, no leftovers
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and (tmp_path / "data" / "card.json").exists(), done.stderr


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


def test_a_prompt_longer_than_the_context_fails_at_once_and_can_be_dropped_up_front(tiny_model, tmp_path):
    rows = tmp_path / "q.jsonl"
    long = "Which planet is closest to the sun? " + "Mercury Venus Earth Mars " * 1500
    rows.write_text(
        json.dumps({"id": "short", "question": "Which planet is red?", "answer": "Mars"})
        + "\n"
        + json.dumps({"id": "long", "question": long, "answer": "Mercury"})
        + "\n"
    )
    base = [
        f"agents.A.model={tiny_model}",
        f"agents.B.model={tiny_model}",
        "agents.A.sampling.max_tokens=12",
        "agents.B.sampling.max_tokens=12",
        f"dataset.path={rows}",
        "dataset.fields.id=id",
        "dataset.limit=null",
        "progress=false",
    ]
    started = time.perf_counter()
    done = agora("simulate", *base, f"out={tmp_path / 'run'}")
    assert done.returncode == 3 and time.perf_counter() - started < 120  # incomplete, and fast
    trees = {t.tree_id: t for t in RunDir(tmp_path / "run").trees()}
    error = trees["long"].turn("0").gen.error
    assert len(trees["long"]) == 1 and "tokens and max_tokens is 12" in error
    assert "more than the model's context of 4096 tokens" in error and len(trees["short"]) > 1
    dropped = agora("simulate", *base, "dataset.max_prompt_tokens=500", f"out={tmp_path / 'dropped'}")
    assert dropped.returncode == 0, dropped.stderr
    assert "skipped dataset rows: 1" in dropped.stdout
    assert [t.tree_id for t in RunDir(tmp_path / "dropped").trees()] == ["short"]


def test_a_served_model_refuses_a_prompt_too_long_for_it_and_the_turn_says_why(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    server.context_length = 40  # words, in this server
    out = tmp_path / "run"
    result = simulate(simulate_config(served(server, out, "dataset.limit=1")), out)
    tree = next(RunDir(out).trees())
    failed = [t for t in tree.turns() if t.gen.error]
    assert result.summary.failed_turns == len(failed) > 0
    assert len(server.seen) == len(tree)  # a refused request is not sent again
    assert all("HTTP 400" in t.gen.error and "maximum context length is 40 tokens" in t.gen.error for t in failed)


def test_failures_name_their_cause_without_a_traceback(tiny_model, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "gen_cache.sqlite").write_bytes(b"this is not a database" * 100)
    base = [f"agents.A.model={tiny_model}", f"agents.B.model={tiny_model}", "dataset.limit=1", "progress=false"]
    done = agora("simulate", *base, f"out={damaged}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{damaged / 'gen_cache.sqlite'}: the generation cache is not a usable SQLite database" in done.stderr
    assert "move it aside or delete it" in done.stderr

    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    done = agora("simulate", *base, f"agents.B.model={no_weights}", f"out={tmp_path / 'x'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        f"model '{no_weights}': this directory has no weights" in done.stderr
        and "and no tokenizer (tokenizer.json" in done.stderr
    )
    assert not (tmp_path / "x" / "manifest.json").exists()

    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    done = agora("simulate", *base, f"out={a_file}")
    assert done.returncode == 2 and f"out={a_file}: is a file, not a directory" in done.stderr
    assert a_file.read_text() == "not a directory"

    read_only = tmp_path / "read-only"
    read_only.mkdir()
    script = (
        f"mount -t tmpfs -o ro tmpfs {read_only} && exec {sys.executable} -m agora simulate "
        + " ".join(base)
        + f" out={read_only / 'run'}"
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"out={read_only / 'run'}: cannot write there (a read-only file system)" in done.stderr


def test_a_run_made_with_a_served_model_can_be_replayed(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    run = tmp_path / "run"
    simulate(simulate_config(served(server, run, "dataset.limit=2")), run)
    done = agora(
        "replay",
        f"run={run}",
        "replay.agent=B",
        "agents.B.model=another-served-model",
        f"out={tmp_path / 'replay'}",
        "progress=false",
        env={"AGORA_TEST_KEY": SECRET},
    )
    assert done.returncode == 0, done.stderr
    replayed = {body["model"] for body in server.seen[-10:]}
    assert "another-served-model" in replayed and len(list(RunDir(tmp_path / "replay").trees())) == 2


def test_miners_refuse_runs_of_protocols_they_do_not_read_and_warn_on_incomplete_runs(server, tmp_path, monkeypatch):
    from tests.conftest import scripted_critique_run

    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    pbt = tmp_path / "pbt"
    server.fail_when = lambda body: len(body["messages"]) > 3  # some deeper turns fail: an incomplete run
    simulate(simulate_config(served(server, pbt, "dataset.limit=2")), pbt)
    critique = scripted_critique_run(tmp_path / "critique", monkeypatch, questions=2)
    done = agora("mine", f"run={pbt}", "miner=critique", f"out={tmp_path / 'c'}")
    assert done.returncode == 2 and f"run={pbt}: a pbt_tree run; miner=critique reads critique runs only" in done.stderr
    done = agora("mine", f"run={critique}", "miner=pbt", f"out={tmp_path / 'p'}")
    assert done.returncode == 2 and "a critique run; miner=pbt reads pbt_tree runs only" in done.stderr
    done = agora("mine", f"run={pbt}", f"out={tmp_path / 'mined'}")
    # its failed turns leave no pair to train on: an error, after the warning that says why
    assert done.returncode == 2 and "no train rows" in done.stderr
    assert f"warning: run={pbt} is not complete" in done.stderr
    assert json.loads((tmp_path / "mined" / "card.json").read_text())["incomplete_runs"] == [str(pbt)]


def test_file_names_made_from_question_ids_stay_inside_the_run(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    rows = tmp_path / "q.jsonl"
    hostile = "../../../../outside/ESCAPED"
    rows.write_text(json.dumps({"id": hostile, "question": "Which?", "choices": ["a", "b"], "answer": "A"}) + "\n")
    run = tmp_path / "deep" / "er" / "run"
    simulate(
        simulate_config(
            served(server, run, f"dataset.path={rows}", "dataset.fields.id=id", "dataset.fields.choices=choices")
        ),
        run,
    )
    assert next(RunDir(run).trees()).tree_id == hostile  # the id stays the user's id
    done = agora("render", f"run={run}", f"tree={hostile}", "format=html")
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip().rsplit("out=", 1)[1])
    assert page.parent == run / "render" and page.name == "%2E.%2F..%2F..%2F..%2Foutside%2FESCAPED.html"
    assert not list(tmp_path.rglob("ESCAPED*")) or all(p.parent == run / "render" for p in tmp_path.rglob("*ESCAPED*"))


def test_outputs_are_as_readable_as_the_umask_says(server, tmp_path, monkeypatch, tiny_model):
    from dialogue.mining.export import MineConfig, mine
    from tests.test_train import config as train_config
    from trainers.run import train

    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    previous = os.umask(0o002)  # a group that shares its work
    try:
        run = tmp_path / "run"
        simulate(simulate_config(served(server, run, "dataset.limit=8")), run)
        mine(MineConfig(run=[str(run)], out=str(tmp_path / "data")))
        train(train_config("dpo", tmp_path / "data", tiny_model, tmp_path / "model"))
    finally:
        os.umask(previous)
    for root in (run, tmp_path / "data", tmp_path / "model"):
        for path in [root, *root.rglob("*")]:
            if (
                path.name.startswith(".lock")
                or "-journal" in path.name
                or path.suffix in (".sqlite-wal", ".sqlite-shm")
            ):
                continue
            mode = path.stat().st_mode & 0o777
            assert mode == (0o775 if path.is_dir() else 0o664), f"{path}: {oct(mode)}"


def test_an_interrupted_conversion_of_the_embedded_model_is_cleaned_up(tmp_path, monkeypatch):
    from agents.models import resolve_model

    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    stale = tmp_path / "models" / ".smollm2-135m-killed"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half a file")
    converted = Path(resolve_model("smollm2-135m"))
    assert (converted / "config.json").is_file() and not stale.exists()
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".smollm2-135m-")] == []


def test_an_evaluation_with_failed_requests_writes_no_metrics_and_resumes(server, tmp_path, monkeypatch):
    monkeypatch.setenv("AGORA_TEST_KEY", SECRET)
    base = [
        "eval",
        "suite=are_you_sure",
        "model=served",
        "backend=openai",
        f"backend.base_url={server.url}",
        "backend.api_key_env=AGORA_TEST_KEY",
        "backend.max_retries=0",
        "dataset.limit=3",
        "resamples=20",
        "progress=false",
        f"out={tmp_path / 'eval'}",
    ]
    server.fail_when = lambda body: len(body["messages"]) > 2  # every final answer fails
    done = agora(*base, env={"AGORA_TEST_KEY": SECRET})
    assert done.returncode == 2 and "are_you_sure: 3 requests failed" in done.stderr
    assert not (tmp_path / "eval" / "metrics.json").exists()
    server.fail_when = lambda body: False
    asked = len(server.seen)
    done = agora(*base, env={"AGORA_TEST_KEY": SECRET})
    assert done.returncode == 0, done.stderr
    assert len(server.seen) - asked == 3  # only the failed turns were asked again
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["suites"]["are_you_sure"]["questions"] == 3
