"""`agora simulate` on a tiny random model: shape, reproducibility, resume, and bad input."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import pytest
from hydra.errors import ConfigCompositionException

from agents.errors import AgoraError
from dialogue.running.simulate import simulate
from tests.conftest import REPO, agora, cached_completions, compose_simulate, simulate_config, tiny_overrides


def read_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]


def test_trees_have_the_documented_shape(tiny_model, tmp_path):
    out = tmp_path / "run"
    result = simulate(simulate_config(tiny_overrides(tiny_model, out)), out)
    lines = read_lines(out)
    assert len(lines) == 3 == result.summary.trees
    for data in lines:
        graph = nx.node_link_graph(data, edges="edges")
        assert graph.graph["protocol"] == "pbt_tree" and graph.graph["schema_version"] == 1
        assert 1 <= graph.number_of_nodes() <= 21
        for _, turn in graph.nodes(data=True):
            assert turn["speaker"] in ("A", "B") and turn["instruction"]
            assert {"text", "answer", "correct", "agrees_with_parent", "gen"} <= set(turn)
            # a missing answer only ever stops a branch through agreement, never silently
        depths = [d["depth"] for _, d in graph.nodes(data=True)]
        assert depths.count(0) == 1 and depths.count(1) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["finished_at"]
    assert manifest["models"] == {"A": tiny_model, "B": tiny_model}
    assert (out / "gen_cache.sqlite").exists()


def test_same_seed_same_trees_other_seed_other_trees(tiny_model, tmp_path):
    runs = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        out = tmp_path / name
        simulate(simulate_config(tiny_overrides(tiny_model, out, f"seed={seed}", "dataset.limit=2")), out)
        runs[name] = (out / "trees.jsonl").read_text()

    def strip(text):
        return [{n["id"]: (n["text"], n["answer"]) for n in json.loads(line)["nodes"]} for line in text.splitlines()]

    assert strip(runs["a"]) == strip(runs["b"])
    assert strip(runs["a"]) != strip(runs["c"])


def test_in_float32_the_trees_do_not_depend_on_how_the_engine_schedules(tiny_model, tmp_path):
    """One tree at a time through a batch of two rows, or every tree at once through a batch of
    32: the turns differ in what they were batched with and when, and the trees are the same."""
    runs = {}
    for name, window, batch in [("serial", 1, 2), ("wide", 256, 32)]:
        out = tmp_path / name
        extra = ("backend.dtype=float32", f"backend.batch_size={batch}", f"engine.max_active_trees={window}")
        simulate(simulate_config(tiny_overrides(tiny_model, out, *extra, "dataset.limit=4")), out)
        runs[name] = {
            line["graph"]["tree_id"]: [(n["id"], n["text"], n["answer"], n["gen"]["seed"]) for n in line["nodes"]]
            for line in read_lines(out)
        }
    assert runs["serial"] == runs["wide"] and len(runs["wide"]) == 4


def test_completion_does_not_depend_on_batch_neighbours_in_float32(tiny_model):
    """In float32 the rounding of a batched matmul is too small to move a draw. (In bfloat16, the
    default on CPUs that compute in it, a completion can depend on its neighbours, as on vLLM.)"""
    from agents.backends.transformers_backend import TransformersBackend
    from agents.config import TransformersBackendConfig
    from agents.requests import ChatRequest, Sampling

    backend = TransformersBackend(tiny_model, TransformersBackendConfig(batch_size=8, dtype="float32"))
    target = ChatRequest((("user", "Which planet is closest to the sun?"),), Sampling(1.0, 0.9, 16), seed=7)
    others = [ChatRequest((("user", "x " * k),), Sampling(1.0, 0.9, 16), seed=k) for k in range(1, 6)]
    alone = backend.generate([target])[0].text
    batched = backend.generate([*others[:3], target, *others[3:]])[3].text
    assert alone == batched


def test_resume_skips_written_trees_and_drops_a_torn_line(tiny_model, tmp_path):
    out = tmp_path / "run"
    simulate(simulate_config(tiny_overrides(tiny_model, out)), out)
    lines = (out / "trees.jsonl").read_text().splitlines(keepends=True)
    # as if killed while writing the third tree
    (out / "trees.jsonl").write_text(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2])
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "finished_at": None}))
    result = simulate(simulate_config(tiny_overrides(tiny_model, out)), out)
    again = (out / "trees.jsonl").read_text().splitlines(keepends=True)
    assert again == lines  # the same trees, each once; the cache served the finished turns
    assert result.stats.cached_turns > 0 and result.stats.generated_tokens == 0


def test_resume_with_another_config_is_refused_naming_the_keys_even_without_the_manifest(tiny_model, tmp_path):
    out = tmp_path / "run"
    simulate(simulate_config(tiny_overrides(tiny_model, out, "dataset.limit=1")), out)
    other = simulate_config(tiny_overrides(tiny_model, out, "dataset.limit=2", "seed=5", "protocol.depth=3"))
    with pytest.raises(AgoraError, match=r"another config \(differing: dataset\.limit, protocol\.depth, seed\)"):
        simulate(other, out)
    (out / "manifest.json").unlink()  # the trees still know which config grew them
    with pytest.raises(AgoraError, match="trees.jsonl holds trees grown under another config"):
        simulate(other, out)
    assert len((out / "trees.jsonl").read_text().splitlines()) == 1 and not (out / "manifest.json").exists()


def test_misspelt_key_is_named():
    with pytest.raises(ConfigCompositionException, match="detph"):
        compose_simulate(["protocol.detph=3"])
    with pytest.raises(AgoraError, match=r"agents\.B\.sampling\.temprature"):
        from omegaconf import OmegaConf

        from dialogue.running.config import validate

        cfg = compose_simulate([])
        OmegaConf.set_struct(cfg, False)
        cfg.agents.B.sampling.temprature = 0.3
        validate(cfg)


def test_unknown_model_and_persona_are_named_and_nothing_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(AgoraError, match="unknown model 'no-such-model'"):
        simulate(simulate_config(["agents.B.model=no-such-model", f"out={out}"]), out)
    with pytest.raises(AgoraError, match="not in the local Hugging Face cache"):
        simulate(simulate_config(["agents.B.model=nobody/nothing-7b", f"out={out}"]), out)
    with pytest.raises(AgoraError, match="unknown persona 'grumpy'"):
        simulate(simulate_config(["agents.A.persona=grumpy", f"out={out}"]), out)
    assert not out.exists()


def test_a_persona_file_that_is_not_yaml_is_named_with_its_line(tmp_path, monkeypatch):
    from dialogue.running.config import load_persona

    (tmp_path / "persona").mkdir()
    (tmp_path / "persona" / "broken.yaml").write_text("text: >-\n  Be kind.\nrules: [one, two\n")
    (tmp_path / "persona" / "listed.yaml").write_text("- just\n- a list\n")
    monkeypatch.setattr("dialogue.running.config.resources.files", lambda package: tmp_path)
    with pytest.raises(AgoraError, match=r"conf/persona/broken.yaml, line \d+: not valid YAML"):
        load_persona("broken")
    with pytest.raises(AgoraError, match="conf/persona/listed.yaml: missing key 'text'"):
        load_persona("listed")


@pytest.mark.parametrize("command", ["simulate", "eval"])
def test_a_model_that_is_nowhere_fails_at_once_online_or_offline(command, tmp_path):
    """A mistyped path under a folder that exists is a path, not a Hub id; a Hub id that is not
    cached is looked up once, briefly, instead of the minutes of retries a download makes."""
    (tmp_path / "models").mkdir()
    models = {"simulate": lambda m: [f"agents.A.model={m}", f"agents.B.model={m}"], "eval": lambda m: [f"model={m}"]}
    for model, says in ((tmp_path / "models" / "pbt", "no such local path"), ("nobody/nothing-7b", "nothing-7b")):
        for offline in ("0", "1"):
            out = tmp_path / f"out-{offline}"
            started = time.monotonic()
            done = agora(command, *models[command](model), f"out={out}", env={"HF_HUB_OFFLINE": offline})
            assert time.monotonic() - started < 30
            assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
            assert done.stdout == "" and not out.exists()


def test_bad_row_fails_naming_file_and_line_and_leaves_no_finished_run(tiny_model, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"question": "ok?", "answer": "yes"}\n{"answer": "no question"}\n')
    out = tmp_path / "run"
    proc = agora("simulate", *tiny_overrides(tiny_model, out, f"dataset.path={data}"))
    assert proc.returncode == 2
    assert f"{data}:2: row has no question" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "manifest.json").exists()
    proc = agora("simulate", *tiny_overrides(tiny_model, out, f"dataset.path={data}", "dataset.on_bad_row=skip"))
    assert proc.returncode == 0, proc.stderr
    assert "skipped dataset rows: 1" in proc.stdout
    assert len(read_lines(out)) == 1


def test_sigkill_then_rerun_completes_every_question_once(tiny_model, tmp_path):
    out = tmp_path / "run"
    args = [
        "simulate",
        *tiny_overrides(
            tiny_model,
            out,
            "dataset.limit=6",
            "backend.batch_size=4",
            "agents.A.sampling.max_tokens=24",
            "agents.B.sampling.max_tokens=24",
        ),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agora", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and cached_completions(out / "gen_cache.sqlite") < 6:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trees = out / "trees.jsonl"
    written = trees.read_text().count("\n") if trees.exists() else 0
    assert written < 6 and json.loads((out / "manifest.json").read_text())["status"] == "running"
    done = agora(*args)
    assert done.returncode == 0, done.stderr
    ids = [line["graph"]["tree_id"] for line in read_lines(out)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_cli_prints_run_directory_summary_and_renders(tiny_model, tmp_path):
    out = tmp_path / "run"
    proc = agora("simulate", *tiny_overrides(tiny_model, out, "dataset.limit=1"))
    assert proc.returncode == 0, proc.stderr
    assert f"out={out}" in proc.stdout
    for field in ("trees: 1", "generated tokens:", "tokens/s:", "first-answer accuracy: A", "persuasion attempts:"):
        assert field in proc.stdout
    assert (out / ".hydra" / "config.yaml").exists()  # the composed config beside the results
    tree_id = read_lines(out)[0]["graph"]["tree_id"]
    shown = agora("render", f"run={out}", f"tree={tree_id}")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"tree {tree_id}")
    assert "[0] A · neutral ·" in shown.stdout and "[0.0] B · resist ·" in shown.stdout
    missing = agora("render", f"run={out}", "tree=nope")
    assert missing.returncode == 2 and "tree=nope" in missing.stderr


def test_a_mistyped_name_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "run"
    done = agora("simulate", f"dataset.path={tmp_path / 'missing.jsonl'}", f"out={out}")
    assert done.returncode == 2 and "dataset.path: no such file" in done.stderr
    assert not out.exists()  # Hydra's saved config and empty log are taken away again
    out.mkdir()
    done = agora("simulate", "agents.A.model=/no/such/model", f"out={out}")
    assert done.returncode == 2 and "unknown model '/no/such/model'" in done.stderr
    assert out.is_dir() and not any(out.iterdir())  # a folder the user made stays, empty


def test_the_same_seed_and_config_write_the_same_bytes_as_earlier_versions(tmp_path, monkeypatch):
    """Runs made by an earlier version stay comparable line for line: the engine's speed-ups
    (plain-data turns, batched syncs, the summary added up as trees are written) changed no
    byte of trees.jsonl. The hash was recorded before them, at commit 6738576, over every byte
    but each tree's config_hash: that one is meant to change when the config gains an option
    (dataset.judge_max_chars did), and it is checked against the run's own config instead. A
    change that alters the other bytes on purpose is a new schema_version."""
    import hashlib

    from dialogue.running.rundir import config_hash
    from tests.conftest import scripted_run

    run = scripted_run(tmp_path / "run", monkeypatch, 24)
    lines = (run / "trees.jsonl").read_text()
    config = json.loads((run / "manifest.json").read_text())["config"]
    assert {json.loads(line)["graph"]["config_hash"] for line in lines.splitlines()} == {config_hash(config)}
    rest = re.sub(r'"config_hash": "[0-9a-f]+"', "", lines)
    pinned = "0435b806d09c3f7c53791c5df8cba1164e2cf41d9fc2461b9e3c2186db5518f1"
    assert hashlib.sha256(rest.encode()).hexdigest() == pinned


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("depth", "deep", "depth"), ("surprise", 1, "surprise"), ("gen", {"model": "m"}, "gen.temperature")],
)
def test_a_tree_line_whose_turn_is_malformed_is_an_error_naming_the_line(tmp_path, monkeypatch, field, value, why):
    """Turns are plain data inside the engine; a tree read from disk is validated once, so a
    line edited by hand stops the resume at its line, naming what is wrong."""
    from tests.conftest import scripted_run

    run = scripted_run(tmp_path / "run", monkeypatch, 4)
    lines = (run / "trees.jsonl").read_text().splitlines(keepends=True)
    tree = json.loads(lines[1])
    tree["nodes"][0][field] = value
    lines[1] = json.dumps(tree) + "\n"
    (run / "trees.jsonl").write_text("".join(lines))
    with pytest.raises(AgoraError, match=rf"trees.jsonl:2: not a dialogue tree \(.*{why}"):
        scripted_run(run, monkeypatch, 4)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("second_root", "2 turns without a parent"),
        ("missing_parent", "its parent is '0.9', but the tree's edges reach it from no turn"),
        ("wrong_parent", "its parent is '0.1', but the tree's edges reach it from '0'"),
    ],
)
def test_a_tree_line_that_is_not_one_tree_is_an_error_naming_the_line(tmp_path, monkeypatch, damage, why):
    """A damaged line is named where it is read, not later by a graph algorithm deep in mining."""
    from tests.conftest import scripted_run

    run = scripted_run(tmp_path / "run", monkeypatch, 3)
    lines = (run / "trees.jsonl").read_text().splitlines(keepends=True)
    tree = json.loads(lines[2])
    node = next(n for n in tree["nodes"] if n["id"] == "0.0")
    if damage == "second_root":
        tree["nodes"].append({**node, "id": "9", "parent": None, "depth": 0})
    elif damage == "missing_parent":
        node["parent"] = "0.9"
        tree["edges"] = [e for e in tree["edges"] if e["target"] != "0.0"]
    else:
        node["parent"] = "0.1"
    lines[2] = json.dumps(tree) + "\n"
    (run / "trees.jsonl").write_text("".join(lines))
    with pytest.raises(AgoraError, match=rf"trees.jsonl:3: not a dialogue tree \(.*{re.escape(why)}"):
        scripted_run(run, monkeypatch, 3)


def test_a_regrown_tree_keeps_its_place_and_the_finished_file_holds_each_tree_once(tmp_path, monkeypatch):
    """A resumed run appends a regrown tree again; readers see every tree once, in the order
    the trees first appeared (the question order), the regrown one in its last version, and
    finishing compacts the file to that."""
    from dialogue.running.rundir import RunDir
    from tests.conftest import scripted_run

    run = RunDir(scripted_run(tmp_path / "run", monkeypatch, 4))
    first = list(run.trees())
    order = [t.tree_id for t in first]
    regrown = first[1]
    regrown.graph.nodes["0"]["text"] = "grown again"
    with run.writing():
        run.append(regrown)
        assert [t.tree_id for t in run.trees()] == order
        assert next(t for t in run.trees() if t.tree_id == order[1]).turn("0").text == "grown again"
        run.finish({"failed_turns": 0})
    lines = [json.loads(line)["graph"]["tree_id"] for line in run.trees_path.read_text().splitlines()]
    assert lines == order
    assert json.loads(run.trees_path.read_text().splitlines()[1])["nodes"][0]["text"] == "grown again"
